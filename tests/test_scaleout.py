"""The scale-out profile for real: PostgreSQL instance, Celery executor on a Redis broker, two workers,
brought up by scripts/scaleout.sh. The UI's backfill over every asset and every (release, shard)
partition of a 4-shard study must give the same tables as the in-process run of the unsharded study,
and never send a request twice (the completion store shared by the workers)."""

import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal

from depsim.runner import UPSTREAM, run_study
from depsim_assets.core.config import load_study
from tests.conftest import REPO, copy_study
from tests.dagster_dev import DagsterDev
from tests.fake_openai import FakeOpenAI
from tests.test_ui_backfill import LAUNCH, STATUS

SCRIPT = REPO / "scripts" / "scaleout.sh"
DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
# Differ between any two runs: when and how fast a call was answered.
VOLATILE = {"latency_ms", "created_at", "updated_at"}
SHARD_TABLES = {"completion_shards", "label_shards"}
RELEASES = ["llama2new", "candidate"]


def _missing() -> list[str]:
    initdb = shutil.which("initdb") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))), None)
    return [name for name, found in (("redis-server", shutil.which("redis-server")), ("postgresql", initdb)) if not found]


pytestmark = pytest.mark.skipif(bool(_missing()), reason=f"the scale-out profile needs Debian's {' and '.join(_missing())}: "
                                "apt-get install postgresql redis-server (.ci/run does)")


def _study(tmp_path: Path, server: FakeOpenAI, name: str, shards: int) -> Path:
    """XSTest's llama2new (recorded), a candidate answered by the fake server, and an LLM judge on both."""
    config = copy_study("studies/xstest.yaml", tmp_path, releases=["llama2new"], name=name, shards=shards)
    raw = yaml.safe_load(config.read_text())
    raw.pop("awareness", None)
    raw["releases"][0].pop("incumbent")
    raw["releases"].append({"name": "candidate", "backend": "openai", "model": "fake-candidate", "base_url": server.base_url,
                            "incumbent": "llama2new"})
    raw["graders"].append({"id": "judge", "kind": "llm_judge", "model": "fake-judge", "base_url": server.base_url,
                           "categories": ["over_refusal", "unsafe_compliance"]})
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    return config


@contextlib.contextmanager
def _profile(where: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The profile up (its workers inherit this process's environment), its variables set here too."""
    up = subprocess.run([str(SCRIPT), "start", str(where), "2"], cwd=REPO, capture_output=True, text=True, timeout=120)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        for line in (where / "env.sh").read_text().splitlines():
            monkeypatch.setenv(*line.removeprefix("export ").split("=", 1))
        yield
    finally:
        subprocess.run([str(SCRIPT), "stop", str(where)], cwd=REPO, timeout=120)


def _backfill(config: Path, log: Path, selection: list[str]) -> str:
    """A backfill of these assets over all their partitions, launched as the UI does; waits until done."""
    with DagsterDev(config, log) as ui:
        keys = [{"path": ["xstest", name]} for name in selection]
        launched = ui.graphql(LAUNCH, {"params": {"assetSelection": keys, "allPartitions": True}})["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        deadline, status = time.time() + 240, None
        while time.time() < deadline and status not in DONE:
            time.sleep(2)
            status = ui.graphql(STATUS, {"id": launched["backfillId"]})["partitionBackfillOrError"].get("status")
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), (status, log.read_text()[-4000:])
    return launched["backfillId"]


def _materialize(selection: list[str], partition: str | None = None) -> None:
    """One run through the instance, as `dagster asset materialize` starts it: its steps go to the workers."""
    args = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "depsim_assets.definitions",
            "--select", ",".join(f"xstest/{name}" for name in selection)] + (["--partition", partition] if partition else [])
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]


def _workers(instance: dg.DagsterInstance, runs: list[dg.RunRecord]) -> set[str]:
    """The Celery workers that executed steps of these runs (dagster-celery's engine events name them)."""
    names = set()
    for r in runs:
        for entry in instance.all_logs(r.dagster_run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            meta = entry.dagster_event.engine_event_data.metadata if entry.dagster_event else {}
            if "Celery worker" in meta:
                names.add(str(meta["Celery worker"].value))
    return names


def _tables(config: Path) -> dict[str, pl.DataFrame]:
    wh = load_study(config).warehouse
    out = {}
    for table in set(wh.tables()) - SHARD_TABLES:
        frame = wh.read(table, all_partitions=True) if wh.partitions(table) else wh.read(table)
        frame = frame.select(sorted(set(frame.columns) - VOLATILE))
        out[table] = frame.sort(frame.columns, nulls_last=True)
    return out


@pytest.mark.timeout(600)
def test_celery_backfill_over_release_shards_matches_the_in_process_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeOpenAI().start()
    try:
        sharded = _study(tmp_path, server, "sharded", shards=4)
        monkeypatch.setenv("DEPSIM_CONFIG", str(sharded))  # before the workers start: they serve this study
        with _profile(tmp_path / "scaleout", monkeypatch):
            _materialize(UPSTREAM)
            # The shards as the UI backfills them: 2 releases x 4 shards, separate runs, up to 4 at once.
            backfill = _backfill(sharded, tmp_path / "dagster_dev.log", ["completion_shards", "label_shards"])
            # The rest in the runner's order (a whole-graph backfill waits 30 s per wave in the daemon).
            for release in RELEASES:
                _materialize(["regenerated_completions", "graded_labels", "review_queue"], release)
            _materialize(["grader_calibration"])
            for release in RELEASES:  # in chain order: the candidate's comparison reads its incumbent's forecasts
                _materialize(["rate_forecasts", "observed_production_rates", "release_comparison"], release)
            for release in RELEASES:  # discovery on gathered shards must cluster as on the unsharded tables
                _materialize(["behaviour_discovery"], release)
            _materialize(["forecast_scorecard"])
            with dg.DagsterInstance.get() as instance:
                shard_runs = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill}))
                workers = _workers(instance, instance.get_run_records())
        failed = [r.dagster_run.run_id for r in shard_runs if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS]
        assert not failed, failed
        assert len(shard_runs) == 2 * 4, sorted(r.dagster_run.tags.get("dagster/partition") for r in shard_runs)
        assert len(workers) == 2, f"steps ran on {workers}, not on both workers"
        spans = sorted((r.start_time, r.end_time) for r in shard_runs)
        assert any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False)), "no two shard runs overlapped"
        # The candidate's completions and the judge's labels: every request sent exactly once.
        sent = dict(server.requests)
        assert sent and max(sent.values()) == 1, max(sent.values())

        server.requests.clear()
        in_process = _study(tmp_path, server, "in_process", shards=1)
        home = tmp_path / "in_process_home"
        home.mkdir()
        shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        monkeypatch.delenv("DEPSIM_EXECUTOR")
        run_study(in_process, releases=RELEASES, progress=lambda _: None)
        assert dict(server.requests) == sent  # the same requests as the sharded run, once each
    finally:
        server.stop()
    ours, theirs = _tables(sharded), _tables(in_process)
    assert set(ours) == set(theirs)
    for table in sorted(ours):
        try:
            assert_frame_equal(ours[table], theirs[table], check_exact=False, rtol=1e-9)
        except AssertionError as differs:
            raise AssertionError(f"{table}: {differs}") from None
