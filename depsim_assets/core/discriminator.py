"""Realism of simulated turns: a discriminator sees one context with two continuations — the real one and the
release's resampled one, in an order fixed by a seeded hash — and says which is real.

The simulator's win rate is the share of pairs where the simulated continuation was judged real: 50% means
the discriminator cannot tell them apart. The real continuation went through the same de-identification as
everything else in the warehouse, so surrogate names give nothing away. Position is randomised per pair, so
a discriminator that always answers "A" scores about 50%, not 0% or 100%.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from depsim_assets.core.graders.judge import fence_token, render_conversation
from depsim_assets.core.graders.verdicts import OutputMode, json_object, response_format, strict_schema
from depsim_assets.core.prefixes import real_response
from depsim_assets.core.stats import exact_interval

MARKER = "WHICH IS REAL?"
SYSTEM = ("You see the start of a conversation between a user and an AI assistant, then two candidate final replies, A "
          "and B. One was written in the real conversation; the other was generated afterwards to imitate it. Say which "
          'one is real. Answer only with JSON: {"real": "A" or "B", "confidence": a number from 0.5 to 1}.')


def pairs(prefixes: pl.DataFrame, completions: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    """prefix_id, messages (context), real, simulated, simulated_first. `prefixes`: prefix_id, kind, messages,
    reference_responses; `completions`: prefix_id, response_text (sample 0). Traffic prefixes only: an eval set
    has no real continuation."""
    rows = []
    joined = prefixes.filter(pl.col("kind") == "traffic").join(completions.select("prefix_id", "response_text"), on="prefix_id")
    for r in joined.iter_rows(named=True):
        real = real_response(r["reference_responses"])
        if real is None or r["response_text"] is None:
            continue
        h = hashlib.sha256(f"{seed}:{r['prefix_id']}".encode()).hexdigest()
        rows.append({"prefix_id": r["prefix_id"], "order": h, "simulated_first": int(h[-1], 16) % 2 == 0,
                     "messages": [{"role": m["role"], "content": m.get("content") or ""} for m in r["messages"]],
                     "real": real, "simulated": r["response_text"]})
    frame = pl.DataFrame(rows, schema={"prefix_id": pl.String, "order": pl.String, "simulated_first": pl.Boolean,
                                       "messages": pl.List(pl.Struct({"role": pl.String, "content": pl.String})),
                                       "real": pl.String, "simulated": pl.String})
    return frame.sort("order").head(n).drop("order")


class Choice(BaseModel):
    """The answer's shape, sent as a strict schema (see `awareness.ClassifierAnswer`)."""

    model_config = ConfigDict(extra="forbid")
    real: Literal["A", "B"]
    confidence: float = Field(ge=0.5, le=1)


CHOICE_SCHEMA = strict_schema(Choice)  # built once, not per request body


def discriminator_body(model: str, messages: list[dict[str, Any]], real: str, simulated: str, simulated_first: bool,
                       max_tokens: int, output: OutputMode = "json_schema") -> dict[str, Any]:
    first, second = (simulated, real) if simulated_first else (real, simulated)
    conversation = render_conversation(messages)
    fence = fence_token(conversation, first, second)
    user = (f"{MARKER}\n{fence} BEGIN CONVERSATION\n{conversation}\n{fence} END CONVERSATION\n"
            f"{fence} BEGIN A\n{first}\n{fence} END A\n{fence} BEGIN B\n{second}\n{fence} END B")
    return {"model": model, "temperature": 0, "max_tokens": max_tokens, "response_format": response_format(output, CHOICE_SCHEMA),
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]}


def parse_choice(text: str | None) -> tuple[str | None, float | None, str | None]:
    """("A" or "B", confidence, failure reason)."""
    raw = json_object(text)
    choice = str(raw.get("real", "")).strip().upper() if raw is not None else ""
    if choice not in ("A", "B"):
        return None, None, "malformed_discriminator_output"
    conf = raw.get("confidence")
    return choice, float(conf) if isinstance(conf, int | float) and 0 <= conf <= 1 else None, None


def judged_real(frame: pl.DataFrame) -> pl.Series:
    """Per pair: was the simulated continuation judged the real one? (null where the discriminator failed)."""
    simulated_letter = pl.when(pl.col("simulated_first")).then(pl.lit("A")).otherwise(pl.lit("B"))
    verdict = pl.when(pl.col("choice").is_null()).then(None).otherwise(pl.col("choice") == simulated_letter)
    return frame.select(verdict.alias("simulated_judged_real")).to_series()


def win_rate(frame: pl.DataFrame, alpha: float) -> dict[str, Any]:
    """The simulator's win rate with an exact interval (50%: indistinguishable)."""
    ok = frame.filter(pl.col("simulated_judged_real").is_not_null())
    n, k = len(ok), int(ok["simulated_judged_real"].sum())
    lo, hi = exact_interval(k, n, alpha) if n else (None, None)
    return {"pairs": len(frame), "judged": n, "failed": len(frame) - n, "simulated_judged_real": k,
            "win_rate": k / n if n else None, "lo": lo, "hi": hi,
            "first_position_share": float((ok["choice"] == "A").mean()) if n else None}


def tool_pairs(calls: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    """Answered calls of a leave-one-out replay as (recorded, simulated) output pairs with their answering layer:
    trajectory, call, provenance, command, real, simulated, simulated_first; `n` per layer, seeded order."""
    answered = calls.filter(pl.col("answered")).with_columns(
        key=pl.concat_str(pl.lit(f"{seed}:"), "trajectory", pl.lit(":"), pl.col("call").cast(pl.String)))
    order = answered["key"].map_elements(lambda k: hashlib.sha256(k.encode()).hexdigest(), return_dtype=pl.String)
    return (answered.with_columns(order=order, simulated_first=order.str.slice(-1).str.to_integer(base=16) % 2 == 0)
            .sort("order").group_by("provenance", maintain_order=True).head(n)
            .select("trajectory", "call", "provenance", "command", real="recorded", simulated="simulated", simulated_first="simulated_first"))


def tool_body(model: str, command: str, real: str, simulated: str, simulated_first: bool, max_tokens: int,
              output: OutputMode = "json_schema") -> dict[str, Any]:
    """The same question for one tool call: which output did the real tool print?"""
    messages = [{"role": "user", "content": f"(a coding agent runs a tool in a repository checkout)\n$ {command}"}]
    return discriminator_body(model, messages, real, simulated, simulated_first, max_tokens, output)
