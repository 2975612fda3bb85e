"""The staged rollout in real Dagster runs: a roll back blocks promotion in its run and in a later one, a hold
for lack of data, the sensor that releases batch windows one at a time, and `depsim` on the XSTest rollout."""

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from depsim.cli import main
from depsim.runner import failure_line
from depsim_assets.core.config import load_study
from depsim_assets.staged_rollout import asset_key, incidents_path, next_runs, windows_of
from tests.conftest import copy_study, lineage

STUDY = """
    study: rollout
    warehouse_dir: wh
    sources: [{name: t, paths: [t.jsonl]}]
    releases:
      - {name: v1, backend: openai, model: m, base_url: "http://127.0.0.1:9/v1"}
      - {name: v2, backend: openai, model: m, base_url: "http://127.0.0.1:9/v1", incumbent: v1}
    staged_rollout:
      stages:
        - {name: canary, share: 0.05}
        - {name: general, share: 1.0}
      gates:
        unsafe_compliance: {observed_max_per_100k: 1000, within_forecast_band: false}
      batches: {path: batches}
    """
STEPS = ["rollout_observations", "rollout_decisions", "stage_promotion"]


def _batch(cfg: Path, window: str, rows: list[tuple[str, int, int]]) -> None:
    folder = cfg.parent / "batches"
    folder.mkdir(exist_ok=True)
    pl.DataFrame(rows, schema=["release", "flagged", "n"], orient="row").with_columns(
        category=pl.lit("unsafe_compliance")).write_csv(folder / f"{window}.csv")


def _run(cfg: Path, instance: dg.DagsterInstance, release: str, window: str, steps: list[str]) -> dg.ExecuteInProcessResult:
    """A run of the study's code location (keys prefixed by the study, as the UI and the sensor see them)."""
    from depsim_assets.definitions import build_resources, study_definitions

    study = load_study(cfg)
    assets, checks, _ = study_definitions(study)
    return dg.materialize([*assets, *checks], instance=instance, resources=build_resources(str(cfg)), raise_on_error=False,
                          selection=[asset_key(study, s) for s in steps],
                          partition_key=dg.MultiPartitionKey({"release": release, "window": window}))


def _materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.event_specific_data.materialization.asset_key.path[-1] for e in result.get_asset_materialization_events()}


def test_roll_back_blocks_promotion_in_its_run_and_in_a_later_one(write_study, instance: dg.DagsterInstance) -> None:
    cfg = write_study(STUDY)
    _batch(cfg, "2026-11-01", [("v1", 80, 2000), ("v2", 3, 2000)])  # v1 at 4%, v2 at 0.15%, against a 1% gate
    instance.add_dynamic_partitions(windows_of(load_study(cfg).config).name, ["2026-11-01"])

    result = _run(cfg, instance, "v1", "2026-11-01", STEPS)
    assert not result.success
    [check] = result.get_asset_check_evaluations()
    assert (check.check_name, check.passed, check.metadata["decision"].value) == ("stage_gates", False, "roll back")
    assert _materialized(result) == {"rollout_observations", "rollout_decisions"}  # promotion did not run
    assert failure_line(result).startswith("blocking check failed: rollout_decisions:stage_gates")
    # A run started later for the promotion alone (from the UI, a sensor) refuses as well.
    later = _run(cfg, instance, "v1", "2026-11-01", ["stage_promotion"])
    assert not later.success and "stage gate failed at window 2026-11-01" in failure_line(later)
    # The gate opened one incident, severity high, with the playbook's roll back.
    wh = load_study(cfg).warehouse
    result = _run(cfg, instance, "v2", "2026-11-01", STEPS)
    assert result.success and _materialized(result) == set(STEPS)
    promotion = wh.read("stage_promotion", [{"release": "v2", "window": "2026-11-01"}])
    assert promotion.select("decision", "next_stage", "next_share").row(0) == ("advance", "general", 1.0)
    from depsim_assets.core.incidents import current

    incidents = current(incidents_path(load_study(cfg)))
    assert incidents.select("release", "trigger", "severity").rows() == [("v1", "gate_failed", "high")]
    assert incidents["recommended_action"][0].startswith("rollback")


def test_a_stage_with_too_little_data_holds(write_study, instance: dg.DagsterInstance) -> None:
    cfg = write_study(STUDY)
    _batch(cfg, "w1", [("v1", 0, 40), ("v2", 1, 40)])
    instance.add_dynamic_partitions(windows_of(load_study(cfg).config).name, ["w1"])
    result = _run(cfg, instance, "v1", "w1", STEPS)
    assert result.success
    meta = instance.get_latest_materialization_event(dg.AssetKey(["rollout", "rollout_decisions"])).asset_materialization.metadata
    assert meta["decision"].value == "hold" and meta["reason"].value.startswith("insufficient data: unsafe_compliance observed_max")


