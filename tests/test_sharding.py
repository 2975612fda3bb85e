"""Sharded dispatch and grading in process (the runner's path): the same tables as one shard, every
prefix in exactly one shard, and a release gathered from missing shards refused, not silently smaller."""

from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from depsim.runner import RunFailed, console_config, failure_line, run_study
from depsim_assets.core.config import load_study
from depsim_assets.core.prefixes import shard_of
from depsim_assets.definitions import build_resources, study_definitions
from depsim_assets.sharding import shard_keys
from depsim_assets.staged_rollout import asset_key
from tests.conftest import copy_study

RELEASES = ["llama2orig", "llama2new"]
SHARD_TABLES = {"completion_shards", "label_shards"}


def _tables(config: Path) -> dict[str, pl.DataFrame]:
    wh = load_study(config).warehouse
    out = {}
    for table in set(wh.tables()) - SHARD_TABLES:
        frame = wh.read(table, all_partitions=True) if wh.partitions(table) else wh.read(table)
        out[table] = frame.select(sorted(frame.columns)).sort(sorted(frame.columns), nulls_last=True)
    return out


def test_shards_split_every_prefix_once_and_the_same_way_for_every_release() -> None:
    ids = pl.Series("prefix_id", [f"v2-{i}#1" for i in range(2000)])
    shards = shard_of(ids, 4)
    assert shards.equals(shard_of(ids, 4))  # stable: a release and its incumbent are split alike, run after run
    counts = shards.value_counts().sort("shard")["count"].to_list()
    assert sorted(shards.unique()) == [0, 1, 2, 3] and min(counts) > 400, counts
    assert shard_keys(4) == ["0", "1", "2", "3"] and shard_keys(12)[:2] == ["00", "01"]


def test_a_sharded_study_gives_the_tables_of_an_unsharded_one(tmp_path: Path, dagster_home: Path) -> None:
    sharded = copy_study("studies/xstest.yaml", tmp_path, releases=RELEASES, name="sharded", shards=3)
    whole = copy_study("studies/xstest.yaml", tmp_path, releases=RELEASES, name="whole")
    run_study(sharded, releases=["llama2new"], progress=lambda _: None)
    run_study(whole, releases=["llama2new"], progress=lambda _: None)
    wh = load_study(sharded).warehouse
    shard_rows = wh.read("completion_shards", all_partitions=True)
    assert len(wh.stored_partitions("completion_shards")) == 2 * 3
    assert shard_rows.group_by("release").len().sort("release")["len"].to_list() == [450, 450]
    ours, theirs = _tables(sharded), _tables(whole)
    assert set(ours) == set(theirs)
    for table in sorted(ours):
        assert_frame_equal(ours[table], theirs[table], check_exact=False, rtol=1e-9)

    # A shard's file lost: gathering the release fails and names the shard, rather than a smaller sample.
    missing = wh.path("label_shards", {"release": "llama2new", "shard": "1"})
    missing.unlink()
    with pytest.raises(RunFailed, match=r"shards \['1'\] of label_shards are not materialized"):
        _gather_only(sharded, "llama2new")


def _gather_only(config: Path, release: str) -> None:
    study = load_study(config)
    assets, checks, _ = study_definitions(study)
    result = dg.materialize([*assets, *checks], resources=build_resources(str(config)), partition_key=release,
                            selection=[asset_key(study, "graded_labels")], run_config=console_config(), raise_on_error=False)
    if not result.success:
        raise RunFailed(failure_line(result))
