"""Read-only shell commands answered from the overlay, in Python: ls, cat, head, tail, find, grep, pwd, cd.

Only single, simple commands are answered: a pipe, a redirection, `&&`, a subshell or an option this
module does not know returns None, and the call goes to the next layer. Output follows GNU coreutils in
the C locale (byte order); `ls` lays out columns as a terminal of 80 characters does when the recorded
environment had a tty, one name per line otherwise.
"""

from __future__ import annotations

import fnmatch
import math
import posixpath
import re

from depsim_assets.core.agentic.overlay import Overlay

COMPLEX = re.compile(r"[|;&<>`]|\$\(")


def is_simple(line: str) -> bool:
    return not COMPLEX.search(re.sub(r"'[^']*'|\"[^\"]*\"", "''", line))


def bre(pattern: str, ignore_case: bool = False, word: bool = False) -> re.Pattern | None:
    """A grep basic regular expression as a Python one: in BRE, + ? | ( ) { } are literal unless escaped."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            out.append(nxt if nxt in "+?|(){}" else "\\" + nxt)
            i += 2
            continue
        out.append("\\" + ch if ch in "+?|(){}" else ch)
        i += 1
    expr = "".join(out)
    if word:
        expr = rf"\b(?:{expr})\b"
    try:
        return re.compile(expr, re.IGNORECASE if ignore_case else 0)
    except re.error:
        return None


def ls_columns(names: list[str], width: int = 80) -> str:
    """GNU `ls -C`: as many columns as fit, filled top to bottom, padded with tabs of 8."""
    if not names:
        return ""
    best = [names]
    for cols in range(len(names), 0, -1):
        rows = math.ceil(len(names) / cols)
        columns = [names[c * rows:(c + 1) * rows] for c in range(cols)]
        columns = [c for c in columns if c]
        widths = [max(map(len, c)) + 2 for c in columns]
        if sum(widths[:-1]) + max(map(len, columns[-1])) <= width or cols == 1:
            best = columns
            break
    rows = len(best[0])
    widths = [max(map(len, c)) + 2 for c in best]
    lines = []
    for r in range(rows):
        line, pos, target = "", 0, 0
        cells = [(c, best[c][r]) for c in range(len(best)) if r < len(best[c])]
        for k, (c, name) in enumerate(cells):
            while k and pos < target:  # coreutils' indent(): a tab only where it does not overshoot
                if target // 8 > (pos + 1) // 8:
                    line, pos = line + "\t", pos + 8 - pos % 8
                else:
                    line, pos = line + " ", pos + 1
            line, pos = line + name, pos + len(name)
            target += widths[c]
        lines.append(line)
    return "\n".join(lines)


class Shell:
    def __init__(self, overlay: Overlay, root: str, tty: bool) -> None:
        self.fs, self.root, self.tty = overlay, root, tty
        self.cwd = ""

    def resolve(self, arg: str) -> str | None:
        """Repository-relative path of `arg`, or None outside the repository."""
        if arg.startswith("/"):
            if arg != self.root and not arg.startswith(self.root + "/"):
                return None
            rel = arg[len(self.root) + 1:]
        else:
            rel = posixpath.join(self.cwd, arg)
        rel = posixpath.normpath(rel) if rel else ""
        return "" if rel == "." else None if rel.startswith("..") else rel

    def shown(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def run(self, argv: list[str]) -> str | None:
        handler = getattr(self, f"cmd_{argv[0]}", None) if argv else None
        return handler(argv[1:]) if handler else None

    # -- commands ----------------------------------------------------------------------------
    def cmd_pwd(self, args: list[str]) -> str | None:
        return None if args else self.shown(self.cwd)

    def cmd_cd(self, args: list[str]) -> str | None:
        rel = self.resolve(args[0] if args else self.root)
        if rel is None or len(args) > 1:
            return None
        if not self.fs.is_dir(rel):
            return f"bash: cd: {args[0]}: No such file or directory"
        self.cwd = rel
        return ""

    def cmd_ls(self, args: list[str]) -> str | None:
        flags = "".join(a[1:] for a in args if a.startswith("-") and len(a) > 1)
        if set(flags) - set("aAF1p"):
            return None  # long listings, sizes and times are not in the snapshot
        targets = [a for a in args if not a.startswith("-")] or ["."]
        out = []
        for target in targets:
            rel = self.resolve(target)
            if rel is None:
                return None
            if self.fs.is_file(rel):
                out.append(target)
                continue
            if not self.fs.is_dir(rel):
                out.append(f"ls: cannot access '{target}': No such file or directory")
                continue
            entries = self.fs.listdir(rel)
            names = [n + ("/" if d and ("F" in flags or "p" in flags) else "") for n, d in entries
                     if "a" in flags or "A" in flags or not n.startswith(".")]
            if "a" in flags:
                names = ["./", "../"] if "F" in flags or "p" in flags else [".", ".."]
                names += [n + ("/" if d and ("F" in flags or "p" in flags) else "") for n, d in entries]
            names.sort(key=lambda s: s.encode())
            header = [f"{target}:"] if len(targets) > 1 else []
            body = ls_columns(names) if self.tty and "1" not in flags else "\n".join(names)
            out.append("\n".join(header + [body]))
        return "\n".join(out)

    def cmd_cat(self, args: list[str]) -> str | None:
        if not args or any(a.startswith("-") for a in args):
            return None
        chunks = []
        for a in args:
            rel = self.resolve(a)
            if rel is None:
                return None
            if self.fs.is_dir(rel):
                chunks.append(f"cat: {a}: Is a directory\n")
            elif not self.fs.is_file(rel):
                chunks.append(f"cat: {a}: No such file or directory\n")
            else:
                chunks.append(self.fs.read_text(rel))
        return "".join(chunks)

    def _head_tail(self, args: list[str], tail: bool) -> str | None:
        n, files, i = 10, [], 0
        while i < len(args):
            a = args[i]
            if a == "-n" and i + 1 < len(args) and args[i + 1].lstrip("+-").isdigit():
                n, i = int(args[i + 1]), i + 2
                continue
            if re.fullmatch(r"-n?\d+", a):
                n = int(a.lstrip("-n"))
            elif a.startswith("-"):
                return None
            else:
                files.append(a)
            i += 1
        if len(files) != 1 or (rel := self.resolve(files[0])) is None:
            return None
        if not self.fs.is_file(rel):
            return f"{'tail' if tail else 'head'}: cannot open '{files[0]}' for reading: No such file or directory"
        lines = self.fs.read_text(rel).splitlines(keepends=True)
        return "".join(lines[-n:] if tail and n else [] if tail else lines[:n])

    def cmd_head(self, args: list[str]) -> str | None:
        return self._head_tail(args, tail=False)

    def cmd_tail(self, args: list[str]) -> str | None:
        return self._head_tail(args, tail=True)

    def cmd_find(self, args: list[str]) -> str | None:
        start = args[0] if args and not args[0].startswith("-") else "."
        rest = args[1:] if args and not args[0].startswith("-") else args
        name, kind = None, None
        for i in range(0, len(rest), 2):
            if i + 1 >= len(rest) or rest[i] not in ("-name", "-iname", "-type"):
                return None
            if rest[i] == "-type":
                kind = rest[i + 1]
            else:
                name = (rest[i], rest[i + 1])
        rel = self.resolve(start)
        if rel is None or kind not in (None, "f", "d"):
            return None
        prefix = f"{rel}/" if rel else ""
        found = {p for p in self.fs.paths() if p.startswith(prefix)} if kind != "d" else set()
        if kind != "f":
            for p in self.fs.paths():
                if p.startswith(prefix):
                    parts = p[len(prefix):].split("/")[:-1]
                    found |= {prefix + "/".join(parts[:k + 1]) for k in range(len(parts))}
            found.add(rel)
        out = []
        for p in sorted(found, key=lambda s: s.encode()):
            base = posixpath.basename(p) if p else start
            if name and not (fnmatch.fnmatchcase(base, name[1]) if name[0] == "-name"
                             else fnmatch.fnmatch(base.lower(), name[1].lower())):
                continue
            tail = p[len(prefix):] if p != rel else ""
            out.append(start.rstrip("/") + ("/" + tail if tail else "") if start != "/" else "/" + tail)
        return "\n".join(out)

    def cmd_grep(self, args: list[str]) -> str | None:
        flags, rest = "", []
        for a in args:
            if a.startswith("-") and len(a) > 1 and not rest:
                flags += a[1:]
            else:
                rest.append(a)
        if set(flags) - set("rRnilIwH") or not rest:
            return None
        pattern = bre(rest[0], "i" in flags, "w" in flags)
        targets = rest[1:] or (["."] if "r" in flags or "R" in flags else [])
        if pattern is None or not targets:
            return None
        files: list[tuple[str, str]] = []
        for t in targets:
            rel = self.resolve(t)
            if rel is None:
                return None
            if self.fs.is_file(rel):
                files.append((t, rel))
            elif self.fs.is_dir(rel) and ("r" in flags or "R" in flags):
                prefix = f"{rel}/" if rel else ""
                files += [(posixpath.join(t, p[len(prefix):]), p) for p in self.fs.paths() if p.startswith(prefix)]
        many = len(files) > 1 or "r" in flags or "R" in flags or "H" in flags
        out = []
        for shown, rel in files:
            data = self.fs.read_bytes(rel)
            if b"\x00" in data[:8000]:
                continue
            for no, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
                if pattern.search(line):
                    if "l" in flags:
                        out.append(shown)
                        break
                    out.append((f"{shown}:" if many else "") + (f"{no}:" if "n" in flags else "") + line)
        return "\n".join(out)
