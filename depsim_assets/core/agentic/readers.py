"""Trajectory readers: one module per format, one registration here.

A reader says whether a decoded document is its format (`accepts`) and turns it into `Trajectory`
objects (`read`), raising `Rejected` with a reason for what cannot be replayed. Adding a format (an
OpenHands event stream, say) is one module with a class like these and one line in `READERS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import orjson

from depsim_assets.core.agentic.openai_tools import OpenAIToolsReader
from depsim_assets.core.agentic.swe_agent import SWEAgentReader
from depsim_assets.core.agentic.trajectory import Rejected, Trajectory


class TrajectoryReader(Protocol):
    name: str

    def accepts(self, document: Any) -> bool: ...

    def read(self, document: Any, origin: str, hints: dict[str, str]) -> list[Trajectory]: ...


READERS: dict[str, TrajectoryReader] = {r.name: r for r in (SWEAgentReader(), OpenAIToolsReader())}


def documents(path: Path) -> Iterator[tuple[str, Any]]:
    """(origin, decoded document): a whole-file JSON document, else one per JSON line."""
    data = path.read_bytes()
    try:
        whole = orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    else:
        items = whole if isinstance(whole, list) else [whole]
        yield from ((f"{path.name}[{i}]" if isinstance(whole, list) else path.name, doc) for i, doc in enumerate(items))
        return
    for no, line in enumerate(data.splitlines(), 1):
        if line.strip():
            try:
                yield f"{path.name}:{no}", orjson.loads(line)
            except orjson.JSONDecodeError:
                yield f"{path.name}:{no}", Rejected("not_a_trajectory", "line is not JSON")


def read_trajectories(paths: list[Path], fmt: str = "auto", hints: dict[str, str] | None = None,
                      admit: Callable[[Any], bool] | None = None) -> tuple[list[Trajectory], list[dict]]:
    """Every trajectory in `paths`, and one quarantine row (origin, reason, detail) per failure; a
    document `admit` refuses (no consent) is a `no_consent` row, never read."""
    kept: list[Trajectory] = []
    quarantine: list[dict] = []
    for path in paths:
        for origin, doc in documents(path):
            try:
                if isinstance(doc, Rejected):
                    raise doc
                if admit is not None and not admit(doc):
                    raise Rejected("no_consent", "the record's consent field does not allow this use")
                reader = READERS.get(fmt) if fmt != "auto" else next((r for r in READERS.values() if r.accepts(doc)), None)
                if reader is None or not reader.accepts(doc):
                    raise Rejected("not_a_trajectory", f"no reader recognises this document (format {fmt})")
                kept += reader.read(doc, origin, hints or {})
            except Rejected as err:
                quarantine.append({"origin": origin, "reason": err.reason, "detail": err.detail})
    return kept, quarantine
