"""The Parquet warehouse and its IO manager on a real Dagster instance and real files."""

import multiprocessing as mp
import os
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from depsim_assets.core.config import load_study
from depsim_assets.core.storage import MissingTableError, Warehouse
from depsim_assets.definitions import build_resources

STUDY = """
study: wh
warehouse_dir: wh
sources: [{name: t, paths: [t.jsonl]}]
"""
RELEASES = dg.StaticPartitionsDefinition(["a", "b", "c"])


@dg.asset(partitions_def=RELEASES)
def per_release(context: dg.AssetExecutionContext) -> pl.DataFrame:
    n = {"a": 3, "b": 2, "c": 1}[context.partition_key]
    return pl.DataFrame({"i": list(range(n)), "who": [context.partition_key] * n})


@dg.asset(partitions_def=RELEASES)
def downstream(per_release: pl.DataFrame) -> pl.DataFrame:
    return per_release.with_columns(doubled=pl.col("i") * 2)


@dg.asset(ins={"per_release": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())})
def across(per_release: pl.LazyFrame) -> pl.DataFrame:
    assert isinstance(per_release, pl.LazyFrame)  # one lazy scan, not a dict of frames
    return per_release.group_by("release").agg(n=pl.len()).sort("release").collect()


@dg.asset(partitions_def=RELEASES, backfill_policy=dg.BackfillPolicy.single_run())
def ranged(context: dg.AssetExecutionContext) -> pl.DataFrame:
    keys = context.partition_keys
    return pl.DataFrame({"release": keys, "x": list(range(len(keys)))})


@dg.asset
def snapshot() -> pl.DataFrame:
    return pl.DataFrame({"x": [1, 2, 3]})


def test_partitions_are_files_read_back_lazily_across_releases(write_study, instance: dg.DagsterInstance) -> None:
    cfg = write_study(STUDY)
    resources = build_resources(str(cfg))
    for key in ("a", "b"):
        assert dg.materialize([per_release, downstream], partition_key=key, instance=instance, resources=resources).success
    wh = load_study(cfg).warehouse
    assert (Path(str(wh.root)) / "per_release" / "release=a" / "part.parquet").is_file()
    table = wh.read("downstream", all_partitions=True).sort("release", "i")
    assert table.group_by("release").len().sort("release").rows() == [("a", 3), ("b", 2)]
    assert table["doubled"].to_list() == [0, 2, 4, 0, 2]
    assert table.filter(pl.col("release") == "b")["who"].unique().to_list() == ["b"]  # each read only its partition
    # The cross-release reader sees what exists (c was never materialized) and says so in the log.
    result = dg.materialize([per_release, across], selection=[across], instance=instance, resources=resources)
    assert wh.read("across").rows() == [("a", 3), ("b", 2)]
    assert any("not materialized yet" in str(e.user_message) and "'c'" in str(e.user_message) for e in instance.all_logs(result.run_id))
    # Re-materializing one partition replaces its file and leaves the other alone.
    assert dg.materialize([per_release], partition_key="a", instance=instance, resources=resources).success
    assert wh.read("per_release", all_partitions=True).group_by("release").len().sort("release").rows() == [("a", 3), ("b", 2)]


def test_one_run_may_store_several_partitions(write_study, instance: dg.DagsterInstance) -> None:
    # Dagster's UPathIOManager refuses this; a ranged backfill run does it.
    cfg = write_study(STUDY)
    result = dg.materialize([ranged], instance=instance, resources=build_resources(str(cfg)),
                            tags={"dagster/asset_partition_range_start": "a", "dagster/asset_partition_range_end": "c"})
    assert result.success
    wh = load_study(cfg).warehouse
    assert wh.partitions("ranged") == ["a", "b", "c"]
    assert wh.read("ranged", ["b"])["x"].to_list() == [1]


def test_unpartitioned_asset_is_replaced_with_metadata(write_study, instance: dg.DagsterInstance) -> None:
    cfg = write_study(STUDY)
    resources = build_resources(str(cfg))
    for _ in range(2):
        result = dg.materialize([snapshot], instance=instance, resources=resources)
    meta = result.asset_materializations_for_node("snapshot")[0].metadata
    assert meta["dagster/row_count"].value == 3
    assert meta["dagster/uri"].value.endswith("snapshot/part.parquet")
    assert [c.name for c in meta["dagster/column_schema"].schema.columns] == ["x"]
    assert load_study(cfg).warehouse.read("snapshot")["x"].to_list() == [1, 2, 3]


