"""How faithfully the simulator answers real calls: hide each recorded answer and compare.

`leave_one_out` holds out each trajectory in turn, builds the recorded layer from the others, replays
the held-out trajectory's calls in order through a fresh session and compares every answer with the
one recorded: exactly, and after whitespace normalisation (line endings, runs of spaces/tabs, a final
newline). Calls are classed as read/search/view, edit, or execution (what only running code answers).
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import polars as pl

from depsim_assets.core.agentic.overlay import Snapshot
from depsim_assets.core.agentic.recorded_calls import RecordedCalls, RecordedLayer
from depsim_assets.core.agentic.simulator import Session, Simulator, SnapshotLayer, ToolRequest, ToolResponse
from depsim_assets.core.agentic.trajectory import Trajectory

READ_VERBS = {"ls", "cat", "head", "tail", "find", "grep", "open", "goto", "scroll_up", "scroll_down", "find_file",
              "search_file", "search_dir", "pwd", "set_cursors", "view"}
EDIT_VERBS = {"create", "edit", "insert", "rm", "touch", "mkdir", "mv", "cp", "submit", "str_replace_editor", "cd"}


def call_class(request: ToolRequest) -> str:
    if request.verb == "str_replace_editor":
        return "edit" if request.mutates else "read"
    if request.verb == "git":
        return "read" if (request.command or "").split()[1:2] in (["diff"], ["status"]) else "execution"
    return "read" if request.verb in READ_VERBS else "edit" if request.verb in EDIT_VERBS else "execution"


def normalise(text: str) -> str:
    return re.sub(r"[ \t]+", " ", text.replace("\r\n", "\n")).strip()


def _ask_tool_model(tool_model: Any, trajectory: Trajectory, k: int, index: int, request: ToolRequest, session: Session) -> ToolResponse:
    """The `llm` layer on a held-out call: the tool model sees the trajectory up to the call (never its answer or
    anything after it), the files the command names in the replay's current state, and nothing else."""
    prefix = SimpleNamespace(prefix_id=f"{trajectory.id}:{k}", repo=trajectory.repo, interface=trajectory.interface,
                             messages=trajectory.messages[:index], reference=())
    return tool_model.answer([(SimpleNamespace(prefix=prefix, session=session, tools=[]), request)])[0]


def replay(trajectory: Trajectory, simulator: Simulator, snapshot: Snapshot | None, tool_model: Any = None) -> list[dict]:
    rows = []
    with Session(trajectory.repo, trajectory.interface, snapshot) as session:
        for k, (index, call, recorded) in enumerate(trajectory.calls()):
            request = ToolRequest.of(call)
            response = simulator.answer(request, session)
            if response.provenance == "unanswered" and tool_model is not None:
                response = _ask_tool_model(tool_model, trajectory, k, index, request, session)
            answered = response.provenance != "unanswered"
            rows.append({
                "trajectory": trajectory.id, "call": k, "verb": request.verb, "call_class": call_class(request),
                "provenance": response.provenance, "answered": answered,
                "exact": answered and response.output == recorded,
                "normalised": answered and normalise(response.output) == normalise(recorded),
                "detail": response.detail,
                # The texts, for the realism discriminator (the stored trajectories are de-identified already).
                "command": request.command or f"{request.name} {request.arguments}", "recorded": recorded, "simulated": response.output,
            })
    return rows


def leave_one_out(trajectories: list[Trajectory], snapshot_for: Callable[[Trajectory], Snapshot | None],
                  recorded: bool, tool_model: Any = None) -> pl.DataFrame:
    """Each trajectory replayed through the layers built without it; with `tool_model` (a `ToolModel`), calls the
    deterministic layers leave unanswered go to it, as in a rollout."""
    rows = []
    for held in trajectories:
        layers: list = [SnapshotLayer()]
        if recorded:
            layers.insert(0, RecordedLayer(RecordedCalls.build([t for t in trajectories if t.id != held.id])))
        rows += replay(held, Simulator(layers), snapshot_for(held), tool_model)
    return pl.DataFrame(rows)


def summary(calls: pl.DataFrame) -> pl.DataFrame:
    """Per call class and answering layer: calls, share answered, share exact / normalised among answered."""
    by_class = calls.group_by("call_class").agg(
        pl.len().alias("calls"), pl.col("answered").mean().alias("answered"),
        (pl.col("exact").sum() / pl.col("answered").sum()).alias("exact_of_answered"),
        (pl.col("normalised").sum() / pl.col("answered").sum()).alias("normalised_of_answered"),
    ).with_columns(pl.lit("all").alias("provenance"))
    by_layer = calls.group_by("call_class", "provenance").agg(
        pl.len().alias("calls"), pl.col("answered").mean().alias("answered"),
        (pl.col("exact").sum() / pl.col("answered").sum()).alias("exact_of_answered"),
        (pl.col("normalised").sum() / pl.col("answered").sum()).alias("normalised_of_answered"),
    )
    return pl.concat([by_class.select(by_layer.columns), by_layer]).sort("call_class", "provenance")


def stored_snapshot(t: Trajectory) -> Snapshot | None:
    """The snapshot archive the trajectory's repository reference names, if it is there."""
    if t.repo is None or not t.repo.snapshot or not Path(t.repo.snapshot).is_file():
        return None
    return Snapshot.from_archive(t.repo.snapshot)


def snapshot_loader(archives: dict[tuple[str, str], Path]) -> Callable[[Trajectory], Snapshot | None]:
    """Snapshot for a trajectory from (repository, commit prefix) -> archive."""
    def load(t: Trajectory) -> Snapshot | None:
        if t.repo is None:
            return None
        for (name, commit), path in archives.items():
            if t.repo.name == name and (t.repo.base_commit or "").startswith(commit):
                return Snapshot.from_archive(path)
        return None
    return load
