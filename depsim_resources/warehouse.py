"""The warehouse IO manager: each asset partition is one Parquet file (see `core/storage.py`).

Dagster's `UPathIOManager` writes straight to the final path (a reader can see half a file) and
refuses a run that stores several partitions at once; this one renames a complete temp file into
place and splits a multi-partition output by its `release` column. It never opens a database, so any
number of steps and runs may write different partitions at the same time.

Inputs annotated `pl.LazyFrame` get one lazy scan over the mapped partitions with a `release` column
(cross-release readers: the comparison, calibration, the scorecard); `pl.DataFrame` inputs are
collected, and carry `release` only when the mapping yields several partitions.
"""

from __future__ import annotations

import dagster as dg
import polars as pl

from depsim_assets.core.storage import PARTITION_COLUMN, MissingTableError, Partition, Spooled, Warehouse
from depsim_resources.study import StudyResource


def table_name(asset_key: dg.AssetKey) -> str:
    # The warehouse is per study, so the last key component names the table even under a study prefix.
    return asset_key.path[-1]


def _partitions(keys: object) -> list[Partition]:
    # A multi-partition key (release × shard, release × window) is stored in nested hive folders.
    return [dict(k.keys_by_dimension) if isinstance(k, dg.MultiPartitionKey) else k for k in keys]  # type: ignore[attr-defined]


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Stores each asset partition as a Parquet file in the study's warehouse directory."""

    study: StudyResource

    def _warehouse(self, context: dg.OutputContext | dg.InputContext) -> Warehouse:
        wh = self.study.load().warehouse
        old = wh.legacy_file()
        if old is not None:
            context.log.warning(f"{old} is a single-file warehouse from depsim < 0.2 and is not read: tables are now Parquet "
                                f"files under {wh.root}. Rebuild them with `depsim run --all`, then delete the old file.")
        return wh

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame | pl.LazyFrame | Spooled | None) -> None:
        if obj is None:
            return
        if isinstance(obj, pl.LazyFrame):
            obj = obj.collect()
        if not isinstance(obj, pl.DataFrame | Spooled):
            raise TypeError(f"{context.asset_key.to_user_string()}: the warehouse stores polars DataFrames, got {type(obj).__name__}")
        wh, table = self._warehouse(context), table_name(context.asset_key)
        keys = _partitions(context.asset_partition_keys) if context.has_asset_partitions else []
        if isinstance(obj, Spooled):
            # Larger than memory should hold: written batch by batch by the asset, stored by a rename.
            wh.adopt(table, obj, keys[0] if keys else None)
        elif len(keys) > 1:
            # One run storing several partitions (a ranged backfill): the frame says which rows are whose.
            if PARTITION_COLUMN not in obj.columns:
                raise ValueError(f"{table}: a run over {len(keys)} partitions must return a `{PARTITION_COLUMN}` column")
            for key in keys:
                wh.write(table, obj.filter(pl.col(PARTITION_COLUMN) == key).drop(PARTITION_COLUMN), key)
        else:
            wh.write(table, obj, keys[0] if keys else None)
        # Described from what was stored (the first partition of a ranged run stands for the schema).
        rows, columns = wh.stored_shape(table, keys[0] if keys else None)
        uri = wh.table_dir(table) if len(keys) > 1 else wh.path(table, keys[0] if keys else None)
        context.add_output_metadata({
            "dagster/uri": str(uri), "dagster/row_count": len(obj) if isinstance(obj, pl.DataFrame) else rows,
            "dagster/column_schema": dg.TableSchema(columns=[dg.TableColumn(name, dtype) for name, dtype in columns])})

    def load_input(self, context: dg.InputContext) -> pl.DataFrame | pl.LazyFrame:
        upstream = context.upstream_output
        assert upstream is not None and upstream.asset_key is not None
        wh, table = self._warehouse(context), table_name(upstream.asset_key)
        lazy_wanted = context.dagster_type.typing_type is pl.LazyFrame
        if not context.has_asset_partitions:
            frame = wh.scan(table)
            return frame if lazy_wanted else frame.collect()
        keys = _partitions(context.asset_partition_keys)
        missing = [k for k in keys if not wh.exists(table, k)]
        if missing and (lazy_wanted or len(keys) > 1):
            # Cross-release readers work on what exists (a study's first release has no incumbent yet).
            context.log.warning(f"{table}: partitions not materialized yet, read without them: {missing}")
        present = [k for k in keys if k not in missing]
        if not present:
            if lazy_wanted:
                return pl.LazyFrame(schema={PARTITION_COLUMN: pl.String})
            raise MissingTableError(f"{table}: partition(s) {keys} not materialized: materialize them first")
        frame = wh.scan(table, present)
        if not lazy_wanted and len(keys) == 1:
            frame = frame.drop(PARTITION_COLUMN, strict=False)
        return frame if lazy_wanted else frame.collect()