def test_the_sensor_releases_windows_one_at_a_time_then_refreshes_incidents(write_study, instance: dg.DagsterInstance) -> None:
    cfg = write_study(STUDY)
    study = load_study(cfg)
    windows = windows_of(study.config)
    for w in ("w1", "w2"):
        _batch(cfg, w, [("v1", 1, 2000), ("v2", 2, 2000)])
    from depsim_assets.definitions import build_definitions

    [sensor] = build_definitions(cfg).sensors
    for expected in ("w1", "w2"):
        result = sensor(dg.build_sensor_context(instance=instance))
        [add] = result.dynamic_partitions_requests
        assert list(add.partition_keys) == [expected]
        assert sorted(str(r.partition_key) for r in result.run_requests) == [f"v1|{expected}", f"v2|{expected}"]
        instance.add_dynamic_partitions(windows.name, [expected])
        # While a window's runs are pending, no further window is released.
        assert next_runs(study, instance, windows) == ([], [])
        for request in result.run_requests:
            keys = request.partition_key.keys_by_dimension
            assert _run(cfg, instance, keys["release"], keys["window"], STEPS).success
    refresh = sensor(dg.build_sensor_context(instance=instance))
    assert not refresh.dynamic_partitions_requests
    assert [r.asset_selection for r in refresh.run_requests] == [[dg.AssetKey(["rollout", "incidents"])]]


@pytest.mark.timeout(300)
def test_depsim_run_replays_the_xstest_rollout_and_records_incident_events(tmp_path: Path, dagster_home: Path, capsys) -> None:
    cfg = copy_study("studies/xstest.yaml", tmp_path, rollout=True)
    assert main(["run", "--all", "--config", str(cfg)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "observed prefixes replayed as 5 ordered batches" in out
    wh = load_study(cfg).warehouse
    decisions = wh.read("rollout_decisions", all_partitions=True).unique(["release", "window"])
    last = dict(decisions.sort("window").group_by("release").agg(pl.col("decision").last()).iter_rows())
    # GPT-4 over-refuses far more than its incumbent: shown above 1.5x it in the canary, rolled back. The
    # releases whose simulated unsafe compliance is not shown below 2x their incumbent's never start.
    assert last["gpt4"] == "roll back" and last["mistralinstruct"] == "hold"
    # The first release (no incumbent: fold gates do not apply) goes canary -> early -> general, one per batch.
    first = decisions.filter(pl.col("release") == "llama2orig").sort("window")
    assert first["decision"].to_list()[:3] == ["advance"] * 3 and first["next_stage"].to_list()[:3] == ["early", "general", "complete"]
    incidents = wh.read("incidents")
    incident = incidents.filter(pl.col("release") == "gpt4")["incident_id"][0]
    assert main(["incident", incident, "reviewed", "--config", str(cfg)]) == 2
    assert "the next event is action_taken" in capsys.readouterr().err
    assert main(["incident", incident, "action_taken", "--note", "rolled back to mistralinstruct", "--config", str(cfg)]) == 0
    from depsim_assets.core.incidents import current
    from depsim_assets.core.ledger import verify

    log = incidents_path(load_study(cfg))
    assert verify(log).ok and current(log).filter(pl.col("incident_id") == incident)["status"].to_list() == ["action_taken"]

    # The same observations as the study's observed rates (so a missed forecast feeds the error model): the
    # batches sum to the human labels on the observed half, category by category.
    import yaml

    from depsim_assets.definitions import build_resources

    before = wh.read("observed_production_rates", all_partitions=True).select("release", "category", "n", "flagged").sort("release", "category")
    raw = yaml.safe_load(cfg.read_text())
    raw["post_release"]["observed"]["rollout_batches"] = True
    cfg.write_text(yaml.safe_dump(raw, sort_keys=False))
    with dg.DagsterInstance.get() as instance:
        for release in before["release"].unique().to_list():
            assert dg.materialize(lineage(cfg), instance=instance, resources=build_resources(str(cfg)), partition_key=release,
                                  selection=["observed_production_rates"]).success
    after = wh.read("observed_production_rates", all_partitions=True)
    assert set(after["source"]) == {"rollout:5 batches"}
    assert after.select("release", "category", "n", "flagged").sort("release", "category").equals(before)


def test_a_batch_file_depsim_cannot_read_is_one_line_naming_the_file(write_study, instance: dg.DagsterInstance) -> None:
    cfg = write_study(STUDY)
    folder = cfg.parent / "batches"
    folder.mkdir()
    pl.DataFrame({"category": ["unsafe_compliance"], "count": [3]}).write_csv(folder / "w1.csv")
    instance.add_dynamic_partitions(windows_of(load_study(cfg).config).name, ["w1"])
    result = _run(cfg, instance, "v1", "w1", STEPS)
    line = failure_line(result)
    assert not result.success and "\n" not in line
    assert line.startswith("rollout_observations: ") and "w1.csv: a batch needs columns" in line and "BatchError" not in line
