"""The `str_replace_editor` tool (Anthropic's text editor as SWE-agent ships it), on the overlay.

Commands: view (a file, a line range, or a directory two levels deep), create, str_replace, insert,
undo_edit. Paths must be absolute, as the tool demands. Messages are the tool's own. The optional
viewport expansion and file-map settings of the real tool are off by default there and not reproduced.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from depsim_assets.core.agentic.overlay import Overlay

SNIPPET_LINES = 4
MAX_RESPONSE_LEN = 16000
TRUNCATED = ("<response clipped><NOTE>To save on context only part of this file has been shown to you. You should retry "
             "this tool after you have searched inside the file with `grep -n` in order to find the line numbers of what "
             "you are looking for.</NOTE>")


def numbered(content: str, descriptor: str, init_line: int = 1) -> str:
    if len(content) > MAX_RESPONSE_LEN:
        content = content[:MAX_RESPONSE_LEN] + TRUNCATED
    body = "\n".join(f"{i + init_line:6}\t{line}" for i, line in enumerate(content.expandtabs().split("\n")))
    return f"Here's the result of running `cat -n` on {descriptor}:\n{body}\n"


@dataclass
class TextEditor:
    overlay: Overlay
    root: str
    history: dict[str, list[str]] = field(default_factory=dict)

    def rel(self, path: str) -> str | None:
        if path == self.root:
            return ""
        return path[len(self.root) + 1:] if path.startswith(self.root + "/") else None

    def run(self, command: str, path: str, file_text: str | None = None, view_range: list[int] | None = None,
            old_str: str | None = None, new_str: str | None = None, insert_line: int | None = None) -> str | None:
        if not path.startswith("/"):
            return f"The path {path} is not an absolute path, it should start with `/`. Maybe you meant {self.root}/{path}?"
        rel = self.rel(path.rstrip("/") or "/")
        if rel is None:
            return None  # outside the repository: not ours to answer
        exists, is_dir = self.overlay.exists(rel), self.overlay.is_dir(rel)
        if not exists and command != "create":
            return f"The path {path} does not exist. Please provide a valid path."
        if exists and command == "create":
            return f"File already exists at: {path}. Cannot overwrite files using command `create`."
        if is_dir and command != "view":
            return f"The path {path} is a directory and only the `view` command can be used on directories"
        if command == "view":
            return self.view(rel, path, view_range)
        if command == "create":
            if file_text is None:
                return "Parameter `file_text` is required for command: create"
            self.overlay.write_text(rel, file_text)
            self.history.setdefault(rel, []).append(file_text)
            return f"File created successfully at: {path}"
        if command == "str_replace":
            return self.str_replace(rel, path, old_str, new_str) if old_str is not None else "Parameter `old_str` is required for command: str_replace"
        if command == "insert":
            if insert_line is None or new_str is None:
                return f"Parameter `{'insert_line' if insert_line is None else 'new_str'}` is required for command: insert"
            return self.insert(rel, path, insert_line, new_str)
        if command == "undo_edit":
            if not self.history.get(rel):
                return f"No edit history found for {path}."
            old = self.history[rel].pop()
            self.overlay.write_text(rel, old)
            return f"Last edit to {path} undone successfully. {numbered(old, path)}"
        return (f'Unrecognized command {command}. The allowed commands for the str_replace_editor tool are: "view", '
                '"create", "str_replace", "insert", "undo_edit"')

    def view(self, rel: str, path: str, view_range: list[int] | None) -> str:
        if self.overlay.is_dir(rel):
            if view_range:
                return "The `view_range` parameter is not allowed when `path` points to a directory."
            prefix = f"{rel}/" if rel else ""
            entries = {path}
            for p in self.overlay.paths():
                parts = p[len(prefix):].split("/") if p.startswith(prefix) else []
                for depth in range(1, min(len(parts), 2) + 1):
                    if not any(part.startswith(".") for part in parts[:depth]):
                        entries.add(f"{path}/{'/'.join(parts[:depth])}")
            listing = "\n".join(sorted(entries))
            return f"Here's the files and directories up to 2 levels deep in {path}, excluding hidden items:\n{listing}\n\n"
        content = self.overlay.read_text(rel)
        init = 1
        if view_range:
            lines = content.split("\n")
            lo, hi = view_range
            if lo < 1 or lo > len(lines):
                return (f"Invalid `view_range`: {view_range}. Its first element `{lo}` should be within the range of lines "
                        f"of the file: {[1, len(lines)]}")
            if hi > len(lines):
                return (f"Invalid `view_range`: {view_range}. Its second element `{hi}` should be smaller than the number "
                        f"of lines in the file: `{len(lines)}`")
            if hi != -1 and hi < lo:
                return f"Invalid `view_range`: {view_range}. Its second element `{hi}` should be larger or equal than its first `{lo}`"
            content, init = "\n".join(lines[lo - 1:len(lines) if hi == -1 else hi]), lo
        return numbered(content, path, init)

    def str_replace(self, rel: str, path: str, old: str, new: str | None) -> str:
        text = self.overlay.read_text(rel).expandtabs()
        old, new = old.expandtabs(), (new or "").expandtabs()
        count = text.count(old)
        if count == 0:
            return f"No replacement was performed, old_str `{old}` did not appear verbatim in {path}."
        if count > 1:
            lines = [i + 1 for i, line in enumerate(text.split("\n")) if old in line]
            return f"No replacement was performed. Multiple occurrences of old_str `{old}` in lines {lines}. Please ensure it is unique"
        if new == old:
            return f"No replacement was performed, old_str `{old}` is the same as new_str `{new}`."
        updated = text.replace(old, new)
        self.overlay.write_text(rel, updated)
        self.history.setdefault(rel, []).append(text)
        at = text.split(old)[0].count("\n")
        start = max(1, at - SNIPPET_LINES)
        end = min(at + SNIPPET_LINES + new.count("\n"), len(updated.splitlines()))
        snippet = "\n".join(updated.split("\n")[start - 1:end])
        return (f"The file {path} has been edited. {numbered(snippet, f'a snippet of {path}', start)}"
                "Review the changes and make sure they are as expected. Edit the file again if necessary.")

    def insert(self, rel: str, path: str, line: int, new: str) -> str:
        text = self.overlay.read_text(rel).expandtabs()
        lines, new_lines = text.split("\n"), new.expandtabs().split("\n")
        if line < 0 or line > len(lines):
            return f"Invalid `insert_line` parameter: {line}. It should be within the range of lines of the file: {[0, len(lines)]}"
        self.overlay.write_text(rel, "\n".join(lines[:line] + new_lines + lines[line:]))
        self.history.setdefault(rel, []).append(text)
        snippet = "\n".join(lines[max(0, line - SNIPPET_LINES):line] + new_lines + lines[line:line + SNIPPET_LINES])
        return (f"The file {path} has been edited. {numbered(snippet, 'a snippet of the edited file', max(1, line - SNIPPET_LINES + 1))}"
                "Review the changes and make sure they are as expected (correct indentation, no duplicate lines, etc). "
                "Edit the file again if necessary.")
