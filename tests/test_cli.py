"""`depsim` as a user runs it: one release at a time, several at once, and every user error as one line."""

from pathlib import Path

import dagster as dg
import pytest

from depsim.cli import main
from depsim.runner import failure_line
from depsim_assets.core.config import load_study
from tests.conftest import copy_study

CHAINS = {"depsim.yaml": ["hh-rejected", "hh-chosen"],
          "studies/xstest.yaml": ["llama2orig", "llama2new", "mistralguard", "mistralinstruct", "gpt4"]}


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("depsim: ") and "\n" not in err, err  # one line, no traceback
    return err


@pytest.mark.parametrize("shipped", list(CHAINS))
def test_each_release_on_its_own_in_chain_order(shipped: str, tmp_path: Path, dagster_home: Path, capsys) -> None:
    cfg = copy_study(shipped, tmp_path)
    for release in CHAINS[shipped]:
        assert main(["run", "--release", release, "--config", str(cfg)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "upstream assets unchanged since their last run: reused" in out  # the second release reused the first's traffic
    wh = load_study(cfg).warehouse
    assert wh.partitions("release_comparison") == sorted(CHAINS[shipped])
    assert wh.exists("forecast_scorecard")


def test_first_release_alone_gets_a_scorecard_that_says_why_it_is_partial(tmp_path: Path, dagster_home: Path) -> None:
    cfg = copy_study("studies/xstest.yaml", tmp_path)
    assert main(["run", "--release", "llama2orig", "--config", str(cfg)]) == 0
    with dg.DagsterInstance.get() as instance:
        meta = instance.get_latest_materialization_event(dg.AssetKey(["xstest", "forecast_scorecard"])).asset_materialization.metadata
    assert meta["scored_releases"].value == ["llama2orig"]
    assert meta["not_scored"].value == {r: "no forecast in the ledger" for r in CHAINS["studies/xstest.yaml"][1:]}


def test_never_graded_incumbent_runs_first_and_release_is_repeatable(tmp_path: Path, dagster_home: Path, capsys) -> None:
    cfg = copy_study("studies/xstest.yaml", tmp_path)
    assert main(["run", "--release", "mistralguard", "--release", "llama2new", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "incumbent 'llama2orig' was never graded: running it first" in out
    wh = load_study(cfg).warehouse
    assert wh.partitions("graded_labels") == ["llama2new", "llama2orig", "mistralguard"]
    assert wh.partitions("release_comparison") == ["llama2new", "mistralguard"]  # both named releases, not only the last
    # Results read in the UI as Dagster tables, the decision columns first, no scientific notation.
    with dg.DagsterInstance.get() as instance:
        comparison = instance.fetch_materializations(dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(["xstest", "release_comparison"]), asset_partitions=["mistralguard"]), limit=1).records[0]
        scorecard = instance.get_latest_materialization_event(dg.AssetKey(["xstest", "forecast_scorecard"])).asset_materialization
    for meta, first in ((comparison.asset_materialization.metadata["comparison"], ["category", "direction"]),
                        (scorecard.metadata["scored_rows"], ["release", "category", "method"])):
        assert isinstance(meta, dg.TableMetadataValue) and [c.name for c in meta.schema.columns][: len(first)] == first
        assert meta.records and not any("e+" in v or "e-" in v for r in meta.records for v in r.data.values() if isinstance(v, str)
                                        and any(ch.isdigit() for ch in v))
    # A method with nothing to score says why instead of showing a blank row.
    summary = scorecard.metadata["scorecard"].records
    assert summary and all(r.data.get("directional_accuracy") or r.data.get("note") for r in summary), [r.data for r in summary]


def test_two_studies_in_one_instance_keep_their_own_partitions_and_history(tmp_path: Path, dagster_home: Path) -> None:
    hh, xstest = copy_study("depsim.yaml", tmp_path), copy_study("studies/xstest.yaml", tmp_path)
    assert main(["run", "--release", "hh-rejected", "--config", str(hh)]) == 0
    assert main(["run", "--release", "llama2orig", "--config", str(xstest)]) == 0
    with dg.DagsterInstance.get() as instance:
        assert instance.get_materialized_partitions(dg.AssetKey(["hh_rlhf", "graded_labels"])) == {"hh-rejected"}
        assert instance.get_materialized_partitions(dg.AssetKey(["xstest", "graded_labels"])) == {"llama2orig"}
        # Nothing is written under a key that two studies would share.
        assert instance.get_latest_materialization_event(dg.AssetKey("graded_labels")) is None
        assert instance.get_latest_materialization_event(dg.AssetKey(["xstest", "forecast_scorecard"])) is not None
        assert instance.get_latest_materialization_event(dg.AssetKey(["hh_rlhf", "forecast_scorecard"])) is not None


def test_user_errors_are_one_line(tmp_path: Path, write_study, dagster_home: Path, capsys) -> None:
    cfg = copy_study("depsim.yaml", tmp_path)
    assert main(["run", "--release", "nope", "--config", str(cfg)]) == 2
    assert "release 'nope' is not declared" in _err(capsys)
    assert main(["run", "--config", str(cfg)]) == 2
    assert "--release R" in _err(capsys)
    bad = write_study("""
        study: s
        colour: blue
        sources: [{name: t, paths: [t.jsonl]}]
        releases:
          - {name: v2, backend: openai, model: m, base_url: "http://127.0.0.1:9/v1", incumbent: v1}
        """, name="bad.yaml")
    assert main(["run", "--all", "--config", str(bad)]) == 2
    err = _err(capsys)
    assert "colour: unknown key" in err and "releases.v2.incumbent: 'v1' is not a declared release" in err
    missing = write_study("""
        study: s
        warehouse_dir: wh
        sources: [{name: t, paths: [nowhere/*.jsonl]}]
        """, name="missing.yaml")
    assert main(["run", "--config", str(missing), "--all"]) == 1
    err = _err(capsys)
    assert "deidentified_conversations" in err and "'nowhere/*.jsonl' matched no file" in err
    # --debug adds the traceback.
    assert main(["--debug", "run", "--config", str(missing), "--all"]) == 1
    assert "depsim_assets/core/ingest.py" in capsys.readouterr().err  # the failing frame, from the step's stack


def test_privacy_gate_failure_is_one_line_naming_the_step(tmp_path: Path, write_study, dagster_home: Path, capsys) -> None:
    data = tmp_path / "t.jsonl"
    data.write_text('{"id": "c1", "consent": "model_improvement", "messages": [{"role": "user", "content": '
                    '"mail me at margaret.thornbury@fastmail.fm"}, {"role": "assistant", "content": "ok"}]}\n')
    cfg = write_study(f"""
        study: gate
        warehouse_dir: wh
        privacy: {{disabled_rules: [email]}}
        sources: [{{name: t, paths: ["{data}"]}}]
        """)
    assert main(["run", "--config", str(cfg), "--all"]) == 1
    err = _err(capsys)
    assert err.startswith("depsim: deidentified_conversations: ") and "survived scrubbing" in err
    assert "margaret" not in err.lower()


@dg.asset
def counted() -> int:
    return 1


@dg.asset_check(asset=counted, blocking=True)
def counted_is_even() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, metadata={"why": "odd"})


@dg.asset(deps=[counted])
def after_counted() -> int:
    return 2


def test_failed_blocking_check_is_one_line(instance: dg.DagsterInstance) -> None:
    result = dg.materialize([counted, after_counted, counted_is_even], instance=instance, raise_on_error=False)
    assert not result.success
    line = failure_line(result)
    assert line.startswith("blocking check failed: counted:counted_is_even") and "\n" not in line


def test_sql_reads_the_parquet_warehouse_through_duckdb_views(tmp_path: Path, dagster_home: Path, capsys) -> None:
    cfg = copy_study("depsim.yaml", tmp_path)
    assert main(["run", "--all", "--config", str(cfg)]) == 0
    capsys.readouterr()
    assert main(["sql", "--config", str(cfg)]) == 0
    assert "graded_labels" in capsys.readouterr().out
    catalog = tmp_path / "catalog.duckdb"
    query = "select release, count(*) as n from regenerated_completions group by 1 order by 1"
    assert main(["sql", query, "--config", str(cfg), "--catalog", str(catalog)]) == 0
    out = capsys.readouterr().out
    assert "hh-chosen" in out and "hh-rejected" in out and "399" in out
    assert catalog.exists()  # written only on request, never by asset runs
    assert not list(load_study(cfg).warehouse_dir.glob("*.duckdb"))
