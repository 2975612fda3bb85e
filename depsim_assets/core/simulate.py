"""Plan a release's calls over the replay prefixes, decide what is missing, assemble the result table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import polars as pl

from depsim_assets.core.config import DispatchConfig, ReleaseConfig
from depsim_assets.core.dispatch import RETRIABLE, Call
from depsim_assets.core.requests import chat_body, estimate_tokens, request_key

COMPLETION_COLUMNS = [
    "prefix_id", "conversation_id", "sample_index", "snapshot_id", "request_key", "model", "backend", "status",
    "failure_reason", "attempts", "response_text", "tool_calls", "reasoning", "finish_reason", "prompt_tokens",
    "completion_tokens", "latency_ms", "cost_usd", "served_from_store",
]


@dataclass
class Plan:
    calls: list[Call]  # every call the release needs
    index: pl.DataFrame  # request_key, prefix_id, conversation_id, sample_index, snapshot_id


def plan_calls(prefixes: pl.DataFrame, release: ReleaseConfig, samples: int) -> Plan:
    calls: list[Call] = []
    rows: list[tuple[str, str, str, int, str | None]] = []
    for pid, cid, snap, messages in prefixes.select("prefix_id", "conversation_id", "snapshot_id", "messages").iter_rows():
        body = chat_body(messages, release)
        for i in range(samples):
            key = request_key(body, i)
            calls.append(Call(key, i, pid, snap, release.name, body))
            rows.append((key, pid, cid, i, snap))
    index = pl.DataFrame(rows, schema={"request_key": pl.String, "prefix_id": pl.String, "conversation_id": pl.String,
                                       "sample_index": pl.Int64, "snapshot_id": pl.String}, orient="row")
    return Plan(calls, index)


def missing_calls(calls: list[Call], stored: pl.DataFrame, cfg: DispatchConfig) -> list[Call]:
    """Calls with no stored outcome, or a retriable failure still under the attempt limit."""
    prior = {k: (s, r, a) for k, s, r, a in stored.select("request_key", "status", "failure_reason", "attempts").iter_rows()}
    out = []
    for call in calls:
        if call.request_key not in prior:
            out.append(call)
            continue
        status, reason, attempts = prior[call.request_key]
        if status != "ok" and reason in RETRIABLE and (attempts < cfg.max_attempts or reason == "budget_exhausted"):
            call.prior_attempts = attempts
            out.append(call)
    return out


def estimate(calls: list[Call], release: ReleaseConfig, cfg: DispatchConfig) -> dict[str, Any]:
    prompt = sum(estimate_tokens(c.body) for c in calls)
    completion = sum(c.body.get("max_tokens") or 256 for c in calls)
    price = cfg.prices.get(release.model)
    usd = None if price is None else (prompt * price.input_per_mtok + completion * price.output_per_mtok) / 1e6
    return {"missing_calls": len(calls), "est_prompt_tokens": prompt, "est_completion_tokens_max": completion, "est_cost_usd_max": usd}


def assemble(plan: Plan, stored: pl.DataFrame, model: str, sent_keys: set[str]) -> pl.DataFrame:
    """One row per planned call; a call with no stored outcome (dispatch stopped) is a failure too."""
    out = plan.index.join(stored.drop("prefix_id", "sample_index", "snapshot_id", "model", strict=False), on="request_key", how="left")
    return out.with_columns(
        model=pl.lit(model),
        backend=pl.lit("openai"),
        status=pl.col("status").fill_null("failed"),
        failure_reason=pl.when(pl.col("status").is_null()).then(pl.lit("not_dispatched")).otherwise(pl.col("failure_reason")),
        attempts=pl.col("attempts").fill_null(0),
        served_from_store=~pl.col("request_key").is_in(list(sent_keys)),
    ).select(COMPLETION_COLUMNS)


def recorded_frame(prefixes: pl.DataFrame, recorded: pl.DataFrame, model: str) -> pl.DataFrame:
    joined = prefixes.select("prefix_id", "conversation_id", "snapshot_id").join(recorded, on="prefix_id", how="left")
    return joined.select(
        "prefix_id", "conversation_id", sample_index=pl.lit(0, pl.Int64), snapshot_id="snapshot_id",
        request_key=pl.lit(None, pl.String), model=pl.lit(model), backend=pl.lit("recorded"), status="status",
        failure_reason="failure_reason", attempts=pl.lit(0, pl.Int64), response_text="completion",
        tool_calls=pl.col("tool_calls") if "tool_calls" in recorded.columns else pl.lit(None, pl.String),
        reasoning=pl.lit(None, pl.String), finish_reason=pl.lit(None, pl.String),
        prompt_tokens=pl.lit(None, pl.Int64), completion_tokens=pl.lit(None, pl.Int64), latency_ms=pl.lit(None, pl.Float64),
        cost_usd=pl.lit(None, pl.Float64), served_from_store=pl.lit(True),
    )


def batch_requests(calls: list[Call]) -> list[bytes]:
    """OpenAI Batch API input lines; custom_id is the request key so the output maps back to the store."""
    return [orjson.dumps({"custom_id": c.request_key, "method": "POST", "url": "/v1/chat/completions", "body": c.body}) for c in calls]
