"""The study warehouse: a directory of Parquet files, one per asset partition, in hive layout.

    <root>/<table>/part.parquet                       unpartitioned asset
    <root>/<table>/release=<r>/part.parquet           one release partition
    <root>/<table>/release=<r>/shard=<s>/part.parquet one partition of several dimensions (release first)

Every file is written under a temporary name beside its final one and renamed into place, so a
reader never sees half a file and writers of different partitions never contend: the multiprocess
executor and concurrent runs may store partitions of one asset at the same time. Paths are
`UPath`s, so the same code reads and writes object storage (where a single PUT is already atomic).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
from upath import UPath

PARTITION_COLUMN = "release"
FILE_NAME = "part.parquet"
LEGACY_FILE = "warehouse.duckdb"


# A partition: a release name, or {dimension: key} with the release among them (release × shard).
Partition = str | Mapping[str, str]

ROW_GROUP_ROWS = 50_000  # small enough that a reader of one row group stays in bounded memory


class MissingTableError(FileNotFoundError):
    """A table (or every requested partition of it) has not been materialized."""


@dataclass(frozen=True)
class Spooled:
    """A table written batch by batch to a temp file beside the warehouse: storing it is a rename.

    Returned by assets whose output is larger than memory should hold; the IO manager adopts it."""

    path: Path
    rows: int

    def scan(self) -> pl.LazyFrame:
        return pl.scan_parquet(self.path)


def row_batches(frame: pl.LazyFrame, rows: int = ROW_GROUP_ROWS) -> Iterator[pl.DataFrame]:
    """A lazy frame (a Parquet scan) collected `rows` at a time."""
    total = frame.select(pl.len()).collect().item()
    for offset in range(0, total, rows):
        yield frame.slice(offset, rows).collect()


def aligned(batches: Iterable[pl.DataFrame], key: str | pl.Expr) -> Iterator[pl.DataFrame]:
    """Re-cut batches so that rows sharing `key` (adjacent, like an hh-rlhf pair's two sides) are never
    split between two batches: the last key's rows of each batch move to the next."""
    held: pl.DataFrame | None = None
    expr = pl.col(key) if isinstance(key, str) else key
    for batch in batches:
        if held is not None:
            batch = pl.concat([held, batch], how="diagonal_relaxed")
        if batch.is_empty():
            continue
        last = batch.select(expr.last()).item()
        tail = batch.select(expr == last).to_series()
        held, batch = batch.filter(tail), batch.filter(~tail)
        if not batch.is_empty():
            yield batch
    if held is not None and not held.is_empty():
        yield held


def release_of(partition: Partition) -> str:
    return partition if isinstance(partition, str) else partition[PARTITION_COLUMN]


def _hive_dirs(partition: Partition) -> str:
    """Nested `dim=key` folders, release first, so DuckDB's and polars' hive readers see every dimension."""
    if isinstance(partition, str):
        return f"{PARTITION_COLUMN}={partition}"
    if PARTITION_COLUMN not in partition:
        raise ValueError(f"a partition of several dimensions needs a '{PARTITION_COLUMN}' one, got {dict(partition)}")
    rest = sorted(k for k in partition if k != PARTITION_COLUMN)
    return "/".join(f"{k}={partition[k]}" for k in [PARTITION_COLUMN, *rest])


def _is_local(path: UPath) -> bool:
    return path.protocol in ("", "file", "local")


class Warehouse:
    """Read and write the Parquet files of one study warehouse."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = UPath(root)

    def table_dir(self, table: str) -> UPath:
        if not table or "/" in table or table.startswith("."):
            raise ValueError(f"not a table name: {table!r}")
        return self.root / table

    def path(self, table: str, partition: Partition | None = None) -> UPath:
        base = self.table_dir(table)
        return base / FILE_NAME if partition is None else base / _hive_dirs(partition) / FILE_NAME

    def legacy_file(self) -> UPath | None:
        """The single-file DuckDB warehouse of depsim < 0.2, if one is still here."""
        old = self.root / LEGACY_FILE
        return old if old.exists() else None

    def write(self, table: str, frame: pl.DataFrame, partition: Partition | None = None) -> UPath:
        target = self.path(table, partition)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not _is_local(target):
            with target.open("wb") as fh:
                frame.write_parquet(fh, row_group_size=ROW_GROUP_ROWS)
            return target
        tmp = Path(str(target.path)).with_name(f".{FILE_NAME}.{uuid.uuid4().hex}.tmp")
        try:
            frame.write_parquet(tmp, row_group_size=ROW_GROUP_ROWS)
            os.replace(tmp, target.path)  # atomic on one filesystem: readers see the old or the new file
        finally:
            tmp.unlink(missing_ok=True)
        return target

    def _spool_dir(self) -> Path:
        # Beside the tables when local (so adopting is a rename); a local temp dir for object storage.
        folder = Path(str(self.root.path)) / ".spool" if _is_local(self.root) else Path(tempfile.gettempdir()) / "depsim-spool"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def spool(self, batches: Iterable[pl.DataFrame], empty: pl.Schema | None = None) -> Spooled:
        """Write batches (one row group each, same schema) to a temp file; removed if anything raises,
        so a run that fails half-way (a privacy gate) leaves nothing behind."""
        path = self._spool_dir() / f"{uuid.uuid4().hex}.parquet"
        writer: pq.ParquetWriter | None = None
        rows = 0
        try:
            for batch in batches:
                table = batch.to_arrow()
                if writer is None:
                    writer = pq.ParquetWriter(path, table.schema, compression="zstd")
                writer.write_table(table.cast(writer.schema), row_group_size=max(1, len(table)))
                rows += len(table)
            if writer is None:  # no batch at all: an empty table of the expected schema
                if empty is None:
                    raise ValueError("spool: no batch to write and no schema for an empty table")
                empty.to_frame().write_parquet(path)
                return Spooled(path, 0)
            writer.close()
            writer = None
        except BaseException:
            if writer is not None:
                writer.close()
            path.unlink(missing_ok=True)
            raise
        return Spooled(path, rows)

    def adopt(self, table: str, spooled: Spooled, partition: Partition | None = None) -> UPath:
        """Move a spooled file into place (atomic on the warehouse's own filesystem)."""
        target = self.path(table, partition)
        target.parent.mkdir(parents=True, exist_ok=True)
        if _is_local(target):
            os.replace(spooled.path, target.path)
        else:
            with open(spooled.path, "rb") as src, target.open("wb") as dst:
                dst.write(src.read())
            spooled.path.unlink()
        return target

    def row_groups(self, table: str, partition: Partition | None = None) -> Iterator[pl.DataFrame]:
        """The stored table one row group at a time (bounded memory for any table size)."""
        path = self.path(table, partition)
        if not path.exists():
            raise MissingTableError(f"warehouse has no table '{table}' at {path}: materialize that asset first")
        yield from self._row_groups(path)

    def row_groups_of(self, spooled: Spooled) -> Iterator[pl.DataFrame]:
        yield from self._row_groups(UPath(spooled.path))

    @staticmethod
    def _row_groups(path: UPath) -> Iterator[pl.DataFrame]:
        with path.open("rb") as fh:
            parquet = pq.ParquetFile(fh)
            for i in range(parquet.num_row_groups):
                yield pl.from_arrow(parquet.read_row_group(i))  # type: ignore[misc]

    def partitions(self, table: str) -> list[str]:
        base = self.table_dir(table)
        if not base.exists():
            return []
        prefix = f"{PARTITION_COLUMN}="
        # A release counts once any file of it is stored (for release × shard, any shard).
        return sorted(p.name[len(prefix):] for p in base.iterdir()
                      if p.name.startswith(prefix) and ((p / FILE_NAME).exists() or any(p.glob(f"*/{FILE_NAME}"))))

    def stored_partitions(self, table: str) -> list[Partition]:
        """Every stored partition file of a table: release names, or {dimension: key} for nested ones."""
        out: list[Partition] = []
        for release in self.partitions(table):
            folder = self.table_dir(table) / f"{PARTITION_COLUMN}={release}"
            if (folder / FILE_NAME).exists():
                out.append(release)
            out += [{PARTITION_COLUMN: release, **dict([f.parent.name.split("=", 1)])}
                    for f in sorted(folder.glob(f"*=*/{FILE_NAME}"), key=lambda f: f.parent.name)]
        return out

    def stored_shape(self, table: str, partition: Partition | None = None) -> tuple[int, list[tuple[str, str]]]:
        """Rows and (column, type) of a stored file, from its Parquet footer (polars' type names)."""
        with self.path(table, partition).open("rb") as fh:
            rows = pq.ParquetFile(fh).metadata.num_rows
        return rows, [(name, str(dtype)) for name, dtype in self.scan(table, [partition] if partition else None)
                      .drop(PARTITION_COLUMN if partition else [], strict=False).collect_schema().items()]

    def exists(self, table: str, partition: Partition | None = None) -> bool:
        return self.path(table, partition).exists()

    def _scan_file(self, path: UPath) -> pl.LazyFrame:
        return pl.scan_parquet(str(path) if _is_local(path) else path.as_uri(), storage_options=dict(path.storage_options) or None)

    def scan(self, table: str, partitions: Sequence[Partition] | None = None, *, all_partitions: bool = False) -> pl.LazyFrame:
        """One lazy frame over the stored files.

        - `partitions=None, all_partitions=False`: the unpartitioned table;
        - `partitions=[...]`: those partitions (missing ones skipped), with a `release` column;
        - `all_partitions=True`: every stored partition, with a `release` column.
        """
        if partitions is None and not all_partitions:
            path = self.path(table)
            if not path.exists():
                raise MissingTableError(f"warehouse has no table '{table}' at {path}: materialize that asset first")
            return self._scan_file(path)
        wanted = self.stored_partitions(table) if all_partitions else [p for p in partitions or [] if self.exists(table, p)]
        if not wanted:
            raise MissingTableError(f"warehouse has no stored partition of '{table}'"
                                    + (f" among {list(partitions)}" if partitions else "") + ": materialize them first")
        frames = [self._with_release(self._scan_file(self.path(table, p)), p) for p in wanted]
        # diagonal_relaxed: partitions stored before a schema change keep their columns (null elsewhere).
        return frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")

    @staticmethod
    def _with_release(frame: pl.LazyFrame, partition: Partition) -> pl.LazyFrame:
        names = frame.collect_schema().names()
        release = release_of(partition)
        return frame if PARTITION_COLUMN in names else frame.with_columns(pl.lit(release, dtype=pl.String).alias(PARTITION_COLUMN))

    def read(self, table: str, partitions: Sequence[Partition] | None = None, *, all_partitions: bool = False) -> pl.DataFrame:
        return self.scan(table, partitions, all_partitions=all_partitions).collect()

    def read_or_empty(self, table: str, *, all_partitions: bool = False) -> pl.DataFrame:
        try:
            return self.read(table, all_partitions=all_partitions)
        except MissingTableError:
            return pl.DataFrame()

    def tables(self) -> list[str]:
        """Stored tables (folders starting with `_` or `.` hold the completion store and the ledgers)."""
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and not p.name.startswith((".", "_")) and ((p / FILE_NAME).exists() or self.partitions(p.name)))

    def duckdb_views(self) -> list[str]:
        """`create view` statements for every stored table (hive partitions become a `release` column)."""
        out = []
        for table in self.tables():
            if self.partitions(table):
                glob = str(self.table_dir(table) / f"{PARTITION_COLUMN}=*" / "**" / FILE_NAME)
                src = f"read_parquet('{glob}', hive_partitioning = true, union_by_name = true)"
            else:
                src = f"read_parquet('{self.path(table)}')"
            out.append(f'create or replace view "{table}" as select * from {src}')
        return out
