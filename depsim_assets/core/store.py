"""The completion store: every model call's outcome, keyed by request hash, shared by many processes.

Layout of the store directory:

    journals/<writer>.jsonl     one per open writer, appended the moment an outcome arrives
    segments/<n>.parquet        merged outcomes, immutable once written
    store.lock                  serializes merges; readers of segments hold it shared

Each writer (a release run, a judge, a worker) appends only to its own journal and holds an exclusive
`flock` on it while open, so a merge can tell a live journal (locked) from one whose writer closed or
died (unlocked): only those are merged into a new segment and removed. Lookups read the segments and
every journal, live ones included, so a key recorded by any process, at any time before the lookup,
is never sent again; a SIGKILL loses only that process's calls in flight (a torn last line is skipped).
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import polars as pl

from depsim_assets.core.locks import file_lock, try_lock

SCHEMA = pl.Schema(
    {
        "request_key": pl.String, "sample_index": pl.Int64, "prefix_id": pl.String, "snapshot_id": pl.String,
        "release": pl.String, "model": pl.String, "request": pl.String, "status": pl.String, "failure_reason": pl.String,
        "attempts": pl.Int64, "response_text": pl.String, "tool_calls": pl.String, "reasoning": pl.String,
        "finish_reason": pl.String, "prompt_tokens": pl.Int64, "completion_tokens": pl.Int64, "latency_ms": pl.Float64,
        "cost_usd": pl.Float64, "created_at": pl.String, "updated_at": pl.String,
    }
)
MAX_SEGMENTS = 8  # past this, a merge also rewrites the segments into one


class StoreBusyError(RuntimeError):
    """Another process is writing to the store and the operation needs it quiet."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


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
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)


