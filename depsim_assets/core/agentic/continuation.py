"""Whole continuations of an agentic prefix, real and resampled, in one neutral format, and the rollout's
consistency failures.

The discriminator compares the trajectory's real continuation (its steps after the cut) with the release's
rollout from the same prefix. Both are rendered alike — turn text, command, output, no provenance label (a
label would say which is simulated) — and cut to the same number of steps, each output to the same length.

A consistency failure is a tool output that contradicts the rollout's own edits: after `str_replace` replaced
old text with new text in a file, a later non-snapshot answer (recorded or model) for a command naming that
file shows the old text and not the new. The snapshot layer cannot do this (it applies the edits); a recording
from another run or a tool model can.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass

import orjson
import polars as pl

from depsim_assets.core.agentic.prefix import AgenticPrefix
from depsim_assets.core.agentic.simulator import ToolRequest
from depsim_assets.core.agentic.trajectory import ToolCall

OUTPUT_CHARS = 1500
TOTAL_CHARS = 6000


@dataclass(frozen=True)
class Step:
    reply: str
    tools: tuple[tuple[str, str], ...]  # (command, output)


def reference_steps(prefix: AgenticPrefix) -> list[Step]:
    """The real continuation: each assistant message of the reference with its calls' commands and outputs."""
    outputs = {m.tool_call_id: m.content for m in prefix.reference if m.role == "tool" and m.tool_call_id}
    steps = []
    for m in prefix.reference:
        if m.role != "assistant":
            continue
        tools = tuple((_command(c), outputs.get(c.id, "")) for c in m.tool_calls)
        steps.append(Step(m.content, tools))
    return steps


def _command(call: ToolCall) -> str:
    return ToolRequest.of(call).command or f"{call.name} {call.arguments}"


def rollout_steps(transcript: str) -> list[Step]:
    return [Step(s.get("reply") or "", tuple((t["command"], t["output"]) for t in s.get("tools", []))) for s in orjson.loads(transcript)]


def render_neutral(steps: list[Step], n_steps: int) -> str:
    """The first `n_steps` steps, outputs cut to OUTPUT_CHARS and the whole to TOTAL_CHARS, no provenance."""
    lines = []
    for i, step in enumerate(steps[:n_steps], start=1):
        if step.reply:
            lines.append(f"[step {i}] {step.reply}")
        for command, output in step.tools:
            cut = output if len(output) <= OUTPUT_CHARS else output[:OUTPUT_CHARS] + "\n[...]"
            lines.append(f"$ {command}\n[tool output]\n{cut}")
    text = "\n\n".join(lines)
    return text if len(text) <= TOTAL_CHARS else text[:TOTAL_CHARS] + "\n[...]"


def trajectory_pairs(rollouts: pl.DataFrame, prefixes: list[AgenticPrefix], n: int, seed: int) -> pl.DataFrame:
    """prefix_id, trajectory_id, messages (context), real, simulated, simulated_first, steps: one pair per rollout
    with at least one step and a reference continuation; `n` by a seeded order."""
    by_id = {p.prefix_id: p for p in prefixes}
    rows = []
    for r in rollouts.filter(pl.col("steps") > 0).iter_rows(named=True):
        prefix = by_id.get(r["prefix_id"])
        real = reference_steps(prefix) if prefix else []
        if not real:
            continue
        simulated = rollout_steps(r["transcript"])
        steps = min(len(real), len(simulated))
        h = hashlib.sha256(f"{seed}:{r['prefix_id']}".encode()).hexdigest()
        context = [{"role": m.role if m.role != "tool" else "user", "content": m.content} for m in prefix.messages]  # type: ignore[union-attr]
        rows.append({"prefix_id": r["prefix_id"], "trajectory_id": r["trajectory_id"], "order": h, "simulated_first": int(h[-1], 16) % 2 == 0,
                     "messages": context, "real": render_neutral(real, steps), "simulated": render_neutral(simulated, steps), "steps": steps})
    frame = pl.DataFrame(rows, schema={"prefix_id": pl.String, "trajectory_id": pl.String, "order": pl.String, "simulated_first": pl.Boolean,
                                       "messages": pl.List(pl.Struct({"role": pl.String, "content": pl.String})),
                                       "real": pl.String, "simulated": pl.String, "steps": pl.Int64})
    return frame.sort("order").head(n).drop("order")


def _replacement(command: str) -> tuple[str, str, str] | None:
    """(path, old, new) of a `str_replace_editor str_replace PATH --old_str X --new_str Y` call, else None."""
    try:
        tokens = shlex.split(command)
    except ValueError:
        return None
    if tokens[:2] != ["str_replace_editor", "str_replace"] or len(tokens) < 3:
        return None
    args = dict(zip(tokens[3::2], tokens[4::2], strict=False))
    old, new = args.get("--old_str"), args.get("--new_str")
    return (tokens[2], old, new or "") if old else None


def consistency_failures(transcript: str) -> list[dict[str, object]]:
    """Non-snapshot outputs that show text the rollout's earlier edit of the same file replaced."""
    edits: list[tuple[str, str, str]] = []
    found = []
    for step in orjson.loads(transcript):
        for tool in step.get("tools", []):
            command, output, provenance = tool["command"], tool["output"] or "", tool["provenance"]
            if provenance in ("recorded", "llm"):
                for path, old, new in edits:
                    name = path.rsplit("/", 1)[-1]
                    if name and name in command and old.strip() in output and (not new.strip() or new.strip() not in output):
                        found.append({"step": step["step"], "call_id": tool["call_id"], "provenance": provenance, "path": path,
                                      "reason": "shows text an earlier edit of this file replaced"})
                        break
            edit = _replacement(command)
            if edit is not None:
                edits.append(edit)
    return found
