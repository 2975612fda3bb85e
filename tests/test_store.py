"""The completion store shared by several processes: live journals seen by every reader, merges that take
only closed journals, and a SIGKILL that loses at most the killed process's calls in flight."""

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from depsim_assets.core.store import Outcome, Store
from depsim_assets.definitions import build_resources
from depsim_resources.completion_store import STORE_DIR
from tests.conftest import REPO, lineage
from tests.fake_openai import FakeBehaviour, FakeOpenAI, body_key

UPSTREAM = ["deidentified_conversations", "privacy_report", "traffic_manifest", "traffic_quarantine", "replay_prefixes"]


def _outcome(key: str, status: str = "ok") -> Outcome:
    return Outcome(key, 0, "p", None, "v1", "m", "{}", status, response_text=f"text {key}")


def _hold_open(path: str, n: int, ready: "mp.synchronize.Event") -> None:
    with Store(Path(path)) as store:
        for i in range(n):
            store.record(_outcome(f"live-{i}"))
        ready.set()
        time.sleep(600)  # killed by the test while the store is open


def test_live_journal_is_seen_and_merged_after_its_writer_dies(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    writer = ctx.Process(target=_hold_open, args=(str(tmp_path / "s"), 10, ready))
    writer.start()
    assert ready.wait(60)
    with Store(tmp_path / "s") as store:
        # Another process's unmerged outcomes are found: they would never be sent again.
        assert store.lookup([f"live-{i}" for i in range(12)]).height == 10
        assert store.merge() == 0  # the live journal is locked by its writer: not merged
    os.kill(writer.pid, signal.SIGKILL)
    writer.join()
    with Store(tmp_path / "s") as store:  # opening merges closed journals, the dead writer's included
        assert store.all().height == 10
    assert list((tmp_path / "s" / "journals").glob("*.jsonl")) == []


def test_latest_outcome_wins_and_many_segments_compact(tmp_path: Path) -> None:
    for i in range(12):
        with Store(tmp_path / "s") as store:
            store.record(_outcome("k", "failed" if i < 11 else "ok"))
            store.record(_outcome(f"k{i}"))
    with Store(tmp_path / "s") as store:
        assert store.lookup(["k"])["status"].to_list() == ["ok"]
        assert store.all().height == 13
    assert len(list((tmp_path / "s" / "segments").glob("*.parquet"))) <= 9


STUDY = """
study: many
warehouse_dir: wh
privacy: {{canaries: {{count: 1}}}}
sources: [{{name: chat, paths: ["{traffic}"]}}]
dispatch: {{concurrency: 4, timeout_s: 5.0, backoff_base_s: 0.02, max_attempts: 3, progress_every_s: 0.5}}
releases:
{releases}
graders:
  - {{id: judge, kind: llm_judge, model: judge-model, base_url: "{url}", categories: [unsafe_compliance]}}
"""
WORKER = """
import sys, dagster as dg
from depsim_assets.definitions import build_resources
from tests.conftest import lineage
cfg, release, asset = sys.argv[1:4]
with dg.DagsterInstance.get() as instance:
    ok = dg.materialize(lineage(cfg), instance=instance, resources=build_resources(cfg), partition_key=release,
                        selection=dg.AssetSelection.assets(asset), raise_on_error=False).success
sys.exit(0 if ok else 1)
"""


def _worker(cfg: Path, release: str, asset: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", WORKER, str(cfg), release, asset], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


@pytest.mark.timeout(600)
def test_four_releases_and_a_judge_in_one_store_with_a_kill(write_study, tmp_path: Path, instance, dagster_home: Path) -> None:
    server = FakeOpenAI(FakeBehaviour(latency=0.05)).start()
    try:
        traffic = tmp_path / "t.jsonl"
        traffic.write_text("".join(json.dumps({"id": f"c{i}", "consent": "model_improvement", "messages": [
            {"role": "user", "content": f"Question {i}: how do tides work?"}, {"role": "assistant", "content": f"Answer {i}."}]}) + "\n"
            for i in range(80)))
        releases = "\n".join(f'  - {{name: v{i}, backend: openai, model: m, base_url: "{server.base_url}", system_prompt: "Persona {i}."}}'
                             for i in range(1, 5))
        cfg = write_study(STUDY.format(traffic=traffic, url=server.base_url, releases=releases))
        resources = build_resources(str(cfg))
        assert dg.materialize(lineage(cfg), instance=instance, resources=resources, selection=dg.AssetSelection.assets(*UPSTREAM)).success
        assert dg.materialize(lineage(cfg), instance=instance, resources=resources, partition_key="v1",
                              selection=dg.AssetSelection.assets("regenerated_completions")).success
        before = Counter(server.requests)  # v1's 80 calls, stored before any worker starts
        assert sum(before.values()) == 80

        env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "PYTHONPATH": str(REPO)}
        workers = {
            "v1-again": _worker(cfg, "v1", "regenerated_completions", env),  # everything stored: must send nothing
            "v2": _worker(cfg, "v2", "regenerated_completions", env),
            "v3": _worker(cfg, "v3", "regenerated_completions", env),  # killed mid-run
            "v4": _worker(cfg, "v4", "regenerated_completions", env),
            "judge-v1": _worker(cfg, "v1", "graded_labels", env),
        }
        journals = cfg.parent / "wh" / STORE_DIR / "journals"
        deadline, done_v3 = time.time() + 300, 0
        while time.time() < deadline and done_v3 < 20:
            time.sleep(0.05)
            done_v3 = sum(j.read_bytes().count(b'"release":"v3"') for j in journals.glob("*.jsonl"))
        assert 20 <= done_v3 < 80, "v3 must be killed mid-run"
        os.killpg(workers["v3"].pid, signal.SIGKILL)
        workers["v3"].wait()
        for name, proc in workers.items():
            if name != "v3":
                assert proc.wait(timeout=300) == 0, name
        # Resume the killed release in process.
        assert dg.materialize(lineage(cfg), instance=instance, resources=resources, partition_key="v3",
                              selection=dg.AssetSelection.assets("regenerated_completions")).success
    finally:
        server.stop()

    with Store(cfg.parent / "wh" / STORE_DIR) as store:
        stored = store.all()
        bodies = {k: body_key(json.loads(r)) for k, r in stored.select("request_key", "request").iter_rows()}
    assert stored.filter(stored["status"] == "ok").height == 4 * 80 + 80  # four releases + one judge verdict per v1 completion
    # Calls stored before the workers started were never sent again (v1 re-run and the judge's reads).
    assert all(server.requests[k] == before[k] for k in before)
    repeated = {k: n for k, n in server.requests.items() if n > 1}
    release_of = dict(stored.select(stored["request_key"].replace(bodies), "release").iter_rows())
    # Only the killed process's in-flight calls were sent twice, at most its concurrency (4).
    assert {release_of[k] for k in repeated} <= {"v3"}
    assert len(repeated) <= 4 and all(n == 2 for n in repeated.values())
