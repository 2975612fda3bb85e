"""The forecast ledger: an append-only, hash-chained record of every forecast made.

Each entry holds the forecast row's canonical JSON, the study config hash, grader versions, the prefix
snapshot id and a timestamp; its hash covers all of that plus the previous entry's hash. The ledger is a
JSON-lines file outside the warehouse tables (which are replaced on re-materialization); appends hold an
exclusive file lock, so concurrent runs (a UI backfill) extend one intact chain, and nothing rewrites it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from depsim_assets.core.locks import file_lock

GENESIS = "0" * 64
FIELDS = ("seq", "release", "category", "payload", "config_hash", "grader_versions", "snapshot_id", "recorded_at",
          "prev_hash", "entry_hash")


def entry_hash(prev_hash: str, release: str, category: str, payload: str, config_hash: str, grader_versions: str,
               snapshot_id: str | None, recorded_at: str) -> str:
    body = orjson.dumps([prev_hash, release, category, payload, config_hash, grader_versions, snapshot_id, recorded_at])
    return hashlib.sha256(body).hexdigest()


def _canonical(row: dict[str, Any]) -> str:
    return orjson.dumps(row, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY, default=str).decode()


def _lock(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def read_entries(path: Path) -> list[dict[str, Any]]:
    """Every entry, under a shared lock (a reader never sees half an append)."""
    with file_lock(_lock(path), shared=True):
        return _entries(path)


def _entries(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def append(path: Path, release: str, forecasts: pl.DataFrame, config_hash: str,
           grader_versions: dict[str, str], now: dt.datetime | None = None) -> str:
    """Append one entry per forecast row; returns the new chain head hash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(_lock(path)):
        entries = _entries(path)
        seq, prev = (entries[-1]["seq"], entries[-1]["entry_hash"]) if entries else (0, GENESIS)
        recorded_at = (now or dt.datetime.now(dt.UTC)).isoformat()
        versions = orjson.dumps(grader_versions, option=orjson.OPT_SORT_KEYS).decode()
        lines = []
        for row in forecasts.iter_rows(named=True):
            seq += 1
            payload = _canonical(row)
            h = entry_hash(prev, release, row["category"], payload, config_hash, versions, row.get("snapshot_id"), recorded_at)
            lines.append(orjson.dumps(dict(zip(FIELDS, (seq, release, row["category"], payload, config_hash, versions,
                                                        row.get("snapshot_id"), recorded_at, prev, h), strict=True))) + b"\n")
            prev = h
        if lines:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, b"".join(lines))
                os.fsync(fd)
            finally:
                os.close(fd)
    return prev


@dataclass
class Verification:
    entries: int
    head: str
    broken: list[int]  # seq numbers whose stored hash or link does not match

    @property
    def ok(self) -> bool:
        return not self.broken


def verify(path: Path) -> Verification:
    with file_lock(_lock(path), shared=True):
        entries = _entries(path)
    prev, broken = GENESIS, []
    for e in entries:
        expected = entry_hash(prev, e["release"], e["category"], e["payload"], e["config_hash"], e["grader_versions"],
                              e["snapshot_id"], e["recorded_at"])
        if e["prev_hash"] != prev or e["entry_hash"] != expected:
            broken.append(e["seq"])
        prev = e["entry_hash"]  # follow the stored chain so one edit names one entry, not every later one
    return Verification(len(entries), prev, broken)


def entries_before(path: Path, cutoffs: dict[str, dt.date | None]) -> pl.DataFrame:
    """The latest ledger entry per (release, category) recorded before that release's date (all entries
    when the release declares no date), with the forecast fields unpacked."""
    with file_lock(_lock(path), shared=True):
        entries = _entries(path)
    if not entries:
        return pl.DataFrame(schema={"release": pl.String, "category": pl.String})
    ledger = pl.DataFrame(entries, schema={f: (pl.Int64 if f == "seq" else pl.String) for f in FIELDS})
    cut = pl.DataFrame({"release": list(cutoffs), "cutoff": [c.isoformat() if c else None for c in cutoffs.values()]},
                       schema={"release": pl.String, "cutoff": pl.String})
    kept = ledger.join(cut, on="release").filter(pl.col("cutoff").is_null() | (pl.col("recorded_at") < pl.col("cutoff")))
    if kept.is_empty():
        return pl.DataFrame(schema={"release": pl.String, "category": pl.String})
    latest = kept.sort("seq").group_by("release", "category").last()
    head = latest.select("seq", "release", "recorded_at", "entry_hash")
    payloads = pl.DataFrame([orjson.loads(p) for p in latest["payload"]], infer_schema_length=None)
    return pl.concat([head, payloads.drop([c for c in head.columns if c in payloads.columns])], how="horizontal")
