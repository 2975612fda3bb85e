"""rate_forecasts and release_comparison on the hh-rlhf demo study (chosen vs rejected on identical prefixes)."""

from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
import yaml

from depsim_assets.core.config import load_study
from depsim_assets.core.forecast_config import ForecastConfig
from depsim_assets.core.forecast import rate_forecasts
from depsim_assets.definitions import build_resources
from depsim.runner import run_study
from tests.conftest import REPO, lineage, warehouse_sql


@pytest.fixture
def hh_study(tmp_path: Path) -> Path:
    raw = yaml.safe_load((REPO / "depsim.yaml").read_text())
    raw["warehouse_dir"] = str(tmp_path / "wh")
    raw["sources"][0]["paths"] = [str(REPO / raw["sources"][0]["paths"][0])]
    cfg = tmp_path / "hh.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    return cfg


def test_forecasts_and_paired_comparison_end_to_end(hh_study: Path, dagster_home: Path) -> None:
    summary = run_study(hh_study, releases=["hh-rejected", "hh-chosen"], progress=lambda _: None)
    assert all(summary.checks.values())
    with warehouse_sql(hh_study) as con:
        fc = con.sql("select * from rate_forecasts where release = 'hh-chosen'").pl()
        cmp = con.sql("select * from release_comparison where release = 'hh-chosen'").pl()
        labels = con.sql("select * from graded_labels where grader_id = 'refusal_rules' and category = 'refusal'").pl()
    row = fc.filter(pl.col("category") == "refusal").row(0, named=True)
    chosen = labels.filter(pl.col("release") == "hh-chosen")
    assert row["n_eligible"] == 399 and row["flagged"] == int(chosen["flagged"].sum())
    assert row["cp_lo_per_100k"] <= row["rate_per_100k"] <= row["cp_hi_per_100k"]
    assert row["correction_refused"] == "no calibration for this grader and category"  # hh has no human labels
    c = cmp.filter(pl.col("category") == "refusal").row(0, named=True)
    joined = chosen.select("prefix_id", cand="flagged").join(
        labels.filter(pl.col("release") == "hh-rejected").select("prefix_id", inc="flagged"), on="prefix_id")
    assert c["candidate_only"] == int((joined["cand"] & ~joined["inc"]).sum())
    assert c["incumbent_only"] == int((~joined["cand"] & joined["inc"]).sum())
    assert c["incumbent"] == "hh-rejected" and c["direction"] in ("up", "down", "no detectable change")
    # Zero flagged categories get an upper bound instead of a zero-width interval.
    zero = fc.filter(pl.col("flagged") == 0)
    assert zero.is_empty() or zero["upper_95_per_100k_if_zero"].is_not_null().all()


def test_comparison_refuses_different_snapshots(hh_study: Path, dagster_home: Path) -> None:
    run_study(hh_study, releases=["hh-rejected", "hh-chosen"], progress=lambda _: None)
    wh = load_study(hh_study).warehouse
    older = wh.read("regenerated_completions", ["hh-rejected"]).drop("release").with_columns(snapshot_id=pl.lit("snap-older"))
    wh.write("regenerated_completions", older, "hh-rejected")
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize(lineage(hh_study), instance=instance, resources=build_resources(str(hh_study)), partition_key="hh-chosen",
                                selection=dg.AssetSelection.assets("release_comparison"), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).event_specific_data.error.cause
    assert "different prefix snapshots" in failure.message and "snap-older" in failure.message


def test_weighted_rates_with_a_design_based_interval_when_prefixes_share_a_conversation() -> None:
    n = 400
    labels = pl.DataFrame({
        "prefix_id": [f"c{i // 2}#{i % 2}" for i in range(n)], "sample_index": [0] * n, "category": ["refusal"] * n,
        "grader_id": ["r"] * n, "grader_version": ["v"] * n, "human": [False] * n, "flagged": [i % 10 == 0 for i in range(n)],
        "severity": [None] * n, "rationale": [""] * n, "status": ["ok"] * n, "failure_reason": [None] * n, "eligible": [True] * n,
    })
    prefixes = pl.DataFrame({"prefix_id": labels["prefix_id"], "conversation_id": [f"c{i // 2}" for i in range(n)],
                             "weight": np.where(np.arange(n) < 200, 1.0, 3.0), "stratum": np.where(np.arange(n) < 200, "a", "b"),
                             "snapshot_id": ["s"] * n})
    row = rate_forecasts(labels, prefixes, pl.DataFrame(), ForecastConfig()).row(0, named=True)
    # No calibration: the forecast of record is the weighted rate, with its sampling-only interval.
    assert row["forecast_estimate"] == "weighted" and row["forecast_rate_per_100k"] == row["weighted_rate_per_100k"]
    assert row["correction_refused"] == "no calibration for this grader and category" and row["n_effective"] > 0
    flags = labels["flagged"].cast(pl.Float64).to_numpy()
    w = prefixes["weight"].to_numpy()
    assert row["weighted_rate_per_100k"] == pytest.approx(float((w * flags).sum() / w.sum()) * 1e5)
    assert row["weighted_lo_per_100k"] < row["weighted_rate_per_100k"] < row["weighted_hi_per_100k"]
