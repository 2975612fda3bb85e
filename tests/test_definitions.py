"""Definitions load, the release sensor and CLI add partitions, `dagster dev` serves the graph."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from depsim_assets.cli import main as depsim_main
from depsim_assets.partitions import release_partition_sensor
from depsim_resources.study import StudyResource
from tests.conftest import REPO

STAGES = {"traffic", "simulation", "grading", "forecasting", "post_release"}


def test_definitions_load_with_placeholder_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # As dagster-open-platform does: real env vars are absent in CI, placeholders must suffice.
    monkeypatch.setenv("DEPSIM_PRIVACY_KEY", "placeholder")
    monkeypatch.setenv("OPENAI_API_KEY", "placeholder")
    from depsim_assets.definitions import defs

    repo = defs.get_repository_def()
    nodes = repo.asset_graph.asset_nodes
    assert {"raw_traffic", "traffic_quarantine", "consented_traffic"} <= {n.key.to_user_string() for n in nodes}
    for node in nodes:
        assert node.group_name in STAGES, node.key
        assert node.description and len(node.description) > 20, node.key
    assert repo.has_sensor_def("release_partition_sensor")


def test_dagster_definitions_validate_cli() -> None:
    env = {**os.environ, "DEPSIM_CONFIG": str(REPO / "depsim.yaml")}
    out = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", str(REPO / "workspace.yaml")],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=180,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_sensor_adds_newly_declared_releases(instance: dg.DagsterInstance) -> None:
    study = StudyResource(config_path=str(REPO / "studies" / "xstest.yaml"))
    ctx = dg.build_sensor_context(instance=instance, resources={"study": study})
    result = release_partition_sensor(ctx)
    assert isinstance(result, dg.SensorResult)
    (request,) = result.dynamic_partitions_requests
    assert list(request.partition_keys) == ["llama2orig", "llama2new", "mistralguard", "mistralinstruct", "gpt4"]
    instance.add_dynamic_partitions("release", list(request.partition_keys))
    again = release_partition_sensor(dg.build_sensor_context(instance=instance, resources={"study": study}))
    assert not again.dynamic_partitions_requests


def test_releases_sync_cli(dagster_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert depsim_main(["releases", "sync", "--config", str(REPO / "depsim.yaml")]) == 0
    assert "hh-rejected, hh-chosen" in capsys.readouterr().out
    with dg.DagsterInstance.get() as inst:
        assert set(inst.get_dynamic_partitions("release")) == {"hh-rejected", "hh-chosen"}
        # The llm pool gets its own limit at setup (dagster.yaml only holds a default).
        assert inst.event_log_storage.get_concurrency_info("llm").slot_count == 4
    assert depsim_main(["releases", "sync", "--config", str(REPO / "depsim.yaml")]) == 0
    assert "already" in capsys.readouterr().out


def test_run_refuses_undeclared_release_and_incumbent(write_study, dagster_home: Path, capsys) -> None:
    assert depsim_main(["run", "--release", "nope", "--config", str(REPO / "depsim.yaml")]) == 2
    assert "release 'nope' is not declared" in capsys.readouterr().err
    bad = write_study(
        """
        study: s
        sources: [{name: t, paths: [t.jsonl]}]
        releases:
          - {name: v2, backend: openai, model: m, base_url: "http://127.0.0.1:9/v1", incumbent: v1}
        """
    )
    assert depsim_main(["run", "--release", "v2", "--config", str(bad)]) == 2
    assert "releases.v2.incumbent: 'v1' is not a declared release" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dagster_dev_serves_the_asset_graph(dagster_home: Path) -> None:
    port = _free_port()
    env = {**os.environ, "DEPSIM_CONFIG": str(REPO / "depsim.yaml")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagster", "dev", "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        info = None
        while time.time() < deadline and info is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as r:
                    info = json.load(r)
            except OSError:
                time.sleep(1)
        assert info is not None and "dagster_webserver_version" in info, "dagster dev did not come up"
        query = json.dumps({"query": "{ assetNodes { assetKey { path } groupName } }"}).encode()
        nodes = None
        while time.time() < deadline and not nodes:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=query, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                nodes = json.load(r).get("data", {}).get("assetNodes")
            if not nodes:
                time.sleep(1)
        keys = {"/".join(n["assetKey"]["path"]) for n in nodes or []}
        assert {"raw_traffic", "consented_traffic"} <= keys
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
