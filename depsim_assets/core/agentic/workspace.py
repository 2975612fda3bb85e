"""SWE-agent's commands, answered from the overlay in Python (no subprocess, no host file).

`Workspace.run(command)` returns the tool output as the recorded interface would print it, or None
when the command needs something the snapshot cannot give (running code, installs, network, history)
so the next layer decides. File commands (`open`, `goto`, `scroll_*`, `create`, `edit`, `insert`,
`search_file`, `search_dir`, `find_file`, `str_replace_editor`) are SWE-agent's; `ls`, `cat`, `grep`,
`find`... are the shell's (see `shell.py`); `git diff`/`git status` and `submit` are computed from the
overlay against the base.
"""

from __future__ import annotations

import posixpath
import shlex

from depsim_assets.core.agentic.overlay import Overlay
from depsim_assets.core.agentic.shell import Shell, bre, is_simple
from depsim_assets.core.agentic.str_replace_editor import TextEditor
from depsim_assets.core.agentic.trajectory import Interface
from depsim_assets.core.agentic.cursors import CursorEditor
from depsim_assets.core.agentic.windowed import Editor

MUTATING = {"create", "edit", "insert", "rm", "mkdir", "touch", "cd", "mv", "cp", "str_replace_editor", "submit", "set_cursors"}
NAVIGATING = {"open", "goto", "scroll_up", "scroll_down", "create", "edit", "insert", "cd"}
NO_FILE_V0 = "No file open. Use the open command first."


