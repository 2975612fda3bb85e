"""The DuckDB IO manager on a real Dagster instance and a real DuckDB file."""

import dagster as dg
import duckdb
import polars as pl
import pytest

from depsim_assets.core.config import load_study
from depsim_assets.definitions import build_resources
from depsim_assets.partitions import release_partitions
from depsim_resources.warehouse import read_frame, write_frame

STUDY = """
study: wh
warehouse_dir: wh
sources: [{name: t, paths: [t.jsonl]}]
"""


@dg.asset(partitions_def=release_partitions)
def per_release(context: dg.AssetExecutionContext) -> pl.DataFrame:
    n = 3 if context.partition_key == "a" else 2
    return pl.DataFrame({"i": list(range(n)), "who": [context.partition_key] * n})


@dg.asset(partitions_def=release_partitions)
def downstream(per_release: pl.DataFrame) -> pl.DataFrame:
    return per_release.with_columns(doubled=pl.col("i") * 2)


@dg.asset
def snapshot() -> pl.DataFrame:
    return pl.DataFrame({"x": [1, 2, 3]})


def test_partitions_written_one_after_the_other_and_read_back(write_study, instance: dg.DagsterInstance) -> None:
    cfg = write_study(STUDY)
    instance.add_dynamic_partitions("release", ["a", "b"])
    resources = build_resources(str(cfg))
    for key in ("a", "b"):
        assert dg.materialize([per_release, downstream], partition_key=key, instance=instance, resources=resources).success
    with duckdb.connect(str(load_study(cfg).warehouse_path)) as con:
        table = read_frame(con, "downstream").sort("release", "i")
    assert table.group_by("release").len().sort("release").rows() == [("a", 3), ("b", 2)]
    assert table["doubled"].to_list() == [0, 2, 4, 0, 2]
    # Downstream read only its own partition: every row of partition b says "b".
    assert table.filter(pl.col("release") == "b")["who"].unique().to_list() == ["b"]

    # Re-materializing one partition replaces its rows and leaves the other alone.
    assert dg.materialize([per_release], partition_key="a", instance=instance, resources=resources).success
    with duckdb.connect(str(load_study(cfg).warehouse_path)) as con:
        assert read_frame(con, "per_release").group_by("release").len().sort("release").rows() == [("a", 3), ("b", 2)]


def test_unpartitioned_asset_is_replaced(write_study, instance: dg.DagsterInstance) -> None:
    cfg = write_study(STUDY)
    resources = build_resources(str(cfg))
    for _ in range(2):
        result = dg.materialize([snapshot], instance=instance, resources=resources)
    mat = result.asset_materializations_for_node("snapshot")[0]
    assert mat.metadata["dagster/row_count"].value == 3
    with duckdb.connect(str(load_study(cfg).warehouse_path)) as con:
        assert read_frame(con, "snapshot")["x"].to_list() == [1, 2, 3]


def test_schema_change_keeps_other_partitions(tmp_path) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        write_frame(con, "t", pl.DataFrame({"a": [1]}), "p1")
        write_frame(con, "t", pl.DataFrame({"a": [2], "b": ["new"]}), "p2")
        out = read_frame(con, "t").sort("a")
        assert out.select("a", "b", "release").rows() == [(1, None, "p1"), (2, "new", "p2")]
        assert read_frame(con, "t", ["p2"])["a"].to_list() == [2]


def test_failed_write_leaves_partition_untouched(tmp_path) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        write_frame(con, "t", pl.DataFrame({"a": [1, 2]}), "p1")
        # A Python-object column cannot be stored: the write fails inside the transaction.
        with pytest.raises(Exception):  # noqa: B017, PT011 - polars or duckdb, whichever refuses first
            write_frame(con, "t", pl.DataFrame({"a": [object()]}, schema={"a": pl.Object}), "p1")
        assert read_frame(con, "t", ["p1"])["a"].to_list() == [1, 2]


def test_reading_a_missing_table_says_what_to_do(tmp_path) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con, pytest.raises(FileNotFoundError, match="materialize"):
        read_frame(con, "nothing")
