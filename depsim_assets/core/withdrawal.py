"""Consent withdrawn: remove a conversation's or a user's rows from every derived table and the completion
store, keep them out of later ingestion, and record that it was done (counts, never values).

Ids arrive as they are in the source (or already keyed, with `hashed=True`) and are turned into the warehouse's
pseudonymous ids with the study's key, as ingestion does: a conversation id (or an hh-rlhf pair id, whose two
sides go together) and a user id. Every Parquet table under the warehouse and every review export (CSV/JSONL)
loses the rows whose `conversation_id`, `pair_id`, `trajectory_id`, `user_id` or `prefix_id` belongs to them;
files are rewritten whole and atomically. The keyed ids go to `_withdrawals/withdrawn.parquet`, which
ingestion reads to exclude them (`consent_withdrawn`); `_withdrawals/log.jsonl` gets one line of counts.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import polars as pl

from depsim_assets.core.privacy.deidentify import conversation_hash, user_hash
from depsim_assets.core.store import Store

ID_COLUMNS = ("conversation_id", "pair_id", "trajectory_id", "user_id")
WITHDRAWN_SCHEMA = pl.Schema({"kind": pl.String, "id": pl.String, "at": pl.String})


@dataclass
class Receipt:
    conversations: int = 0
    prefixes: int = 0
    rows_removed: dict[str, int] = field(default_factory=dict)
    store_rows_removed: int = 0

    def line(self) -> dict[str, object]:
        return {"at": dt.datetime.now(dt.UTC).isoformat(), "conversations": self.conversations, "prefixes": self.prefixes,
                "rows_removed": self.rows_removed, "store_rows_removed": self.store_rows_removed}


def _tables(root: Path) -> Iterable[Path]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).parts
        if path.is_file() and rel[0] not in ("_completions", "_withdrawals") and path.suffix in (".parquet", ".csv", ".jsonl"):
            yield path


def _read(path: Path) -> pl.DataFrame | None:
    try:
        if path.suffix == ".parquet":
            return pl.read_parquet(path)
        if path.suffix == ".csv":
            return pl.read_csv(path, infer_schema_length=0)
        return pl.read_ndjson(path, infer_schema_length=None)
    except (pl.exceptions.ComputeError, OSError, ValueError):
        return None  # not a table (a ledger line format, an empty file): it is counted below by columns only


def _write(path: Path, frame: pl.DataFrame) -> None:
    tmp = path.with_name(f".{path.name}.withdraw.tmp")
    if path.suffix == ".parquet":
        frame.write_parquet(tmp)
    elif path.suffix == ".csv":
        frame.write_csv(tmp)
    else:
        frame.write_ndjson(tmp)
    os.replace(tmp, path)


def _members(root: Path, conversations: set[str], users: set[str]) -> tuple[set[str], set[str]]:
    """(conversation ids, prefix ids) of the withdrawn conversations, pairs and users, from the stored tables."""
    ids = set(conversations)
    table = root / "deidentified_conversations"
    if table.exists():
        conv = pl.scan_parquet(sorted(table.rglob("*.parquet"))).select("conversation_id", "pair_id", "user_id").collect()
        hit = conv.filter(pl.col("conversation_id").is_in(list(ids)) | pl.col("pair_id").is_in(list(ids)) | pl.col("user_id").is_in(list(users)))
        ids |= set(hit["conversation_id"].drop_nulls()) | set(hit["pair_id"].drop_nulls())
    prefixes: set[str] = set()
    for name, column in (("replay_prefixes", "conversation_id"), ("agentic_prefixes", "trajectory_id")):
        files = sorted((root / name).rglob("*.parquet")) if (root / name).exists() else []
        if files:
            found = pl.scan_parquet(files).filter(pl.col(column).is_in(list(ids))).select("prefix_id").collect()
            prefixes |= set(found["prefix_id"])
    return ids, prefixes


def withdrawn(root: Path) -> tuple[set[str], set[str]]:
    """(conversation or pair ids, user ids) withdrawn so far: ingestion excludes them."""
    path = root / "_withdrawals" / "withdrawn.parquet"
    if not path.exists():
        return set(), set()
    frame = pl.read_parquet(path)
    return set(frame.filter(pl.col("kind") == "conversation")["id"]), set(frame.filter(pl.col("kind") == "user")["id"])


def forget(root: Path, key: bytes, conversations: list[str], users: list[str], hashed: bool = False) -> Receipt:
    """Remove the rows of these conversations and users everywhere under the warehouse `root`."""
    conv = {c if hashed else conversation_hash(key, c) for c in conversations}
    usr = {u if hashed else user_hash(key, u) for u in users}
    ids, prefixes = _members(root, conv, usr)
    receipt = Receipt(conversations=len(ids), prefixes=len(prefixes))
    with Store(root / "_completions") as store:
        receipt.store_rows_removed = store.forget(prefixes)
    for path in _tables(root):
        frame = _read(path)
        if frame is None:
            continue
        mask = pl.lit(False)
        for column in ID_COLUMNS:
            if column in frame.columns:
                mask = mask | pl.col(column).is_in(list(ids | usr)).fill_null(False)
        if "prefix_id" in frame.columns:
            mask = mask | pl.col("prefix_id").is_in(list(prefixes)).fill_null(False)
        kept = frame.filter(~mask)
        if len(kept) < len(frame):
            _write(path, kept)
            name = "/".join(path.relative_to(root).parts[:1])
            receipt.rows_removed[name] = receipt.rows_removed.get(name, 0) + len(frame) - len(kept)
    record = root / "_withdrawals"
    record.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC).isoformat()
    previous = pl.read_parquet(record / "withdrawn.parquet") if (record / "withdrawn.parquet").exists() else WITHDRAWN_SCHEMA.to_frame()
    new = pl.DataFrame([{"kind": "conversation", "id": i, "at": now} for i in sorted(conv)] + [{"kind": "user", "id": u, "at": now} for u in sorted(usr)],
                       schema=WITHDRAWN_SCHEMA)
    _write(record / "withdrawn.parquet", pl.concat([previous, new]).unique(["kind", "id"], keep="first"))
    with open(record / "log.jsonl", "ab") as fh:
        fh.write(orjson.dumps(receipt.line()) + b"\n")
    return receipt


def exclude_withdrawn(tagged: pl.DataFrame, ids: pl.DataFrame, conversations: set[str], users: set[str]) -> pl.DataFrame:
    """`tagged` (with `exclusion`) with `consent_withdrawn` where the conversation's keyed id, its pair's or its
    user's was withdrawn (`withdrawn(root)`); `ids`: the pseudonymous conversation_id, pair_id and user_id of each row."""
    hit = (ids["conversation_id"].is_in(list(conversations)) | ids["pair_id"].is_in(list(conversations)).fill_null(False)
           | ids["user_id"].is_in(list(users)).fill_null(False))
    return tagged.with_columns(exclusion=pl.when(hit).then(pl.lit("consent_withdrawn")).otherwise(pl.col("exclusion")))
