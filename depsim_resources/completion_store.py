"""The completion store: every model call's outcome, keyed by request hash, in its own DuckDB file.

Crash safety: each outcome is appended to a journal (one JSON line, flushed to the OS) the moment it
arrives, so a killed process loses only the calls in flight; the journal is merged into DuckDB every
`merge_every` outcomes and on close, and replayed on open if a previous process died before merging.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb
import orjson
import polars as pl

SCHEMA = pl.Schema(
    {
        "request_key": pl.String, "sample_index": pl.Int64, "prefix_id": pl.String, "snapshot_id": pl.String,
        "release": pl.String, "model": pl.String, "request": pl.String, "status": pl.String, "failure_reason": pl.String,
        "attempts": pl.Int64, "response_text": pl.String, "tool_calls": pl.String, "reasoning": pl.String,
        "finish_reason": pl.String, "prompt_tokens": pl.Int64, "completion_tokens": pl.Int64, "latency_ms": pl.Float64,
        "cost_usd": pl.Float64, "created_at": pl.String, "updated_at": pl.String,
    }
)
DDL = "create table if not exists completions (" + ", ".join(
    f"{name} {'VARCHAR' if dtype == pl.String else 'BIGINT' if dtype == pl.Int64 else 'DOUBLE'}" + (" primary key" if name == "request_key" else "")
    for name, dtype in SCHEMA.items()
) + ")"


@dataclass
class Outcome:
    request_key: str
    sample_index: int
    prefix_id: str
    snapshot_id: str | None
    release: str
    model: str
    request: str
    status: str  # "ok" or "failed"
    failure_reason: str | None = None
    attempts: int = 0
    response_text: str | None = None
    tool_calls: str | None = None
    reasoning: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    cost_usd: float | None = None
    created_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())
    updated_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())


class Store:
    """Open with `with Store(path) as store:`; one process writes at a time (DuckDB's rule)."""

    def __init__(self, path: Path, merge_every: int = 20_000) -> None:
        self.path = path
        self.journal = path.with_suffix(".journal.jsonl")
        self.merge_every = merge_every
        self._pending = 0
        self._fh: int | None = None

    def __enter__(self) -> Store:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with duckdb.connect(str(self.path)) as con:
            con.execute(DDL)
        self._merge_journal()
        self._fh = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            os.close(self._fh)
            self._fh = None
        self._merge_journal()

    def record(self, outcome: Outcome) -> None:
        assert self._fh is not None, "store is not open"
        os.write(self._fh, orjson.dumps(outcome) + b"\n")  # orjson serializes dataclasses natively
        self._pending += 1
        if self._pending >= self.merge_every:
            self.flush()

    def flush(self) -> None:
        """Merge the journal into DuckDB now (readers see every recorded outcome afterwards)."""
        if self._fh is not None:
            os.close(self._fh)
        self._merge_journal()
        if self._fh is not None:
            self._fh = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _merge_journal(self) -> None:
        self._pending = 0
        if not self.journal.exists() or self.journal.stat().st_size == 0:
            return
        rows = []
        with open(self.journal, "rb") as fh:
            for line in fh:
                try:
                    rows.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    continue  # a line torn by a kill mid-write: that call was in flight
        if rows:
            frame = pl.DataFrame(rows, schema=SCHEMA, orient="row").unique("request_key", keep="last", maintain_order=True)
            with duckdb.connect(str(self.path)) as con:
                con.register("incoming", frame)
                con.execute("insert or replace into completions by name select * from incoming")
        self.journal.unlink()

    def lookup(self, keys: Iterable[str]) -> pl.DataFrame:
        keys_frame = pl.DataFrame({"request_key": list(keys)}, schema={"request_key": pl.String})
        with duckdb.connect(str(self.path)) as con:
            con.register("wanted", keys_frame)
            return con.sql("select c.* from completions c join wanted using (request_key)").pl()

    def all(self) -> pl.DataFrame:
        with duckdb.connect(str(self.path)) as con:
            return con.sql("select * from completions").pl()

    def spent(self, release: str) -> float:
        with duckdb.connect(str(self.path)) as con:
            return float(con.execute("select coalesce(sum(cost_usd), 0) from completions where release = ?", [release]).fetchall()[0][0])


class CompletionStoreResource(dg.ConfigurableResource):
    """The completion store of the study (default `<warehouse_dir>/completions.duckdb`)."""

    path: str = ""
    # The journal is the durable record; merging into DuckDB blocks the event loop for a moment, so
    # it happens rarely (and always at the end of a run, and on the next open after a crash).
    merge_every: int = 20_000

    def open(self, default_dir: Path) -> Store:
        return Store(Path(self.path) if self.path else default_dir / "completions.duckdb", self.merge_every)