def test_schema_change_keeps_other_partitions(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path)
    wh.write("t", pl.DataFrame({"a": [1]}), "p1")
    wh.write("t", pl.DataFrame({"a": [2], "b": ["new"]}), "p2")
    out = wh.read("t", all_partitions=True).sort("a")
    assert out.select("a", "b", "release").rows() == [(1, None, "p1"), (2, "new", "p2")]
    assert wh.read("t", ["p2"])["a"].to_list() == [2]


def test_failed_write_leaves_the_partition_and_no_temp_file(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path)
    wh.write("t", pl.DataFrame({"a": [1, 2]}), "p1")
    with pytest.raises(Exception):  # noqa: B017, PT011 - an Object column cannot be written to Parquet
        wh.write("t", pl.DataFrame({"a": [object()]}, schema={"a": pl.Object}), "p1")
    assert wh.read("t", ["p1"])["a"].to_list() == [1, 2]
    assert sorted(p.name for p in (tmp_path / "t" / "release=p1").iterdir()) == ["part.parquet"]


def _write_many(root: str, partition: str, rounds: int) -> None:
    wh = Warehouse(root)
    for i in range(rounds):
        wh.write("t", pl.DataFrame({"round": [i] * 1000, "who": [partition] * 1000}), partition)


def test_concurrent_processes_write_different_partitions(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(str(tmp_path), p, 30)) for p in ("a", "b", "c", "d")]
    for p in procs:
        p.start()
    wh = Warehouse(tmp_path)
    reads = 0
    while any(p.is_alive() for p in procs):
        for part in wh.partitions("t"):  # a reader never sees half a file
            frame = wh.read("t", [part])
            assert frame.height == 1000 and frame["who"].unique().to_list() == [part]
            reads += 1
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert wh.read("t", all_partitions=True).group_by("release").agg(pl.col("round").max()).sort("release").rows() == [
        ("a", 29), ("b", 29), ("c", 29), ("d", 29)]


def test_object_storage_paths_through_upath() -> None:
    wh = Warehouse("memory://depsim-test/wh")
    wh.write("t", pl.DataFrame({"a": [1, 2]}), "r1")
    assert wh.partitions("t") == ["r1"]
    assert wh.exists("t", "r1") and not wh.exists("t", "r2")


def test_reading_a_missing_table_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(MissingTableError, match="materialize"):
        Warehouse(tmp_path).read("nothing")


def test_old_single_file_warehouse_is_reported(write_study, instance: dg.DagsterInstance) -> None:
    cfg = write_study(STUDY)
    old = load_study(cfg).warehouse_dir / "warehouse.duckdb"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"old")
    result = dg.materialize([snapshot], instance=instance, resources=build_resources(str(cfg)))
    assert any("single-file warehouse" in str(e.user_message) and "depsim run --all" in str(e.user_message)
               for e in instance.all_logs(result.run_id))
    assert os.path.exists(old)  # reported, never deleted behind the user's back


def test_partitions_of_several_dimensions_are_nested_hive_folders(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path)
    for release, shard, rows in (("a", "0", 2), ("a", "1", 1), ("b", "0", 3)):
        wh.write("sharded", pl.DataFrame({"i": list(range(rows))}), {"shard": shard, "release": release})
    assert (tmp_path / "sharded" / "release=a" / "shard=1" / "part.parquet").is_file()  # release first, whatever the order given
    assert wh.partitions("sharded") == ["a", "b"]
    assert wh.stored_partitions("sharded") == [{"release": "a", "shard": "0"}, {"release": "a", "shard": "1"},
                                               {"release": "b", "shard": "0"}]
    assert wh.read("sharded", all_partitions=True).group_by("release").len().sort("release").rows() == [("a", 3), ("b", 3)]
    assert len(wh.read("sharded", [{"release": "a", "shard": "1"}])) == 1
    wh.write("flat", pl.DataFrame({"i": [1]}), "a")
    with duckdb.connect() as con:  # one view reads flat and nested tables, every dimension a column
        for view in wh.duckdb_views():
            con.execute(view)
        assert con.execute("select release, shard, count(*) from sharded group by all order by all").fetchall() == [
            ("a", 0, 2), ("a", 1, 1), ("b", 0, 3)]
        assert con.execute("select release, i from flat").fetchall() == [("a", 1)]
    with pytest.raises(ValueError, match="needs a 'release' one"):
        wh.path("sharded", {"shard": "0"})
