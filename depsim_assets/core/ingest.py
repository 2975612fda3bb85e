"""Streaming ingestion: files -> batches of normalized conversations and quarantined records.

Files are read record by record (one JSON decode per line), so one bad line is quarantined rather
than failing the file, and batches are emitted as polars frames so a large input is never held as
Python objects all at once.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from depsim_assets.core.config import IngestConfig, SourceConfig, traffic_sources
from depsim_assets.core.sources import count_records, inspect, iter_records
from depsim_assets.core.formats import (
    Format,
    Normalized,
    Rejected,
    detect_format,
    normalize_eval,
    normalize_hh_pair,
    normalize_id,
    normalize_record,
)

MESSAGE_DTYPE = pl.Struct(
    {"role": pl.String, "content": pl.String, "tool_calls": pl.String, "tool_call_id": pl.String, "name": pl.String}
)
CONVERSATION_SCHEMA = pl.Schema(
    {
        "conversation_id": pl.String,
        "pair_id": pl.String,
        "pair_role": pl.String,
        "user_id": pl.String,
        "consent": pl.String,
        "timestamp": pl.String,
        "model": pl.String,
        "language": pl.String,
        "source": pl.String,
        "kind": pl.String,
        "source_file": pl.String,
        "line_no": pl.Int64,
        "multimodal": pl.Boolean,
        "attributes": pl.String,
        "messages": pl.List(MESSAGE_DTYPE),
    }
)
QUARANTINE_SCHEMA = pl.Schema(
    {
        "source": pl.String,
        "source_file": pl.String,
        "line_no": pl.Int64,
        "conversation_id": pl.String,
        "reason": pl.String,
        "detail": pl.String,
        "raw": pl.String,
    }
)
RAW_EXCERPT = 500
ID_KEYS = ("conversation_id", "id", "conversation_hash", "uuid")
USER_KEYS = ("user_id", "user", "hashed_ip")
TIME_KEYS = ("timestamp", "created_at", "time")


@dataclass
class Batch:
    conversations: pl.DataFrame
    quarantine: pl.DataFrame
    records_in: int


@dataclass
class _Builder:
    source: SourceConfig
    conv: list[dict[str, Any]] = field(default_factory=list)
    quar: list[dict[str, Any]] = field(default_factory=list)
    records: int = 0

    def reject(self, file: str, line: int, err: Rejected, raw: Any, conv_id: str | None = None) -> None:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else (raw if isinstance(raw, str) else orjson.dumps(raw, default=str).decode())
        self.quar.append(
            {"source": self.source.name, "source_file": file, "line_no": line, "conversation_id": conv_id,
             "reason": err.reason, "detail": err.detail, "raw": text[:RAW_EXCERPT]}
        )

    def flush(self) -> Batch:
        b = Batch(
            pl.DataFrame(self.conv, schema=CONVERSATION_SCHEMA, orient="row") if self.conv else CONVERSATION_SCHEMA.to_frame(),
            pl.DataFrame(self.quar, schema=QUARANTINE_SCHEMA, orient="row") if self.quar else QUARANTINE_SCHEMA.to_frame(),
            self.records,
        )
        self.conv, self.quar, self.records = [], [], 0
        return b


def expand_paths(patterns: Iterable[str], base: Path) -> list[Path]:
    """Files named by the patterns (relative to `base`); a directory named outright is an error, a glob
    keeps only the files it matches."""
    files: list[Path] = []
    for pat in patterns:
        full = pat if Path(pat).is_absolute() else str(base / pat)
        if glob.has_magic(full):
            hits = sorted(p for p in map(Path, glob.glob(full, recursive=True)) if not p.is_dir())
        else:
            hits = [Path(full)] if Path(full).exists() else []
        if not hits:
            raise FileNotFoundError(f"source path {pat!r} matched no file (relative to {base})")
        files.extend(hits)
    return files


def _first(obj: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for k in keys:
        v = obj.get(k)
        if v is not None and not isinstance(v, (dict, list)):
            return str(v)
    return None


def _attributes(obj: dict[str, Any], skip: set[str], keep: list[str] | None) -> str | None:
    attrs = {k: v for k, v in obj.items() if k not in skip and (keep is None or k in keep)}
    return orjson.dumps(attrs, default=str, option=orjson.OPT_SORT_KEYS).decode() if attrs else None


def ingest_source(source: SourceConfig, base: Path, cfg: IngestConfig, seen_ids: set[str]) -> Iterator[Batch]:
    """Normalize every record of one source; `seen_ids` spans sources so duplicates are caught."""
    b = _Builder(source)
    for path in expand_paths(source.paths, base):
        file = str(path.relative_to(base)) if path.is_relative_to(base) else str(path)
        fixed: Format | None = None if source.format == "auto" else source.format  # type: ignore[assignment]
        for line_no, raw, obj in iter_records(inspect(path), cfg.batch_lines):
            b.records += 1
            if isinstance(obj, Rejected):
                b.reject(file, line_no, obj, raw)
            elif not isinstance(obj, dict):
                b.reject(file, line_no, Rejected("not_an_object", f"record is a JSON {type(obj).__name__}, expected an object"), raw)
            else:
                _normalize_into(b, source, cfg, file, line_no, raw, obj, fixed, seen_ids)
            if b.records >= cfg.batch_lines:
                yield b.flush()
    if b.records:
        yield b.flush()


def _normalize_into(
    b: _Builder, source: SourceConfig, cfg: IngestConfig, file: str, line_no: int, raw: Any,
    obj: dict[str, Any], fixed: Format | None, seen_ids: set[str],
) -> None:
    fmt = fixed or detect_format(obj, source.kind)
    is_eval = source.kind == "eval_set"
    own_id = next((normalize_id(obj[k], source.id_type) for k in ((source.id_column,) if is_eval else ID_KEYS)
                   if normalize_id(obj.get(k), source.id_type) is not None), None)
    base_id = own_id if own_id is not None else f"{source.name}:{Path(file).name}:{line_no}"
    try:
        if fmt is None:
            hint = ("; this looks like an agent trajectory (SWE-agent `history`): declare the source `kind: trajectory`"
                    if isinstance(obj, dict) and isinstance(obj.get("history"), list) else "")
            raise Rejected("missing_messages" if isinstance(obj, dict) else "unknown_format",
                           f"record has none of the keys messages/conversations/conversation/chosen; keys: {sorted(obj)[:8]}{hint}")
        if is_eval or fmt in ("eval_csv", "eval_jsonl"):
            variants = {None: normalize_eval(obj, source.prompt_column, cfg.max_message_chars)}
        elif fmt == "hh_rlhf":
            variants = {side: Normalized(msgs) for side, msgs in normalize_hh_pair(obj, cfg.max_message_chars).items()}
        else:
            variants = {None: normalize_record(obj, fmt, source.kind, cfg.max_message_chars)}
    except Rejected as err:
        b.reject(file, line_no, err, raw, own_id)
        return
    ids = {side: base_id if side is None else f"{base_id}:{side}" for side in variants}
    dupes = [i for i in ids.values() if i in seen_ids]
    if dupes:
        b.reject(file, line_no, Rejected("duplicate_conversation_id", f"conversation id {dupes[0]!r} was already ingested"), raw, dupes[0])
        return
    skip = {source.id_column, source.prompt_column} if is_eval else set()
    attrs = _attributes(obj, skip, source.attribute_columns) if is_eval else None
    for side, norm in variants.items():
        seen_ids.add(ids[side])
        b.conv.append(
            {
                "conversation_id": ids[side],
                "pair_id": base_id if side is not None else None,
                "pair_role": side,
                "user_id": _first(obj, USER_KEYS),
                "consent": _first(obj, (source.consent_field,)),
                "timestamp": _first(obj, TIME_KEYS),
                "model": _first(obj, ("model",)),
                "language": _first(obj, ("language", "lang")),
                "source": source.name,
                "kind": source.kind,
                "source_file": file,
                "line_no": line_no,
                "multimodal": norm.multimodal,
                # Refusal content parts are kept as their text; the count says the record had them.
                "attributes": attrs if not norm.refusal_parts else orjson.dumps(
                    {**(orjson.loads(attrs) if attrs else {}), "refusal_parts": norm.refusal_parts}).decode(),
                "messages": norm.messages,
            }
        )


@dataclass
class IngestResult:
    conversations: pl.DataFrame
    quarantine: pl.DataFrame
    records_in: dict[str, int]


@dataclass
class IngestTally:
    """What a streamed ingestion saw besides its conversations: records in per source, the quarantine."""

    records_in: dict[str, int] = field(default_factory=dict)
    conversations: dict[str, int] = field(default_factory=dict)
    quarantine: list[pl.DataFrame] = field(default_factory=list)

    def quarantined(self) -> pl.DataFrame:
        return pl.concat(self.quarantine, rechunk=True) if self.quarantine else QUARANTINE_SCHEMA.to_frame()


def ingest_batches(sources: list[SourceConfig], base: Path, cfg: IngestConfig, tally: IngestTally) -> Iterator[pl.DataFrame]:
    """Conversations batch by batch (a record's conversations never split between batches); counts and
    quarantined records go to `tally`, so a caller can store conversations without holding them all."""
    seen: set[str] = set()
    for src in traffic_sources(sources):
        tally.records_in[src.name] = 0
        tally.conversations[src.name] = 0
        for batch in ingest_source(src, base, cfg, seen):
            tally.records_in[src.name] += batch.records_in
            tally.conversations[src.name] += len(batch.conversations)
            if len(batch.quarantine):
                tally.quarantine.append(batch.quarantine)
            if len(batch.conversations):
                yield batch.conversations


def ingest(sources: list[SourceConfig], base: Path, cfg: IngestConfig) -> IngestResult:
    tally = IngestTally()
    convs = list(ingest_batches(sources, base, cfg, tally))
    conv = pl.concat(convs, rechunk=True) if convs else CONVERSATION_SCHEMA.to_frame()
    return IngestResult(conv, tally.quarantined(), tally.records_in)


def reconcile(records_in: dict[str, int], conversations: pl.DataFrame, quarantine: pl.DataFrame) -> pl.DataFrame:
    """Per source: records in, records out (an hh-rlhf pair is one record, two conversations),
    records quarantined, and whether in = out + quarantined."""
    out = conversations.group_by("source").agg(pl.struct("source_file", "line_no").n_unique().alias("records_out"))
    quar = quarantine.group_by("source").agg(pl.len().cast(pl.Int64).alias("records_quarantined"))
    return (
        pl.DataFrame({"source": list(records_in), "records_in": list(records_in.values())}, schema={"source": pl.String, "records_in": pl.Int64})
        .join(out, on="source", how="left")
        .join(quar, on="source", how="left")
        .with_columns(pl.col("records_out", "records_quarantined").fill_null(0).cast(pl.Int64))
        .with_columns(balanced=pl.col("records_in") == pl.col("records_out") + pl.col("records_quarantined"))
        .sort("source")
    )


def count_source_records(sources: list[SourceConfig], base: Path) -> dict[str, int]:
    return {s.name: sum(count_records(inspect(p)) for p in expand_paths(s.paths, base)) for s in traffic_sources(sources)}
