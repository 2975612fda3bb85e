"""SWE-agent's cursor editor (v0 `cursors_*` interface): `edit` replaces the lines between two cursors.

The window is centred on the current line with integer halves; cursors are pulled into the window on
every print and the move is reported; the linter reports every error of the file after the edit (this
interface does not compare with the errors before it).
"""

from __future__ import annotations

from depsim_assets.core.agentic.lint import lint
from depsim_assets.core.agentic.windowed import EDIT_OK_V0, Editor, lint_failure_v0

START_MARK, END_MARK = "<<<<< START CURSOR >>>>>", "<<<<< END CURSOR >>>>>"


class CursorEditor(Editor):
    start_cursor: int = 0  # unset in a fresh shell: the first print moves both into the window
    end_cursor: int = 0

    def _span(self, total: int, window: int) -> tuple[int, int]:
        cur = int(self.line)
        return max(1, cur - window // 2), min(total, cur + window // 2)

    def render(self, text: str | None = None, *, line: float | None = None, window: int | None = None, absolute: bool = False) -> str:
        text = self.text() if text is None else text
        window = self.window if window is None else window
        saved = self.line
        self.line = self.line if line is None else line
        lines = text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")
        total = max(len(lines), 1)
        start, end = self._span(total, window)
        warnings = []
        for name in ("start_cursor", "end_cursor"):
            value = getattr(self, name)
            moved = start if value < start else end if value > end else None
            if moved is not None:
                setattr(self, name, moved)
                warnings.append(f"{name.upper()} moved to {moved}")
        shown = lines[start - 1:end]
        out = [f"[File: {self.abs(self.current_file or '')} ({len(lines)} lines total)]"]
        if start > 1:
            out.append(f"({start - 1} more lines above)")
        for i in range(len(shown) + 1):
            number = start + i
            if number == self.start_cursor:
                out.append(START_MARK)
            if i < len(shown):
                out.append(f"{number}:{shown[i]}")
            if number == self.end_cursor:
                out.append(END_MARK)
        below = max(0, len(lines) - start - len(shown))
        if below > 0:
            out.append(f"({below} more lines below)")
        if warnings:
            out += warnings + ["", ""]
        self.line = saved
        return "\n".join(out)

    def open(self, rel: str, typed: str, target: int | None) -> str:
        self.current_file, self.shown_as = rel, typed
        self.line = target if target is not None else self.window / 2
        self._constrain()
        return self.render()

    def set_cursors(self, start: int, end: int) -> str:
        if start > end:
            return "Usage: set_cursors <start_line> <end_line>\nError: start_line must be less than or equal to end_line"
        self.start_cursor, self.end_cursor = start, end
        return self.render()

    def edit_cursors(self, replacement: str) -> tuple[str, bool]:
        path = self.current_file or ""
        old = self.text()
        s0, end = max(self.start_cursor - 1, 0), max(self.end_cursor, 0)
        repl = replacement.split("\n") if replacement else []
        lines = old.split("\n")[:-1] if old.endswith("\n") else old.split("\n")
        new = "".join(f"{line}\n" for line in lines[:s0] + repl + lines[end:])
        errors = lint(path, new)
        new_end = self.start_cursor if not repl else self.start_cursor + len(repl) - 1
        if not errors:
            self.overlay.write_text(path, new)
            self._constrain()
            self.end_cursor = new_end
            return f"{self.render()}\n{EDIT_OK_V0}", True
        listed = "\n".join(f"- {e.problem}" for e in errors)
        saved_end = self.end_cursor
        self.end_cursor = new_end
        applied = self._preview(new, len(repl) // 2 + s0, len(repl) + 10)
        self.end_cursor = saved_end
        original = self._preview(old, (end - s0) // 2 + s0, end - s0 + 10)
        self.end_cursor = saved_end
        return lint_failure_v0(listed, applied, original), False
