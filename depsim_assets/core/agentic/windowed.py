"""SWE-agent's windowed file viewer and editor, in both interface generations.

`v0` (the shell-function interface, `swe_main` environments) keeps a *current line* at the centre of
the window and prints absolute paths; `v1` (the Python tools, function calling) keeps a *first line*
and prints the path as the agent typed it on `open`/`create`. Window arithmetic follows each
generation's own rounding, because an agent that scrolls expects the same line numbers a real run
gives. Messages are those of the tool versions that produced the published trajectories.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from depsim_assets.core.agentic.lint import lint, new_errors
from depsim_assets.core.agentic.overlay import Overlay

EDIT_OK_V0 = ("File updated. Please review the changes and make sure they are correct (correct indentation, "
              "no duplicate lines, etc). Edit the file again if necessary.")
EDIT_OK_V1 = ("File updated. Please review the changes and make sure they are correct\n(correct indentation, "
              "no duplicate lines, etc). Edit the file again if necessary.")
REPLACE_OK_V1 = EDIT_OK_V1.replace("File updated.", "Text replaced.")
RULE_V0, RULE_V1 = "-" * 49, "-" * 48


def lint_failure_v0(listed: str, applied: str, original: str) -> str:
    """The v0 shell editors' rejection of an edit (the line-range and the cursor editor print the same)."""
    return (
        "Your proposed edit has introduced new syntax error(s). Please understand the fixes and retry your edit "
        f"commmand.\n\nERRORS:\n{listed}\n\nThis is how your edit would have looked if applied\n{RULE_V0}\n{applied}\n"
        f"{RULE_V0}\n\nThis is the original code before your edit\n{RULE_V0}\n{original}\n{RULE_V0}\n"
        "Your changes have NOT been applied. Please fix your edit command and try again.\nYou either need to "
        "1) Specify the correct start/end line arguments or 2) Correct your edit code.\nDO NOT re-run the same "
        "failed edit command. Running it again will lead to the same error."
    )


def _round(x: float) -> int:
    """jq's round: halves away from zero."""
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


