"""Rollouts as items the graders take: the prefix's messages as context, the rollout as the completion.

The completion text is the rollout as a reader would audit it: each candidate turn, each command it
ran and each tool output with the layer that answered it (a judge must know that an output was
simulated by a model, not run). `tool_calls` lists every call of the rollout, so rules (destructive
actions, tool misuse) and the `has_tool_calls` eligibility see them; `attributes` carries the working
directory root and the stop reason.
"""

from __future__ import annotations

import orjson
import polars as pl

from depsim_assets.core.agentic.prefix import AgenticPrefix
from depsim_assets.core.prefixes import PREFIX_SCHEMA
from depsim_assets.core.stats import exact_interval

MESSAGES = PREFIX_SCHEMA["messages"]


def render(transcript: list[dict]) -> str:
    lines = []
    for step in transcript:
        if step.get("reply"):
            lines.append(f"[step {step['step']}] {step['reply']}")
        for tool in step.get("tools", []):
            lines.append(f"$ {tool['command']}\n[tool output, answered by: {tool['provenance']}]\n{tool['output']}")
    return "\n\n".join(lines)


def _messages(prefix: AgenticPrefix) -> list[dict]:
    return [{"role": m.role, "content": m.content, "tool_call_id": m.tool_call_id, "name": m.name,
             "tool_calls": orjson.dumps([{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                                         for c in m.tool_calls]).decode() if m.tool_calls else None} for m in prefix.messages]


def rollout_items(rollouts: pl.DataFrame, prefixes: pl.DataFrame) -> pl.DataFrame:
    by_id = {p.prefix_id: p for p in (AgenticPrefix.model_validate_json(d) for d in prefixes["document"].to_list())}
    rows = []
    for r in rollouts.iter_rows(named=True):
        prefix = by_id[r["prefix_id"]]
        transcript = orjson.loads(r["transcript"])
        calls = [{"id": t["call_id"], "type": "function", "function": {"name": t["command"].split(maxsplit=1)[0] if t["command"].strip() else "",
                                                                      "arguments": orjson.dumps({"command": t["command"]}).decode()}}
                 for step in transcript for t in step.get("tools", [])]
        answered = bool(r["steps"]) and not (r["stop_reason"] == "model_call_failed" and not any(s.get("reply") for s in transcript))
        rows.append({
            "prefix_id": r["prefix_id"], "sample_index": 0, "response_text": render(transcript),
            "tool_calls": orjson.dumps(calls).decode() if calls else None, "reasoning": None, "status": "ok" if answered else "failed",
            "conversation_id": r["trajectory_id"], "attributes": orjson.dumps({"root": prefix.interface.root, "stop_reason": r["stop_reason"]}).decode(),
            "messages": _messages(prefix),
        })
    return pl.DataFrame(rows, schema={"prefix_id": pl.String, "sample_index": pl.Int64, "response_text": pl.String, "tool_calls": pl.String,
                                      "reasoning": pl.String, "status": pl.String, "conversation_id": pl.String, "attributes": pl.String,
                                      "messages": MESSAGES})


def category_rates(labels: pl.DataFrame) -> pl.DataFrame:
    """Per (grader, category): eligible rollouts, flagged, and the rate with its exact (Clopper-Pearson) 95% interval."""
    counts = labels.filter(pl.col("status") == "ok").group_by("grader_id", "category").agg(
        eligible=pl.col("eligible").sum(), flagged=(pl.col("flagged").fill_null(False) & pl.col("eligible")).sum()).sort("grader_id", "category")
    bounds = [exact_interval(k, n) if n else (None, None) for k, n in counts.select("flagged", "eligible").iter_rows()]
    return counts.with_columns(rate=pl.when(pl.col("eligible") > 0).then(pl.col("flagged") / pl.col("eligible")),
                               lo=pl.Series([b[0] for b in bounds], dtype=pl.Float64), hi=pl.Series([b[1] for b in bounds], dtype=pl.Float64))
