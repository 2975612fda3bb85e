"""The `recorded` backend: completions produced elsewhere, joined to prefixes by id, never by text."""

from __future__ import annotations

from pathlib import Path

import orjson
import polars as pl

from depsim_assets.core.config import RecordedSource
from depsim_assets.core.formats import normalize_id
from depsim_assets.core.sources import inspect, iter_records


def read_recorded(src: RecordedSource, base: Path) -> pl.DataFrame:
    """(record_id, completion) from a JSONL, CSV or Parquet file; ids keep the dataset's own form
    minus `id_prefix` (XSTest's `v2-17` -> `17`)."""
    path = src.path if Path(src.path).is_absolute() else base / src.path  # type: ignore[arg-type]
    rows = []
    for _, _, obj in iter_records(inspect(Path(path))):
        if not isinstance(obj, dict) or obj.get(src.id_column) is None:
            continue
        record_id = normalize_id(obj.get(src.id_column), src.id_type)
        try:
            calls = _calls(obj.get(src.tool_calls_column)) if src.tool_calls_column else None
        except (orjson.JSONDecodeError, ValueError) as e:
            raise ValueError(f"{path}: record {record_id}: column {src.tool_calls_column} is not a JSON list of tool calls ({e})") from None
        rows.append((record_id, obj.get(src.completion_column), calls))
    frame = pl.DataFrame(rows, schema={"record_id": pl.String, "completion": pl.String, "tool_calls": pl.String}, orient="row")
    return frame.with_columns(pl.col("record_id").str.strip_prefix(src.id_prefix)).unique("record_id", keep="first")


def _calls(value: object) -> str | None:
    """Tool calls as the JSON text the live path stores: a list kept as is, a string (CSV cell) parsed first."""
    if value is None or value == "":
        return None
    calls = orjson.loads(value) if isinstance(value, str) else value
    if not isinstance(calls, list):
        raise ValueError(f"recorded tool calls must be a JSON list of calls, got {type(calls).__name__}")
    return orjson.dumps(calls).decode()


def recorded_completions(prefixes: pl.DataFrame, src: RecordedSource, base: Path) -> pl.DataFrame:
    """One row per prefix: the recorded completion, or a failure with its reason (never dropped)."""
    if src.reference_variant is not None:
        found = prefixes.select(
            "prefix_id",
            tool_calls=pl.lit(None, pl.String),
            completion=pl.col("reference_responses").list.eval(
                pl.element().filter(pl.element().struct.field("variant") == src.reference_variant).struct.field("content")
            ).list.first(),
            has_record=pl.col("reference_responses").list.eval(pl.element().struct.field("variant") == src.reference_variant).list.any(),
        )
    else:
        records = read_recorded(src, base)
        found = (
            prefixes.select("prefix_id", "conversation_id")
            .join(records.with_columns(has_record=pl.lit(True)), left_on="conversation_id", right_on="record_id", how="left")
            .select("prefix_id", "completion", "tool_calls", pl.col("has_record").fill_null(False))
        )
    return found.with_columns(
        status=pl.when(pl.col("has_record") & pl.col("completion").is_not_null()).then(pl.lit("ok")).otherwise(pl.lit("failed")),
        failure_reason=pl.when(~pl.col("has_record")).then(pl.lit("no_recorded_completion"))
        .when(pl.col("completion").is_null()).then(pl.lit("null_recorded_completion")).otherwise(None),
    ).drop("has_record")


def batch_output_outcomes(path: Path) -> list[dict[str, object]]:
    """Rows of an OpenAI Batch API output file: custom_id (our request key) with its response or error."""
    out = []
    with open(path, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            rec = orjson.loads(line)
            resp = rec.get("response") or {}
            body = resp.get("body") or {}
            ok = resp.get("status_code") == 200 and body.get("choices")
            choice = body["choices"][0] if ok else {}
            usage = body.get("usage") or {}
            err = rec.get("error") or (body.get("error") if not ok else None) or {}
            code = err.get("code") or resp.get("status_code") or "error"
            # Server-side and expiry failures may be retried live; anything else is final.
            transient = (resp.get("status_code") or 500) >= 500 or code in ("server_error", "batch_expired", "expired", "rate_limit_exceeded")
            out.append({
                "request_key": rec["custom_id"],
                "status": "ok" if ok else "failed",
                "failure_reason": None if ok else ("server_error" if transient else f"batch_{code}"),
                "response_text": (choice.get("message") or {}).get("content"),
                "finish_reason": choice.get("finish_reason"),
                "prompt_tokens": usage.get("prompt_tokens"),
                "completion_tokens": usage.get("completion_tokens"),
            })
    return out
