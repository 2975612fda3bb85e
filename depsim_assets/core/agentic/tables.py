"""Trajectories, agentic prefixes and recorded calls as warehouse tables.

A trajectory is stored whole, as its validated JSON document, next to flat columns for SQL and the
UI (repository, format, counts). Reading back validates the document again, so a table edited by hand
fails loudly rather than replaying something else.
"""

from __future__ import annotations

import orjson
import polars as pl

from depsim_assets.core.agentic.prefix import AgenticPrefix
from depsim_assets.core.agentic.recorded_calls import RecordedCalls
from depsim_assets.core.agentic.trajectory import Trajectory

TRAJECTORY_SCHEMA = pl.Schema({
    "trajectory_id": pl.String, "source": pl.String, "format": pl.String, "repo_name": pl.String, "base_commit": pl.String,
    "snapshot": pl.String, "generation": pl.String, "messages": pl.UInt32, "calls": pl.UInt32, "tools": pl.UInt32,
    "document": pl.String,
})
PREFIX_SCHEMA = pl.Schema({
    "prefix_id": pl.String, "trajectory_id": pl.String, "step": pl.UInt32, "steps": pl.UInt32, "repo_name": pl.String,
    "base_commit": pl.String, "messages": pl.UInt32, "document": pl.String,
})
RECORDED_SCHEMA = pl.Schema({
    "repo_name": pl.String, "base_commit": pl.String, "state_key": pl.String, "answer": pl.String, "times": pl.UInt32,
    "trajectories": pl.List(pl.String),
})


def trajectory_table(trajectories: list[Trajectory]) -> pl.DataFrame:
    return pl.DataFrame([{
        "trajectory_id": t.id, "source": t.source.split(":")[0], "format": t.format,
        "repo_name": t.repo.name if t.repo else None, "base_commit": t.repo.base_commit if t.repo else None,
        "snapshot": t.repo.snapshot if t.repo else None, "generation": t.interface.generation,
        "messages": len(t.messages), "calls": len(t.calls()), "tools": len(t.tools), "document": t.model_dump_json(),
    } for t in trajectories], schema=TRAJECTORY_SCHEMA)


def trajectories_of(table: pl.DataFrame) -> list[Trajectory]:
    return [Trajectory.model_validate_json(d) for d in table["document"].to_list()]


def prefix_table(prefixes: list[AgenticPrefix]) -> pl.DataFrame:
    return pl.DataFrame([{
        "prefix_id": p.prefix_id, "trajectory_id": p.trajectory_id, "step": p.step, "steps": p.steps,
        "repo_name": p.repo.name if p.repo else None, "base_commit": p.repo.base_commit if p.repo else None,
        "messages": len(p.messages), "document": p.model_dump_json(),
    } for p in prefixes], schema=PREFIX_SCHEMA)


def recorded_table(calls: RecordedCalls) -> pl.DataFrame:
    rows = [{"repo_name": repo, "base_commit": commit, "state_key": key, "answer": answer, "times": n,
             "trajectories": sorted(calls.origins.get(key, ()))}
            for (repo, commit), table in calls.answers.items() for key, counts in table.items() for answer, n in counts.items()]
    return pl.DataFrame(rows, schema=RECORDED_SCHEMA)


def recorded_of(table: pl.DataFrame) -> RecordedCalls:
    calls = RecordedCalls()
    for row in table.iter_rows(named=True):
        calls.answers[(row["repo_name"], row["base_commit"])][row["state_key"]][row["answer"]] += row["times"]
        calls.origins[row["state_key"]].update(row["trajectories"])
    return calls


def documents_json(frame: pl.DataFrame) -> list[dict]:
    return [orjson.loads(d) for d in frame["document"].to_list()]