class Workspace:
    """One rollout's view of the repository: the overlay, the open file and window, the working directory."""

    def __init__(self, overlay: Overlay, interface: Interface) -> None:
        self.interface = interface
        self.overlay = overlay
        self.shell = Shell(overlay, interface.root, interface.tty)
        self.text_editor = TextEditor(overlay, interface.root)
        self.editor = (CursorEditor if interface.cursors else Editor)(overlay, generation=interface.generation, window=interface.window,
                             overlap=interface.overlap, root=interface.root)

    def run(self, command: str) -> str | None:
        out = self._dispatch(command.strip("\n"))
        if out is None:
            return None
        if self.interface.tty:
            return out.replace("\r\n", "\n").replace("\n", "\r\n")
        return out if out == "" or out.endswith("\n") else out + "\n"

    def _dispatch(self, command: str) -> str | None:
        first, _, body = command.partition("\n")
        whole = first.split()[:1] == ["str_replace_editor"] or (
            self.interface.edit == "replace" and first.split()[:1] in (["edit"], ["insert"]))
        try:
            argv = shlex.split(command if whole else first)  # quoted arguments of these tools span lines
        except ValueError:
            return None
        if not argv or not is_simple(first):
            return None
        name, args = argv[0], argv[1:]
        handler = getattr(self, f"do_{name}", None)
        if handler is not None:
            return handler(args, body)
        if name == "git":
            return self._git(args)
        return self.shell.run(argv)

    # -- the windowed editor -------------------------------------------------------------------
    def _path(self, arg: str) -> str | None:
        return self.shell.resolve(arg)

    def do_open(self, args: list[str], body: str) -> str | None:
        if not args or len(args) > 2:
            return None
        rel = self._path(args[0])
        if rel is None:
            return None
        line = int(args[1]) if len(args) == 2 and args[1].isdigit() else None
        if len(args) == 2 and line is None:
            return None
        if self.overlay.is_dir(rel):
            return f"Error: {args[0]} is a directory. You can only open files. Use cd or ls to navigate directories."
        if not self.overlay.is_file(rel):
            return f"File {args[0]} not found" if self.interface.generation == "v0" else f"Error: File {args[0]} not found"
        return self.editor.open(rel, args[0], line)

    def do_goto(self, args: list[str], body: str) -> str | None:
        if self.editor.current_file is None:
            return NO_FILE_V0
        if len(args) != 1 or not args[0].isdigit():
            return None
        n = self.editor.n_lines()
        if int(args[0]) > n:
            return f"Error: <line> must be less than or equal to {n}"
        self.editor.goto_line(int(args[0]))
        return self.editor.render(absolute=True)

    def do_scroll_down(self, args: list[str], body: str) -> str | None:
        return self.editor.scroll(down=True) if self.editor.current_file else NO_FILE_V0

    def do_scroll_up(self, args: list[str], body: str) -> str | None:
        return self.editor.scroll(down=False) if self.editor.current_file else NO_FILE_V0

    def do_create(self, args: list[str], body: str) -> str | None:
        if len(args) != 1 or (rel := self._path(args[0])) is None:
            return None
        if self.overlay.exists(rel):
            return f"Error: File '{args[0]}' already exists.\n{self.editor.open(rel, args[0], None)}"
        self.overlay.write_text(rel, "\n")
        return self.editor.open(rel, args[0], None)

    def do_edit(self, args: list[str], body: str) -> str | None:
        if self.editor.current_file is None:
            return "No file open. Use the `open` command first."
        lines = body.split("\n")
        if "end_of_edit" in lines:
            lines = lines[:lines.index("end_of_edit")]
        if isinstance(self.editor, CursorEditor):
            return self.editor.edit_cursors("\n".join(lines))[0] if not args else None
        if self.interface.edit == "replace":
            if len(args) not in (2, 3):
                return None
            return self.editor.replace(args[0], args[1])[0]
        span = args[0].split(":") if len(args) == 1 else args
        if len(span) != 2 or not all(s.isdigit() for s in span):
            return None
        return self.editor.edit_range(int(span[0]), int(span[1]), "\n".join(lines))[0]

    def do_set_cursors(self, args: list[str], body: str) -> str | None:
        if not isinstance(self.editor, CursorEditor) or len(args) != 2 or not all(a.isdigit() for a in args):
            return None
        if self.editor.current_file is None:
            return NO_FILE_V0
        return self.editor.set_cursors(int(args[0]), int(args[1]))

    def do_insert(self, args: list[str], body: str) -> str | None:
        if self.editor.current_file is None or not args or len(args) > 2:
            return None
        line = int(args[1]) if len(args) == 2 and args[1].isdigit() else None
        return self.editor.insert(args[0], line)

    def do_str_replace_editor(self, args: list[str], body: str) -> str | None:
        if len(args) < 2:
            return None
        options: dict = {}
        i = 2
        while i < len(args):
            flag = args[i].removeprefix("--")
            if flag == "view_range" and i + 2 < len(args) + 1 and all(a.lstrip("-").isdigit() for a in args[i + 1:i + 3]):
                options["view_range"], i = [int(a) for a in args[i + 1:i + 3]], i + 3
            elif flag in ("file_text", "old_str", "new_str") and i + 1 < len(args):
                options[flag], i = args[i + 1], i + 2
            elif flag == "insert_line" and i + 1 < len(args) and args[i + 1].isdigit():
                options[flag], i = int(args[i + 1]), i + 2
            else:
                return None
        return self.text_editor.run(args[0], args[1], **options)

    # -- search --------------------------------------------------------------------------------
    def do_find_file(self, args: list[str], body: str) -> str | None:
        if not args or len(args) > 2:
            return None
        where = self._path(args[1] if len(args) == 2 else ".")
        if where is None:
            return None
        shown = self.shell.shown(where)
        if not self.overlay.is_dir(where):
            return f"Directory {args[1]} not found"
        found = (self.shell.cmd_find([args[1] if len(args) == 2 else ".", "-type", "f", "-name", args[0]]) or "").split("\n")
        found = [self.shell.shown(self._path(f) or "") for f in found if f]
        if not found:
            return f'No matches found for "{args[0]}" in {shown}'
        return "\n".join([f'Found {len(found)} matches for "{args[0]}" in {shown}:', *found])

    def do_search_dir(self, args: list[str], body: str) -> str | None:
        if not args or len(args) > 2 or (where := self._path(args[1] if len(args) == 2 else ".")) is None:
            return None
        pattern = bre(args[0])
        if pattern is None:
            return None
        shown = self.shell.shown(where) if len(args) == 2 else "./" if self.interface.generation == "v0" else self.shell.shown(where)
        prefix = f"{where}/" if where else ""
        counts = []
        for p in self.overlay.paths():
            if p.startswith(prefix) and not any(part.startswith(".") for part in p[len(prefix):].split("/")):
                data = self.overlay.read_bytes(p)
                if b"\x00" in data[:8000]:
                    continue
                hits = sum(1 for line in data.decode("utf-8", "replace").splitlines() if pattern.search(line))
                if hits:
                    rel = p[len(prefix):]
                    counts.append((f"./{rel}" if len(args) == 1 and self.interface.generation == "v0" else self.shell.shown(p), hits))
        if not counts:
            return f'No matches found for "{args[0]}" in {shown}'
        if len(counts) > 100:
            return f'More than {len(counts)} files matched for "{args[0]}" in {shown}. Please narrow your search.'
        listed = [f"{name} ({n} matches)" for name, n in sorted(counts)]
        return "\n".join([f'Found {sum(n for _, n in counts)} matches for "{args[0]}" in {shown}:', *listed,
                          f'End of matches for "{args[0]}" in {shown}'])

    def do_search_file(self, args: list[str], body: str) -> str | None:
        if not args or len(args) > 2:
            return None
        rel = self._path(args[1]) if len(args) == 2 else self.editor.current_file
        if rel is None:
            return NO_FILE_V0 if len(args) == 1 else None
        if not self.overlay.is_file(rel):
            return f"Usage: search_file <search_term> [<file>]\nError: File name {args[1]} not found. Please provide a valid file name."
        pattern = bre(args[0])
        if pattern is None:
            return None
        shown = self.shell.shown(rel)
        hits = [(no, line) for no, line in enumerate(self.overlay.read_text(rel).splitlines(), 1) if pattern.search(line)]
        if not hits:
            return f'No matches found for "{args[0]}" in {shown}'
        if len({no for no, _ in hits}) > 100:
            return f'More than {len(hits)} lines matched for "{args[0]}" in {shown}. Please narrow your search.'
        return "\n".join([f'Found {len(hits)} matches for "{args[0]}" in {shown}:', *(f"Line {no}:{line}" for no, line in hits),
                          f'End of matches for "{args[0]}" in {shown}'])

    # -- changes to the tree -------------------------------------------------------------------
    def do_rm(self, args: list[str], body: str) -> str | None:
        flags = "".join(a[1:] for a in args if a.startswith("-"))
        targets = [a for a in args if not a.startswith("-")]
        if set(flags) - set("rfv") or not targets:
            return None
        out = []
        for t in targets:
            rel = self._path(t)
            if rel is None or rel == "":
                return None
            if self.overlay.is_file(rel):
                self.overlay.delete(rel)
            elif self.overlay.is_dir(rel) and "r" in flags:
                for p in [p for p in self.overlay.paths() if p.startswith(rel + "/")]:
                    self.overlay.delete(p)
            elif self.overlay.is_dir(rel):
                out.append(f"rm: cannot remove '{t}': Is a directory")
            elif "f" not in flags:
                out.append(f"rm: cannot remove '{t}': No such file or directory")
        return "\n".join(out)

    def do_touch(self, args: list[str], body: str) -> str | None:
        if not args or any(a.startswith("-") for a in args):
            return None
        for a in args:
            rel = self._path(a)
            if rel is None:
                return None
            if not self.overlay.exists(rel):
                self.overlay.write_text(rel, "")
        return ""

    def do_submit(self, args: list[str], body: str) -> str | None:
        return "\n" + self.overlay.diff(include_untracked=True)  # what SWE-agent shows between its submission markers

    def _git(self, args: list[str]) -> str | None:
        if args[:1] == ["diff"] and all(not a.startswith("-") for a in args[1:]):
            diff = self.overlay.diff()
            if args[1:]:
                keep = {self._path(a) for a in args[1:]}
                diff = "".join(c for c in _split_diff(diff) if _diff_path(c) in keep or any(
                    k is not None and _diff_path(c).startswith(k + "/") for k in keep))
            return diff
        if args[:1] == ["status"] and set(args[1:]) <= {"--porcelain", "-s", "--short"} and args[1:]:
            return "\n".join(f"{code:>2} {posixpath.relpath(p, self.shell.cwd or '.')}" for code, p in self.overlay.status())
        return None  # log, show, blame: the snapshot has no history


def _split_diff(diff: str) -> list[str]:
    chunks, current = [], []
    for line in diff.splitlines(keepends=True):
        if line.startswith("diff --git ") and current:
            chunks.append("".join(current))
            current = []
        current.append(line)
    return chunks + (["".join(current)] if current else [])


def _diff_path(chunk: str) -> str:
    return chunk.split("\n", 1)[0].rsplit(" b/", 1)[-1]
