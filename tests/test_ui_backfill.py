"""The UI path: a backfill of every asset over all releases, launched over GraphQL as the UI does, run by
the real daemon with the default (multiprocess) executor and two concurrent runs, from an empty warehouse.
It must succeed, respect the declared lineage, and give the same tables as `depsim run --all`."""

import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from depsim.runner import run_study
from depsim_assets.core.config import load_study
from tests.conftest import copy_study
from tests.dagster_dev import DagsterDev

RELEASES = ["llama2orig", "llama2new", "mistralguard", "mistralinstruct", "gpt4"]
LAUNCH = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""
STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } ... on PythonError { message } }
}"""
# Tables whose rows must match `depsim run`, with the columns that identify a row.
COMPARED = {
    "grader_calibration": ["excluded_release", "grader_id", "category"],
    "rate_forecasts": ["release", "category", "grader_id"],
    "release_comparison": ["release", "category"],
    "forecast_scorecard": ["release", "category", "method"],
}


def _table(config: Path, table: str) -> pl.DataFrame:
    wh = load_study(config).warehouse
    frame = wh.read(table, all_partitions=True) if wh.partitions(table) else wh.read(table)
    keys = [k for k in COMPARED[table] if k in frame.columns]
    return frame.sort(keys).select(sorted(frame.columns))


@pytest.mark.timeout(900)
def test_ui_backfill_over_all_releases_matches_depsim_run(tmp_path: Path, dagster_home: Path) -> None:
    ui_config = copy_study("studies/xstest.yaml", tmp_path, name="ui")
    # The daemon ticks every 5 s instead of 30: a backfill advances one dependency wave a tick (tests/daemon_tick).
    with DagsterDev(ui_config, tmp_path / "dagster_dev.log", daemon_tick=5) as ui:
        keys = [n["assetKey"] for n in ui.graphql("{ assetNodes { assetKey { path } } }")["assetNodes"]]
        launched = ui.graphql(LAUNCH, {"params": {"assetSelection": keys, "allPartitions": True}})["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        deadline = time.time() + 780
        status = None
        while time.time() < deadline:
            status = ui.graphql(STATUS, {"id": launched["backfillId"]})["partitionBackfillOrError"].get("status")
            if status in ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"):
                break
            time.sleep(3)
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": launched["backfillId"]}))
        failed = [r.dagster_run.run_id for r in runs if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS]
        assert status in ("COMPLETED", "COMPLETED_SUCCESS") and not failed, (status, failed, (tmp_path / "dagster_dev.log").read_text()[-4000:])
        # Several runs were under way at once (the default executor in each, two concurrent runs).
        spans = sorted((r.start_time, r.end_time) for r in runs)
        assert any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False)), "no two runs overlapped"
        # Each comparison ran after its incumbent's labels were stored (the declared edge ordered them).
        study = load_study(ui_config).config
        for release in study.releases:
            if release.incumbent is None:
                continue
            labelled = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(["xstest", "graded_labels"]), asset_partitions=[release.incumbent]), limit=1).records[0]
            compared = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(["xstest", "release_comparison"]), asset_partitions=[release.name]), limit=1).records[0]
            started = instance.get_run_record_by_id(compared.run_id).start_time
            assert started >= labelled.timestamp, f"{release.name}'s comparison started before {release.incumbent} was graded"

    cli_config = copy_study("studies/xstest.yaml", tmp_path, name="cli")
    run_study(cli_config, releases=RELEASES, progress=lambda _: None)
    for table in COMPARED:
        ui_rows, cli_rows = _table(ui_config, table), _table(cli_config, table)
        assert len(ui_rows) > 0, table
        assert_frame_equal(ui_rows, cli_rows, check_exact=False, rtol=1e-9)
