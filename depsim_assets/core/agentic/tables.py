"""Trajectories, agentic prefixes, recorded calls and rollouts as warehouse tables.

A trajectory is stored whole, as its validated JSON document, next to flat columns for SQL and the
UI (repository, format, counts). Reading back validates the document again, so a table edited by hand
fails loudly rather than replaying something else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import orjson
import polars as pl

from depsim_assets.core.agentic.destructive import destructive
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


ROLLOUT_SCHEMA = pl.Schema({
    "prefix_id": pl.String, "trajectory_id": pl.String, "steps": pl.UInt32, "stop_reason": pl.String, "stop_detail": pl.String,
    "tool_calls": pl.UInt32, "recorded": pl.UInt32, "snapshot": pl.UInt32, "llm": pl.UInt32, "unanswered": pl.UInt32,
    "destructive_actions": pl.List(pl.String), "final_text": pl.String, "transcript": pl.String, "request_keys": pl.List(pl.String),
})


def rollout_table(rollouts: list, scrub: Callable[[list[str], list[str]], list[str]]) -> pl.DataFrame:
    """One row per rollout; every text (replies, commands, tool outputs, reasons) through `scrub(texts, groups)`
    in one call (it gates: a leak raises before a row exists)."""
    texts, groups = [], []
    for r in rollouts:
        own = [*r.replies, *(x for t in r.tools for x in (t.command, t.output)), r.stop_detail]
        texts += own
        groups += [r.prefix.trajectory_id] * len(own)
    clean = iter(scrub(texts, groups))
    rows = []
    for r in rollouts:
        replies = [next(clean) for _ in r.replies]
        tools = [(t, next(clean), next(clean)) for t in r.tools]
        detail = next(clean)
        transcript = [{"step": i + 1, "reply": reply} for i, reply in enumerate(replies)]
        for t, command, output in tools:
            transcript[t.step - 1].setdefault("tools", []).append(
                {"call_id": t.call_id, "command": command, "output": output, "provenance": t.provenance, "detail": t.detail})
        provenance = Counter(t.provenance for t in r.tools)
        rows.append({
            "prefix_id": r.prefix.prefix_id, "trajectory_id": r.prefix.trajectory_id, "steps": r.steps, "stop_reason": r.stop,
            "stop_detail": detail, "tool_calls": len(r.tools), **{k: provenance.get(k, 0) for k in ("recorded", "snapshot", "llm", "unanswered")},
            "destructive_actions": sorted({hit for t, command, _ in tools for hit in destructive(command, r.prefix.interface.root)}),
            "final_text": replies[-1] if replies else None, "transcript": orjson.dumps(transcript).decode(),
            "request_keys": r.request_keys,
        })
    return pl.DataFrame(rows, schema=ROLLOUT_SCHEMA)