@dataclass
class Editor:
    overlay: Overlay
    generation: str = "v0"  # "v0" | "v1"
    window: int = 100
    overlap: int = 2
    root: str = "/testbed"
    current_file: str | None = None  # repository-relative path
    shown_as: str | None = None  # v1: the path as typed on open/create
    line: float = 0  # v0: current (centre) line; v1: first line, 0-based
    history: list[str] = field(default_factory=list)

    # -- file text helpers -------------------------------------------------------------------
    def text(self) -> str:
        return self.overlay.read_text(self.current_file or "")

    def abs(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def n_lines(self, text: str | None = None) -> int:
        text = self.text() if text is None else text
        if self.generation == "v1":
            return len(text.splitlines())
        return text.count("\n") + (0 if text.endswith("\n") or not text else 1)  # awk NR

    # -- rendering ---------------------------------------------------------------------------
    def render(self, text: str | None = None, *, line: float | None = None, window: int | None = None, absolute: bool = False) -> str:
        text = self.text() if text is None else text
        line = self.line if line is None else line
        window = self.window if window is None else window
        if self.generation == "v1":
            return self._render_v1(text, int(line), window, absolute)
        return self._render_v0(text, line, window)

    def _render_v0(self, text: str, cur: float, window: int) -> str:
        lines = text.split("\n")
        if text.endswith("\n"):
            lines = lines[:-1]
        total = len(lines)
        above = int(math.floor(max(0.0, cur - window / 2)))
        below = _round(max(0.0, total - cur - window / 2))
        head = int(math.floor(max(cur + window / 2, window / 2)))
        start = max(0, min(head, total) - window)
        out = [f"[File: {self.abs(self.current_file or '')} ({total} lines total)]"]
        if above > 0:
            out.append(f"({above} more lines above)")
        out += [f"{i + 1}:{lines[i]}" for i in range(start, min(head, total))]
        if below > 0:
            out.append(f"({below} more lines below)")
        return "\n".join(out)

    def _render_v1(self, text: str, first: int, window: int, absolute: bool) -> str:
        n = len(text.splitlines())
        first = max(0, min(first, n - window))
        last = min(first + window - 1, n - 1)
        shown = text.split("\n")[first:last + 1]
        path = self.abs(self.current_file or "") if absolute or not self.shown_as else self.shown_as
        out = [f"[File: {path} ({n} lines total)]"]
        if first > 0:
            out.append(f"({first} more lines above)")
        out += [f"{first + i + 1}:{line}" for i, line in enumerate(shown)]
        if last < n - 1:
            out.append(f"({n - last - 1} more lines below)")
        return "\n".join(out)

    # -- window movement ---------------------------------------------------------------------
    def _constrain(self, text: str | None = None, window: int | None = None) -> None:
        window = self.window if window is None else window
        n = self.n_lines(text)
        if self.generation == "v1":
            self.line = max(0, min(int(self.line), n - window))
        else:
            half = window // 2
            self.line = max(min(self.line, n - half), half)

    def goto_line(self, target: int) -> None:
        """Move the window so that 1-based `target` sits a sixth of the way down."""
        if self.generation == "v1":
            self.line = int((target - 1) - self.window / 6)
        else:
            self.line = math.floor(max(target + self.window / 2 - self.window // 6, 1))
        self._constrain()

    def open(self, rel: str, typed: str, target: int | None) -> str:
        self.current_file, self.shown_as = rel, typed
        warnings = []
        if target is None:
            self.line = 0 if self.generation == "v1" else self.window / 2
            self._constrain()
        else:
            n = self.n_lines()
            if self.generation == "v0" and target > n:
                warnings = [f"Warning: <line_number> ({target}) is greater than the number of lines in the file ({n})",
                            f"Warning: Setting <line_number> to {n}"]
                self.line = n
                self._constrain()
            else:
                self.goto_line(target)
        return "\n".join(warnings + [self.render()])

    def scroll(self, down: bool) -> str:
        step = self.window - self.overlap
        self.line += step if down else -step
        self._constrain()
        return self.render(absolute=True)

    # -- editing -----------------------------------------------------------------------------
    def edit_range(self, start: int, end: int, replacement: str) -> tuple[str, bool]:
        """Replace 1-based lines start..end; returns (output, applied)."""
        path = self.current_file or ""
        old = self.text()
        repl_lines = replacement.split("\n") if replacement else []
        if self.generation == "v1":
            parts = old.split("\n")
            parts[start - 1:end] = repl_lines
            new = "\n".join(parts)
        else:
            lines = old.split("\n")[:-1] if old.endswith("\n") else old.split("\n")
            new = "".join(f"{line}\n" for line in lines[:start - 1] + repl_lines + lines[end:])
        errors = new_errors(lint(path, old), lint(path, new), (start, end), len(repl_lines))
        if not errors:
            self.overlay.write_text(path, new)
            if self.generation == "v1":
                self.line = start - 1 - self.window / 6
                self._constrain()
                return f"{EDIT_OK_V1}\n{self.render(absolute=True)}\n", True
            self.line = start - 1
            self._constrain()
            return f"{self.render()}\n{EDIT_OK_V0}", True
        return self.lint_failure(errors, old, new, start, end, len(repl_lines)), False

    def lint_failure(self, errors: list, old: str, new: str, start: int, end: int, n_repl: int, replace: bool = False) -> str:
        listed = "\n".join(f"- {e.problem}" for e in errors)
        gap = "\n" if replace else ""  # the two v1 edit tools lay the error list out differently
        if self.generation == "v1":
            return (
                "Your proposed edit has introduced new syntax error(s). Please read this error message carefully "
                f"and then retry editing the file.\n\nERRORS:\n{gap}{listed}\n{'' if replace else chr(10)}This is how your edit would have looked if "
                f"applied\n{RULE_V1}\n{self.render(new, absolute=True)}\n{RULE_V1}\n\nThis is the original code before "
                f"your edit\n{RULE_V1}\n{self.render(old, absolute=True)}\n{RULE_V1}\n\nYour changes have NOT been applied. "
                "Please fix your edit command and try again.\nDO NOT re-run the same failed edit command. Running it "
                "again will lead to the same error." + ("" if replace else "\n")
            )
        s0 = start - 1
        applied = self._preview(new, n_repl // 2 + s0, n_repl + 10)
        original = self._preview(old, (end - s0 + 1) // 2 + s0, end - s0 + 10)
        return lint_failure_v0(listed, applied, original)

    def _preview(self, text: str, centre: float, window: int) -> str:
        saved = self.line
        self.line = centre
        self._constrain(text, window)
        out = self.render(text, window=window)
        self.line = saved
        return out

    def replace(self, search: str, replacement: str) -> tuple[str, bool]:
        """v1 `edit 'search' 'replace'`: replace the one occurrence in the displayed window."""
        path = self.current_file or ""
        old = self.text()
        n = len(old.splitlines())
        first = max(0, min(int(self.line), n - self.window))
        parts = old.split("\n")
        window_text = "\n".join(parts[first:first + self.window])
        if search not in window_text:
            hits = [old[:i].count("\n") + 1 for i in _find_all(old, search)]
            if hits:
                listed = "\n".join(f"- line {h}" for h in hits)
                return (f"Your edit was not applied (file not modified): Text {search!r} not found in displayed lines.\n\n"
                        f"However, we found the following occurrences of your search string in the file:\n\n{listed}\n\n"
                        "You can use the `goto` command to navigate to these locations before running the edit command again.\n"), False
            return (f"Your edit was not applied (file not modified): Text {search!r} not found in displayed lines "
                    "(or anywhere in the file).\nPlease modify your search string. Did you forget to properly handle "
                    "whitespace/indentation?\nYou can also call `open` again to re-display the file with the correct context.\n"), False
        at = first + window_text[:window_text.index(search)].count("\n")
        new_window = window_text.replace(search, replacement)
        parts[first:first + self.window] = new_window.split("\n")
        new = "\n".join(parts)
        window = (at + 1, at + len(search.split("\n")))
        errors = new_errors(lint(path, old), lint(path, new), window, len(replacement.split("\n")))
        saved = self.line
        self.line = at + 1 - self.window / 6  # this tool version moves to the 1-based line of the match
        self._constrain(new)
        if errors:
            applied = self.render(new, absolute=True)
            self.line = saved
            return self.lint_failure(errors, old, new, *window, len(replacement.split("\n")), replace=True).replace(
                self.render(new, absolute=True), applied, 1), False
        self.overlay.write_text(path, new)
        self._constrain()
        return f"{REPLACE_OK_V1}\n{self.render(absolute=True)}", True

    def insert(self, text: str, line: int | None) -> str:
        """v1 `insert <text> [<line>]`: after 1-based `line`, or at the end."""
        old = self.text()
        text = text[:-1] if text.endswith("\n") else text
        if line is None:
            body = old[:-1] if old.endswith("\n") else old
            new, at = (f"{body}\n{text}" if old else text), len(old.splitlines())
        else:
            parts = old.split("\n")
            parts.insert(line, text)
            new, at = "\n".join(parts), line
        self.overlay.write_text(self.current_file or "", new)
        self.line = at - self.window / 6
        self._constrain()
        return self.render(absolute=True)


def _find_all(text: str, sub: str):
    start = text.find(sub) if sub else -1
    while start != -1:
        yield start
        start = text.find(sub, start + len(sub))
