"""The forecast ledger: an append-only, hash-chained record of every forecast made.

Each entry holds the forecast row's canonical JSON, the study config hash, grader versions, the prefix
snapshot id and a timestamp; its hash covers all of that plus the previous entry's hash. It is written
here, outside the IO manager (which replaces partitions on re-materialization), and never updated.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

import duckdb
import orjson
import polars as pl

GENESIS = "0" * 64
DDL = """create table if not exists forecast_ledger (
    seq bigint primary key, release varchar, category varchar, payload varchar, config_hash varchar,
    grader_versions varchar, snapshot_id varchar, recorded_at varchar, prev_hash varchar, entry_hash varchar)"""


def entry_hash(prev_hash: str, release: str, category: str, payload: str, config_hash: str, grader_versions: str,
               snapshot_id: str | None, recorded_at: str) -> str:
    body = orjson.dumps([prev_hash, release, category, payload, config_hash, grader_versions, snapshot_id, recorded_at])
    return hashlib.sha256(body).hexdigest()


def _canonical(row: dict[str, Any]) -> str:
    return orjson.dumps(row, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY, default=str).decode()


def append(con: duckdb.DuckDBPyConnection, release: str, forecasts: pl.DataFrame, config_hash: str,
           grader_versions: dict[str, str], now: dt.datetime | None = None) -> str:
    """Append one entry per forecast row; returns the new chain head hash."""
    con.execute(DDL)
    last = con.execute("select seq, entry_hash from forecast_ledger order by seq desc limit 1").fetchall()
    seq, prev = (last[0][0], last[0][1]) if last else (0, GENESIS)
    recorded_at = (now or dt.datetime.now(dt.UTC)).isoformat()
    versions = orjson.dumps(grader_versions, option=orjson.OPT_SORT_KEYS).decode()
    rows = []
    for row in forecasts.iter_rows(named=True):
        seq += 1
        payload = _canonical(row)
        h = entry_hash(prev, release, row["category"], payload, config_hash, versions, row.get("snapshot_id"), recorded_at)
        rows.append((seq, release, row["category"], payload, config_hash, versions, row.get("snapshot_id"), recorded_at, prev, h))
        prev = h
    if rows:
        con.executemany("insert into forecast_ledger values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return prev


@dataclass
class Verification:
    entries: int
    head: str
    broken: list[int]  # seq numbers whose stored hash or link does not match

    @property
    def ok(self) -> bool:
        return not self.broken


def verify(con: duckdb.DuckDBPyConnection) -> Verification:
    con.execute(DDL)
    prev, broken, n = GENESIS, [], 0
    rows = con.execute(
        "select seq, release, category, payload, config_hash, grader_versions, snapshot_id, recorded_at, prev_hash, entry_hash "
        "from forecast_ledger order by seq"
    ).fetchall()
    for seq, release, category, payload, cfg, versions, snap, at, stored_prev, stored in rows:
        n += 1
        expected = entry_hash(prev, release, category, payload, cfg, versions, snap, at)
        if stored_prev != prev or stored != expected:
            broken.append(seq)
        prev = stored  # follow the stored chain so one edit names one entry, not every later one
    return Verification(n, prev, broken)


def entries_before(con: duckdb.DuckDBPyConnection, cutoffs: dict[str, dt.date | None]) -> pl.DataFrame:
    """The latest ledger entry per (release, category) recorded before that release's date (all entries
    when the release declares no date), with the forecast fields unpacked."""
    con.execute(DDL)
    ledger = con.sql("select * from forecast_ledger").pl()
    if ledger.is_empty():
        return pl.DataFrame(schema={"release": pl.String, "category": pl.String})
    cut = pl.DataFrame({"release": list(cutoffs), "cutoff": [c.isoformat() if c else None for c in cutoffs.values()]},
                       schema={"release": pl.String, "cutoff": pl.String})
    kept = ledger.join(cut, on="release").filter(pl.col("cutoff").is_null() | (pl.col("recorded_at") < pl.col("cutoff")))
    latest = kept.sort("seq").group_by("release", "category").last()
    head = latest.select("seq", "release", "recorded_at", "entry_hash")
    payloads = pl.DataFrame([orjson.loads(p) for p in latest["payload"]], infer_schema_length=None)
    return pl.concat([head, payloads.drop([c for c in head.columns if c in payloads.columns])], how="horizontal")
