"""The linter SWE-agent's edit commands run, reimplemented in-process.

SWE-agent shells out to `flake8 --select=F821,F822,F831,E111,E112,E113,E999,E902` and rejects an edit
that introduces a new error. The simulator may start no subprocess, so syntax errors come from
`compile()` (E999) and name errors from pyflakes' checker (F821 undefined name, F822 undefined name in
`__all__`, F831 duplicate argument), which is what flake8 itself delegates to. The E11x indentation
warnings (pycodestyle) are not reproduced: an edit that only trips those is accepted here.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from pyflakes import checker, messages

PYFLAKES_CODES = {
    messages.UndefinedName: "F821",
    messages.UndefinedExport: "F822",
    messages.DuplicateArgument: "F831",
}


@dataclass(frozen=True)
class LintError:
    line: int
    col: int
    problem: str  # "E999 IndentationError: unexpected indent"


def lint(path: str, text: str) -> list[LintError]:
    if not path.endswith(".py"):
        return []
    try:
        tree = compile(text, path, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as err:
        name = type(err).__name__
        return [LintError(err.lineno or 1, (err.offset or 1), f"E999 {name}: {err.msg}")]
    found = []
    for message in checker.Checker(tree, filename=path).messages:
        code = PYFLAKES_CODES.get(type(message))
        if code:
            found.append(LintError(message.lineno, message.col + 1, f"{code} {message.message % message.message_args}"))
    return sorted(found, key=lambda e: (e.line, e.col))


def new_errors(before: list[LintError], after: list[LintError], window: tuple[int, int], n_replacement: int) -> list[LintError]:
    """Errors the edit of 1-based lines `window` (replaced by `n_replacement` lines) introduced.

    Errors before the edit are moved by the edit's line shift; those inside the edited lines are not
    excused; anything above the window is not the edit's doing."""
    start, end = window
    shift = n_replacement - (end - start + 1)
    excused = set()
    for e in before:
        if e.line < start:
            excused.add(e)
        elif e.line > end:
            excused.add(LintError(e.line + shift, e.col, e.problem))
    return [e for e in after if e not in excused and e.line >= start]
