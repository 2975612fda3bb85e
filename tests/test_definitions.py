"""Definitions load, the release sensor and CLI add partitions, `dagster dev` serves the graph."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from tests.conftest import REPO

STAGES = {"traffic", "simulation", "grading", "forecasting", "post_release", "staged_rollout", "realism", "discovery"}


def test_definitions_bind_the_study_releases_and_declare_cross_release_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    # As dagster-open-platform does: real env vars are absent in CI, placeholders must suffice.
    monkeypatch.setenv("DEPSIM_PRIVACY_KEY", "placeholder")
    from depsim_assets.definitions import build_definitions

    graph = build_definitions(REPO / "studies" / "xstest.yaml").get_repository_def().asset_graph
    # Every key carries the study: two studies in one instance never share an asset's history.
    assert all(n.key.path[0] == "xstest" and len(n.key.path) == 2 for n in graph.asset_nodes)
    nodes = {n.key.path[-1]: n for n in graph.asset_nodes}
    assert {"deidentified_conversations", "traffic_manifest", "traffic_quarantine"} <= set(nodes)
    assert not {"raw_traffic", "consented_traffic"} & set(nodes)  # raw text is never an asset
    for node in nodes.values():
        assert node.group_name in STAGES, node.key
        assert node.description and len(node.description) > 20, node.key
    releases = ["llama2orig", "llama2new", "mistralguard", "mistralinstruct", "gpt4"]
    assert nodes["graded_labels"].partitions_def.get_partition_keys() == releases
    comparison = dg.AssetKey(["xstest", "release_comparison"])
    labels = dg.AssetKey(["xstest", "graded_labels"])
    # The comparison of a release reads its own and its incumbent's labels (a declared edge, not a side read).
    mapping = graph.get(comparison).partition_mappings[labels]
    readers = mapping.downstream_partition_keys_by_upstream_partition_key
    assert set(readers["llama2orig"]) == {"llama2orig", "llama2new"} and set(readers["gpt4"]) == {"gpt4"}
    assert nodes["grader_calibration"].partitions_def is None and labels in nodes["grader_calibration"].parent_keys
    assert {labels, dg.AssetKey(["xstest", "observed_production_rates"]), comparison} <= nodes["forecast_scorecard"].parent_keys
    assert not any(n.group_name == "agentic" for n in nodes.values())  # no trajectory source: no agentic group
    agentic = build_definitions(REPO / "studies" / "marshmallow_agentic.yaml").get_repository_def()
    agentic_nodes = {n.key.path[-1]: n for n in agentic.asset_graph.asset_nodes}
    assert {"agentic_trajectories", "agentic_prefixes", "tool_call_records"} <= set(agentic_nodes)
    assert dg.AssetKey(["marshmallow_agentic", "agentic_trajectories"]) in agentic_nodes["tool_call_records"].parent_keys
    assert any(c.name == "agentic_trajectories_pass_expectations" for c in agentic.asset_checks_defs_by_key)
    # Another study gets its own partitions (static, per code location: never instance-wide).
    other = build_definitions(REPO / "depsim.yaml").get_repository_def().asset_graph
    assert other.get(dg.AssetKey(["hh_rlhf", "graded_labels"])).partitions_def.get_partition_keys() == ["hh-rejected", "hh-chosen"]


def _validate(config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEPSIM_CONFIG": str(config)}
    return subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-w", str(REPO / "workspace.yaml")],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=180)


def test_dagster_definitions_validate_cli_loads_one_location_per_demo_study() -> None:
    out = _validate(REPO / "depsim.yaml")
    assert out.returncode == 0, out.stdout + out.stderr
    for location in ("depsim", "xstest", "marshmallow_agentic", "calculator_constructed"):
        assert f"Validation successful for code location {location}." in out.stdout + out.stderr


def test_a_bad_study_config_fails_the_load_listing_every_problem(write_study) -> None:
    bad = write_study(
        """
        study: s
        sources: [{name: t, paths: [t.jsonl], colour: blue}]
        releases:
          - {name: v1, backend: recorded, model: m, recorded: {reference_variant: a}}
          - {name: v2, backend: recorded, model: m, incumbent: v0, recorded: {reference_variant: a}}
        prefixes: {mode: every_turn}
        """
    )
    out = _validate(bad)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    # Every problem, in the CLI's words (the same ConfigError text).
    assert "sources.0.colour: unknown key" in text
    assert "prefixes.mode: Input should be 'final_turn' or 'every_assistant_turn'" in text
    assert "releases.v2.incumbent: 'v0' is not a declared release" in text




def _validate_with(config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    out = {**os.environ, "DEPSIM_CONFIG": str(config), **env}
    return subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-m", "depsim_assets.definitions"],
                          capture_output=True, text=True, cwd=REPO, env=out, timeout=180)


def test_the_executor_is_chosen_per_deployment_and_a_bad_choice_fails_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    config = REPO / "studies" / "xstest.yaml"
    unknown = _validate_with(config, DEPSIM_EXECUTOR="kubernetes")
    assert unknown.returncode != 0 and "DEPSIM_EXECUTOR='kubernetes' is not an executor depsim knows" in unknown.stdout + unknown.stderr
    no_broker = _validate_with(config, DEPSIM_EXECUTOR="celery", DEPSIM_CELERY_BROKER="", DEPSIM_CELERY_BACKEND="")
    assert no_broker.returncode != 0 and "needs DEPSIM_CELERY_BROKER and DEPSIM_CELERY_BACKEND" in no_broker.stdout + no_broker.stderr

    from depsim_assets.definitions import build_definitions

    monkeypatch.setenv("DEPSIM_EXECUTOR", "celery")
    monkeypatch.setenv("DEPSIM_CELERY_BROKER", "redis://127.0.0.1:9/0")
    monkeypatch.setenv("DEPSIM_CELERY_BACKEND", "redis://127.0.0.1:9/1")
    job = build_definitions(config).resolve_implicit_global_asset_job_def()
    assert job.executor_def.name == "celery"
    # The URLs stay env references in the executor's config (a password in one never reaches run config).
    assert job.executor_def.config_schema.config_type is not None
    monkeypatch.delenv("DEPSIM_EXECUTOR")
    assert build_definitions(config).resolve_implicit_global_asset_job_def().executor_def.name == "multi_or_in_process_executor"
