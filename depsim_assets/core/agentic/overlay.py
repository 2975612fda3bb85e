"""A repository snapshot, read-only, and a copy-on-write overlay per rollout.

The snapshot is read from its archive into memory once and never extracted: nothing a rollout does
can reach the archive or the host. Each rollout writes into its own temporary directory; deletions are
whiteouts. `diff()` renders the overlay against the base the way `git diff` does (blob ids included),
because agents read that output and the simulator must answer it as a real checkout would.
"""

from __future__ import annotations

import difflib
import hashlib
import posixpath
import re
import shutil
import tarfile
import tempfile
from functools import lru_cache
from pathlib import Path

FUNCNAME = re.compile(r"^[A-Za-z_$]")


class Snapshot:
    """Files of one repository at one commit, keyed by POSIX path relative to the repository root."""

    def __init__(self, files: dict[str, bytes], label: str = "") -> None:
        self.files = files
        self.label = label
        self.dirs = {""}
        for path in files:
            parent = posixpath.dirname(path)
            while parent not in self.dirs:
                self.dirs.add(parent)
                parent = posixpath.dirname(parent)

    @classmethod
    def from_archive(cls, archive: str | Path) -> Snapshot:
        return _load_archive(str(Path(archive).resolve()))


@lru_cache(maxsize=8)
def _load_archive(archive: str) -> Snapshot:
    files: dict[str, bytes] = {}
    with tarfile.open(archive, mode="r:*") as tar:
        for member in tar:
            name = posixpath.normpath(member.name.removeprefix("./")) if member.name not in (".", "./") else ""
            if member.isfile() and name and not name.startswith(".."):
                handle = tar.extractfile(member)
                files[name] = handle.read() if handle else b""
    return Snapshot(files, label=Path(archive).name)


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


class Overlay:
    """The snapshot plus one rollout's own edits; the base is never written."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.base = snapshot
        self._tmp = tempfile.mkdtemp(prefix="depsim-overlay-")
        self.root = Path(self._tmp)
        self.written: set[str] = set()
        self.whiteouts: set[str] = set()

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> Overlay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------------
    def is_file(self, path: str) -> bool:
        if path in self.written:
            return True
        return path in self.base.files and path not in self.whiteouts

    def is_dir(self, path: str) -> bool:
        if path == "":
            return True
        prefix = path + "/"
        return any(p.startswith(prefix) for p in self.paths())

    def exists(self, path: str) -> bool:
        return self.is_file(path) or self.is_dir(path)

    def read_bytes(self, path: str) -> bytes:
        if path in self.written:
            return (self.root / path).read_bytes()
        if path in self.base.files and path not in self.whiteouts:
            return self.base.files[path]
        raise FileNotFoundError(path)

    def read_text(self, path: str) -> str:
        return self.read_bytes(path).decode("utf-8", errors="replace")

    def paths(self) -> list[str]:
        """Every file path now present, sorted."""
        base = (p for p in self.base.files if p not in self.whiteouts)
        return sorted(set(base) | self.written)

    def listdir(self, path: str) -> list[tuple[str, bool]]:
        """(name, is_directory) of the entries directly under `path`."""
        prefix = f"{path}/" if path else ""
        entries: dict[str, bool] = {}
        for p in self.paths():
            if p.startswith(prefix):
                head, sep, _ = p[len(prefix):].partition("/")
                entries[head] = entries.get(head, False) or bool(sep)
        return sorted(entries.items())

    # -- writing -----------------------------------------------------------------------------
    def write_text(self, path: str, text: str) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text.encode("utf-8"))
        self.written.add(path)
        self.whiteouts.discard(path)

    def delete(self, path: str) -> None:
        if path in self.written:
            (self.root / path).unlink()
            self.written.discard(path)
        if path in self.base.files:
            self.whiteouts.add(path)

    # -- comparing with the base -------------------------------------------------------------
    def changed(self) -> list[str]:
        paths = sorted(self.written | self.whiteouts)
        return [p for p in paths if self._old(p) != self._new(p)]

    def _old(self, path: str) -> bytes | None:
        return self.base.files.get(path)

    def _new(self, path: str) -> bytes | None:
        return self.read_bytes(path) if self.is_file(path) else None

    def status(self) -> list[tuple[str, str]]:
        """(code, path) as `git status --porcelain` shows it: M modified, D deleted, then ?? untracked."""
        out = []
        for p in self.changed():
            old, new = self._old(p), self._new(p)
            out.append(("??" if old is None else "D" if new is None else "M", p))
        return sorted(out, key=lambda row: row[0] == "??")

    def diff(self, include_untracked: bool = False) -> str:
        """`git diff` of the overlay against the base; `include_untracked` as after `git add -A`."""
        parts = []
        for path in self.changed():
            old, new = self._old(path), self._new(path)
            if old is None and not include_untracked:
                continue
            parts.append(file_diff(path, old, new))
        return "".join(parts)


def file_diff(path: str, old: bytes | None, new: bytes | None) -> str:
    a = (old or b"").decode("utf-8", errors="replace")
    b = (new or b"").decode("utf-8", errors="replace")
    head = [f"diff --git a/{path} b/{path}\n"]
    if old is None:
        head += ["new file mode 100644\n", f"index 0000000..{blob_id(new or b'')[:7]}\n", "--- /dev/null\n", f"+++ b/{path}\n"]
    elif new is None:
        head += ["deleted file mode 100644\n", f"index {blob_id(old)[:7]}..0000000\n", f"--- a/{path}\n", "+++ /dev/null\n"]
    else:
        head += [f"index {blob_id(old)[:7]}..{blob_id(new)[:7]} 100644\n", f"--- a/{path}\n", f"+++ b/{path}\n"]
    old_lines, new_lines = a.splitlines(keepends=True), b.splitlines(keepends=True)
    body = list(difflib.unified_diff(old_lines, new_lines, n=3))[2:]
    out = []
    for line in body:
        if line.startswith("@@"):
            line = _with_funcname(line, old_lines)
        if not line.endswith("\n"):
            line += "\n\\ No newline at end of file\n"
        out.append(line)
    return "".join(head + out)


def _with_funcname(header: str, old_lines: list[str]) -> str:
    """git's default hunk context: the last line above the hunk that starts with a letter, _ or $."""
    match = re.match(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@", header)
    if not match:
        return header
    start = int(match.group(1)) - 1
    for line in reversed(old_lines[:max(start, 0)]):
        if FUNCNAME.match(line):
            return f"{match.group(0)} {line.rstrip()[:80]}\n"
    return f"{match.group(0)}\n"