def _latest(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per request key: its latest outcome (a retried failure is superseded by its success)."""
    return frame.sort("updated_at", maintain_order=True).unique("request_key", keep="last", maintain_order=True)


def _read_journal(path: Path) -> list[dict[str, object]]:
    rows = []
    try:
        data = path.read_bytes()
    except FileNotFoundError:  # merged and removed by another process since we listed it
        return rows
    for line in data.splitlines():
        try:
            rows.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue  # a line torn by a kill mid-write: that call was in flight
    return rows


class Store:
    """Open with `with Store(directory) as store:`; any number of processes may have it open at once."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.journals = self.path / "journals"
        self.segments = self.path / "segments"
        self.lock_path = self.path / "store.lock"
        self._fd: int | None = None
        self.journal: Path | None = None

    # -- writing -------------------------------------------------------------------------------
    def __enter__(self) -> Store:
        if self.path.suffix == ".duckdb" or (self.path.exists() and self.path.is_file()):
            raise ValueError(f"{self.path} is a single-file completion store of depsim < 0.2; this version keeps a directory. "
                             "Move it aside and re-run (stored calls will be sent again), or keep the older depsim for that study.")
        self.journals.mkdir(parents=True, exist_ok=True)
        self.segments.mkdir(parents=True, exist_ok=True)
        self.merge()
        self._open_journal()
        return self

    def __exit__(self, *exc: object) -> None:
        self._close_journal()
        self.merge()

    def _open_journal(self) -> None:
        # Created under a name merges ignore, locked, then renamed: a merge can never take a journal
        # between its creation and its writer's lock.
        name = f"{os.getpid()}-{uuid.uuid4().hex}"
        tmp = self.journals / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try_lock(fd)
        final = self.journals / f"{name}.jsonl"
        os.rename(tmp, final)
        self._fd, self.journal = fd, final

    def _close_journal(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock: the journal is now mergeable
            self._fd = None

    def record(self, outcome: Outcome) -> None:
        assert self._fd is not None, "store is not open"
        os.write(self._fd, orjson.dumps(outcome) + b"\n")  # one write per line: O_APPEND keeps it whole

    def flush(self) -> None:
        """Merge this writer's journal (and any closed one) into a segment now."""
        if self._fd is None:
            self.merge()
            return
        self._close_journal()
        self.merge()
        self._open_journal()

    def merge(self) -> int:
        """Merge every closed journal into one new segment; returns the rows merged."""
        with file_lock(self.lock_path):
            taken: list[tuple[Path, int]] = []
            rows: list[dict[str, object]] = []
            for path in sorted(self.journals.glob("*.jsonl")):
                try:
                    fd = os.open(path, os.O_RDONLY)
                except FileNotFoundError:
                    continue
                if not try_lock(fd):  # a live writer's journal
                    os.close(fd)
                    continue
                taken.append((path, fd))
                rows.extend(_read_journal(path))
            try:
                if rows:
                    self._write_segment(_latest(pl.DataFrame(rows, schema=SCHEMA, orient="row")))
                existing = sorted(self.segments.glob("*.parquet"))
                if len(existing) > MAX_SEGMENTS:
                    merged = _latest(pl.concat([pl.read_parquet(p) for p in existing]))
                    self._write_segment(merged)
                    for p in existing:
                        p.unlink()
                for path, _ in taken:
                    path.unlink(missing_ok=True)  # only after its rows are durable in a segment
            finally:
                for _, fd in taken:
                    os.close(fd)
            return len(rows)

    def _write_segment(self, frame: pl.DataFrame) -> None:
        name = f"{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = self.segments / f".{name}.tmp"
        frame.write_parquet(tmp)
        os.replace(tmp, self.segments / name)

    def forget(self, prefix_ids: Collection[str]) -> int:
        """Remove every stored call of these prefixes (consent withdrawn); returns the rows removed. Refuses while
        another writer's journal is open: its rows could not be rewritten, and would survive the withdrawal."""
        wanted = pl.Series("prefix_id", list(prefix_ids), dtype=pl.String).implode()
        with file_lock(self.lock_path):
            for path in sorted(self.journals.glob("*.jsonl")):
                if path == self.journal:
                    continue
                fd = os.open(path, os.O_RDONLY)
                try:
                    if not try_lock(fd):
                        raise StoreBusyError(f"a run is writing to the completion store ({self.path}): withdraw when it has finished")
                finally:
                    os.close(fd)
        self.flush()  # every journal, this writer's included, is merged into segments now
        removed = 0
        with file_lock(self.lock_path):
            for path in sorted(self.segments.glob("*.parquet")):
                frame = pl.read_parquet(path)
                kept = frame.filter(~pl.col("prefix_id").is_in(wanted).fill_null(False))
                if len(kept) < len(frame):
                    removed += len(frame) - len(kept)
                    if len(kept):
                        self._write_segment(kept)
                    path.unlink()
        return removed

    # -- reading -------------------------------------------------------------------------------
    def _frame(self, keys: pl.Series | None) -> pl.DataFrame:
        with file_lock(self.lock_path, shared=True):
            segs = sorted(self.segments.glob("*.parquet"))
            parts = []
            if segs:
                scan = pl.scan_parquet(segs)
                parts.append((scan.filter(pl.col("request_key").is_in(keys.implode())) if keys is not None else scan).collect())
            rows = [r for p in sorted(self.journals.glob("*.jsonl")) for r in _read_journal(p)]
        if rows:
            journal = pl.DataFrame(rows, schema=SCHEMA, orient="row")
            parts.append(journal.filter(pl.col("request_key").is_in(keys.implode())) if keys is not None else journal)
        if not parts:
            return SCHEMA.to_frame()
        return _latest(pl.concat([p.select(SCHEMA.names()).cast(dict(SCHEMA)) for p in parts]))

    def lookup(self, keys: Iterable[str]) -> pl.DataFrame:
        return self._frame(pl.Series("request_key", list(keys), dtype=pl.String))

    def all(self) -> pl.DataFrame:
        return self._frame(None)

    def spent(self, release: str, prefix_ids: Collection[str] | None = None) -> float:
        """USD recorded for the release's calls (only those of these prefixes, when given: one shard's)."""
        frame = self.all().filter(pl.col("release") == release)
        if prefix_ids is not None:
            frame = frame.filter(pl.col("prefix_id").is_in(list(prefix_ids)))
        return float(frame["cost_usd"].fill_null(0).sum())
