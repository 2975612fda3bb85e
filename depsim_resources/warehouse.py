"""DuckDB warehouse IO manager for polars frames.

Written for duckdb 2.x (the stock dagster-duckdb-polars reader breaks there): reads go through
`connection.sql(...).pl()`. Partitioned assets share one table with a `release` column; storing a
partition replaces only that partition's rows, in one transaction.
"""

from __future__ import annotations

import re

import dagster as dg
import duckdb
import polars as pl

from depsim_resources.study import StudyResource

PARTITION_COLUMN = "release"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def table_name(asset_key: dg.AssetKey) -> str:
    name = "__".join(asset_key.path)
    if not _IDENT.match(name):
        raise ValueError(f"asset key {asset_key} does not map to a plain table name")
    return name


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(con.execute("select count(*) from information_schema.tables where table_name = ?", [table]).fetchall()[0][0])


def write_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, partition: str | None) -> None:
    """Replace the whole table, or only one partition's rows, atomically."""
    if partition is None:
        con.register("_frame", frame)
        try:
            con.execute(f'create or replace table "{table}" as select * from _frame')
        finally:
            con.unregister("_frame")
        return
    frame = frame.with_columns(pl.lit(partition, dtype=pl.String).alias(PARTITION_COLUMN))
    con.execute("begin transaction")
    try:
        if table_exists(con, table):
            others = con.sql(f'select * from "{table}" where {PARTITION_COLUMN} <> ?', params=[partition]).pl()
            if set(others.columns) == set(frame.columns) and others.schema == frame.select(others.columns).schema:
                con.execute(f'delete from "{table}" where {PARTITION_COLUMN} = ?', [partition])
                con.register("_frame", frame)
                con.execute(f'insert into "{table}" by name select * from _frame')
            else:
                # The asset's schema changed between materializations: rewrite, keeping other partitions.
                merged = pl.concat([others, frame], how="diagonal_relaxed")
                con.register("_frame", merged)
                con.execute(f'create or replace table "{table}" as select * from _frame')
        else:
            con.register("_frame", frame)
            con.execute(f'create table "{table}" as select * from _frame')
        con.unregister("_frame")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise


def read_frame(con: duckdb.DuckDBPyConnection, table: str, partitions: list[str] | None = None) -> pl.DataFrame:
    if not table_exists(con, table):
        raise FileNotFoundError(f"warehouse has no table '{table}': materialize that asset first")
    if partitions is None:
        return con.sql(f'select * from "{table}"').pl()
    marks = ", ".join("?" for _ in partitions)
    return con.sql(f'select * from "{table}" where {PARTITION_COLUMN} in ({marks})', params=list(partitions)).pl()


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Stores each asset as a DuckDB table in the study's warehouse file."""

    study: StudyResource

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame | None) -> None:
        if obj is None:
            return
        if not isinstance(obj, pl.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()}: the warehouse stores polars DataFrames, got {type(obj).__name__}")
        table = table_name(context.asset_key)
        partition = context.partition_key if context.has_partition_key else None
        with self.study.connect() as con:
            write_frame(con, table, obj, partition)
        context.add_output_metadata({"table": table, "dagster/row_count": len(obj)})

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        upstream = context.upstream_output
        assert upstream is not None and upstream.asset_key is not None
        table = table_name(upstream.asset_key)
        partitions = list(context.asset_partition_keys) if context.has_asset_partitions else None
        with self.study.connect() as con:
            frame = read_frame(con, table, partitions)
        return frame.drop(PARTITION_COLUMN) if partitions is not None and PARTITION_COLUMN in frame.columns else frame
