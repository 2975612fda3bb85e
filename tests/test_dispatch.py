"""regenerated_completions against the fake OpenAI-compatible server, over real loopback HTTP."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from depsim_assets.core.config import load_study
from depsim_assets.definitions import build_resources
from depsim_assets.core.store import _read_journal
from depsim_resources.completion_store import STORE_DIR, Store
from tests.conftest import REPO, lineage, warehouse_sql
from tests.fake_openai import FakeBehaviour, FakeOpenAI, body_key

SECRET = "sk-test-DO-NOT-LEAK-7f3a9c2e1b"
UPSTREAM = ["deidentified_conversations", "privacy_report", "traffic_manifest", "traffic_quarantine", "replay_prefixes"]


@pytest.fixture
def server():
    srv = FakeOpenAI().start()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPSIM_TEST_API_KEY", SECRET)


def _traffic(tmp_path: Path, n: int, name: str) -> Path:
    path = tmp_path / f"{name}.jsonl"
    with open(path, "w") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"c{i}", "consent": "model_improvement", "messages": [
                {"role": "user", "content": f"Question number {i}: how do plants grow?"},
                {"role": "assistant", "content": f"Answer {i}."}]}) + "\n")
    return path


def _study(write_study, tmp_path: Path, server: FakeOpenAI, n: int = 40, dispatch: dict | None = None, release: str = "",
           name: str = "disp") -> Path:
    traffic = _traffic(tmp_path, n, name)
    settings = {"concurrency": 8, "timeout_s": 1.0, "backoff_base_s": 0.02, "backoff_max_s": 0.2, "max_attempts": 3,
                "progress_every_s": 0.5, **(dispatch or {})}
    return write_study(
        f"""
        study: {name}
        warehouse_dir: wh_{name}
        privacy: {{canaries: {{count: 1}}}}
        sources: [{{name: chat, paths: ["{traffic}"]}}]
        dispatch: {json.dumps(settings)}
        releases:
          - {{name: v1, backend: openai, model: fake-model, base_url: "{server.base_url}", api_key_env: DEPSIM_TEST_API_KEY,
              system_prompt: "You are helpful.", sampling: {{temperature: 0.0, max_tokens: 64}}{release}}}
        """,
        name=f"{name}.yaml",
    )


def _run(cfg: Path, instance: dg.DagsterInstance, upstream: bool = True) -> dg.ExecuteInProcessResult:
    resources = build_resources(str(cfg))
    if upstream:
        assert dg.materialize(lineage(cfg), instance=instance, resources=resources, selection=dg.AssetSelection.assets(*UPSTREAM)).success
    return dg.materialize(lineage(cfg), instance=instance, resources=resources, partition_key="v1",
                          selection=dg.AssetSelection.assets("regenerated_completions"))


def _completions(cfg: Path) -> pl.DataFrame:
    with warehouse_sql(cfg) as con:
        return con.sql("select * from regenerated_completions").pl()


def test_completions_cached_and_second_run_sends_nothing(write_study, tmp_path, server, instance) -> None:
    cfg = _study(write_study, tmp_path, server)
    first = _run(cfg, instance)
    frame = _completions(cfg)
    assert frame.height == 40 and frame["status"].to_list() == ["ok"] * 40
    assert frame["response_text"].str.starts_with("Echo ").all()
    assert frame["prompt_tokens"].min() > 0 and frame["latency_ms"].min() > 0
    assert sum(server.requests.values()) == 40
    meta = first.asset_materializations_for_node("regenerated_completions")[0].metadata
    assert meta["calls_sent"].value == 40 and meta["completed"].value == 40
    second = _run(cfg, instance, upstream=False)
    assert sum(server.requests.values()) == 40  # zero new requests
    meta = second.asset_materializations_for_node("regenerated_completions")[0].metadata
    assert meta["calls_sent"].value == 0 and meta["cache_hits"].value == 40
    # Every request carried the system prompt and the sampling params of the release.
    assert server.auth_headers[0] == f"Bearer {SECRET}"


def test_mixed_faults_every_prefix_ok_or_failed_with_reason(write_study, tmp_path, server, instance) -> None:
    server.behaviour = FakeBehaviour(
        fault_rates={"rate_limit": 0.05, "server_error": 0.04, "hang": 0.03, "malformed": 0.04, "truncated": 0.04},
        permanent={"server_error": 0.05}, retry_after=0.05, hang_seconds=3.0,
    )
    cfg = _study(write_study, tmp_path, server, n=120)
    _run(cfg, instance)
    frame = _completions(cfg)
    assert frame.height == 120 and frame["prefix_id"].n_unique() == 120  # no duplicates, none dropped
    assert set(frame["status"]) <= {"ok", "failed"}
    failed = frame.filter(pl.col("status") == "failed")
    assert failed.height > 0 and failed["failure_reason"].is_not_null().all()
    assert set(failed["failure_reason"]) == {"server_error"} and failed["attempts"].to_list() == [3] * failed.height
    ok = frame.filter(pl.col("status") == "ok")
    assert (ok["attempts"] > 1).sum() >= 10  # faulted first attempts were retried and recovered
    assert ok.height + failed.height == 120
    # Nothing was sent more than max_attempts times, and a completed call was never sent again.
    assert max(server.requests.values()) <= 3
    assert all(server.requests[k] == server.ok[k] + (server.requests[k] - 1) for k in server.ok)
    # Resuming retries nothing that failed finally (attempts == max) and re-sends nothing that completed.
    before = sum(server.requests.values())
    _run(cfg, instance, upstream=False)
    assert sum(server.requests.values()) == before


def test_context_length_and_samples(write_study, tmp_path, server, instance) -> None:
    server.behaviour = FakeBehaviour(permanent={"context_length": 0.1})
    cfg = _study(write_study, tmp_path, server, n=30, dispatch={"samples_per_prefix": 2})
    _run(cfg, instance)
    frame = _completions(cfg)
    assert frame.height == 60 and frame["request_key"].n_unique() == 60
    assert frame.group_by("prefix_id").len()["len"].to_list() == [2] * 30
    ctx = frame.filter(pl.col("failure_reason") == "context_length")
    assert ctx.height > 0 and ctx["attempts"].to_list() == [1] * ctx.height  # a 400 is final, not retried
    # A release whose declared context is too small fails locally without sending anything.
    cfg2 = _study(write_study, tmp_path, server, n=5, release=", context_tokens: 10", name="small")
    before = sum(server.requests.values())
    _run(cfg2, instance)
    small = _completions(cfg2)
    assert small["failure_reason"].to_list() == ["context_length"] * 5 and small["attempts"].to_list() == [0] * 5
    assert sum(server.requests.values()) == before


def test_budget_stops_dispatch_cleanly_and_resumes(write_study, tmp_path, server, instance) -> None:
    prices = {"fake-model": {"input_per_mtok": 1_000_000, "output_per_mtok": 0}}  # $1 per prompt token
    cfg = _study(write_study, tmp_path, server, n=20, dispatch={"prices": prices, "concurrency": 1}, release=", budget_usd: 100")
    _run(cfg, instance)
    frame = _completions(cfg)
    stopped = frame.filter(pl.col("failure_reason") == "budget_exhausted")
    assert 0 < stopped.height < 20 and frame.filter(pl.col("status") == "ok").height == 20 - stopped.height
    assert stopped["attempts"].to_list() == [0] * stopped.height
    sent = sum(server.requests.values())
    assert sent == 20 - stopped.height
    raised = cfg.read_text().replace("budget_usd: 100", "budget_usd: 100000")
    cfg.write_text(raised)
    _run(cfg, instance, upstream=False)
    assert _completions(cfg)["status"].to_list() == ["ok"] * 20
    assert sum(server.requests.values()) == 20  # only the stopped calls were sent


def test_each_shard_spends_an_equal_share_of_the_release_budget(write_study, tmp_path, server, instance) -> None:
    # Shards run at the same time: each checking the whole budget against the spend it saw at its start
    # could spend the budget once per shard. Each gets budget / shards against its own prefixes' spend.
    prices = {"fake-model": {"input_per_mtok": 1_000_000, "output_per_mtok": 0}}  # $1 per prompt token
    cfg = _study(write_study, tmp_path, server, n=20, dispatch={"prices": prices, "concurrency": 1, "shards": 2},
                 release=", budget_usd: 100")
    resources = build_resources(str(cfg))
    assert dg.materialize(lineage(cfg), instance=instance, resources=resources, selection=dg.AssetSelection.assets(*UPSTREAM)).success
    for shard in ("0", "1"):
        assert dg.materialize(lineage(cfg), instance=instance, resources=resources, selection=dg.AssetSelection.assets("completion_shards"),
                              partition_key=dg.MultiPartitionKey({"release": "v1", "shard": shard})).success
    with warehouse_sql(cfg) as con:
        frame = con.sql("select shard, status, failure_reason, cost_usd from completion_shards").pl()
    one_call = frame["cost_usd"].max()
    for shard, rows in frame.group_by("shard"):
        assert rows["cost_usd"].fill_null(0).sum() <= 50 + one_call, shard  # its share, overshot by at most the call in flight
        assert (rows["failure_reason"] == "budget_exhausted").any() and (rows["status"] == "ok").any(), shard
    assert frame["cost_usd"].fill_null(0).sum() <= 100 + 2 * one_call


def test_secret_never_logged_stored_or_in_metadata(write_study, tmp_path, server, instance) -> None:
    cfg = _study(write_study, tmp_path, server, n=5)
    result = _run(cfg, instance)
    logs = "\n".join(str(e.user_message) + json.dumps(e.dagster_event.event_specific_data.__dict__ if e.dagster_event and e.dagster_event.event_specific_data else {}, default=str)
                     for e in instance.all_logs(result.run_id))
    assert SECRET not in logs
    wh = load_study(cfg).warehouse_dir
    for f in wh.rglob("*"):
        assert f.is_dir() or SECRET.encode() not in f.read_bytes(), f
    store = Store(wh / STORE_DIR)
    with store:
        requests = store.all()["request"].to_list()
    assert all(SECRET not in r for r in requests) and len(requests) == 5


CRASH_SCRIPT = """
import sys, dagster as dg
from depsim_assets.definitions import build_resources
from tests.conftest import lineage
cfg = sys.argv[1]
with dg.DagsterInstance.get() as instance:
    dg.materialize(lineage(cfg), instance=instance, resources=build_resources(cfg), partition_key="v1",
                   selection=dg.AssetSelection.assets("regenerated_completions"))
"""


def test_sigkill_mid_run_then_resume_sends_no_completed_call_again(write_study, tmp_path, server, instance, dagster_home) -> None:
    cfg = _study(write_study, tmp_path, server, n=60, dispatch={"concurrency": 2})
    resources = build_resources(str(cfg))
    assert dg.materialize(lineage(cfg), instance=instance, resources=resources, selection=dg.AssetSelection.assets(*UPSTREAM)).success
    server.behaviour = FakeBehaviour(latency=0.1)
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT, str(cfg)], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and sum(server.ok.values()) < 15:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    completed_before = sum(server.ok.values())
    assert 15 <= completed_before < 60, "the run must be killed mid-way"
    journals = (load_study(cfg).warehouse_dir / STORE_DIR / "journals").glob("*.jsonl")  # the killed writer's, never merged
    recorded = {row["request_key"] for j in journals for row in _read_journal(j)}
    server.behaviour = FakeBehaviour()
    _run(cfg, instance, upstream=False)
    frame = _completions(cfg)
    assert frame["status"].to_list() == ["ok"] * 60
    # Calls recorded before the kill were not sent again; at most the calls in flight (2) were repeated.
    sent_twice = [k for k, n in server.requests.items() if n > 1]
    assert len(sent_twice) <= 2
    # Map the store's request keys (body + sample index) to the server's keys (body only).
    with Store(load_study(cfg).warehouse_dir / STORE_DIR) as store:
        bodies = dict(store.all().select("request_key", "request").iter_rows())
    assert len(recorded) >= completed_before - 2
    assert all(server.requests[body_key(json.loads(bodies[k]))] == 1 for k in recorded)


def test_dry_run_and_batch_route_send_nothing(write_study, tmp_path, server, instance, dagster_home, capsys) -> None:
    from depsim.cli import main as depsim_main

    prices = {"fake-model": {"input_per_mtok": 2.0, "output_per_mtok": 8.0}}
    cfg = _study(write_study, tmp_path, server, n=10, dispatch={"prices": prices})
    assert depsim_main(["estimate", "--release", "v1", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "missing_calls=10" in out and "est_cost_usd_max=" in out and "est_prompt_tokens=" in out
    assert sum(server.requests.values()) == 0
    batch_in = tmp_path / "batch_in.jsonl"
    assert depsim_main(["batch", "export", "--release", "v1", "--config", str(cfg), "--out", str(batch_in)]) == 0
    lines = [json.loads(x) for x in batch_in.read_text().splitlines()]
    assert len(lines) == 10 and {x["url"] for x in lines} == {"/v1/chat/completions"}
    # What the Batch API would return: one output line per request, one of them an error.
    batch_out = tmp_path / "batch_out.jsonl"
    with open(batch_out, "w") as fh:
        for i, line in enumerate(lines):
            if i == 0:
                fh.write(json.dumps({"custom_id": line["custom_id"], "response": {"status_code": 500, "body": {}}, "error": {"code": "server_error"}}) + "\n")
                continue
            body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": f"batched {i}"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 11, "completion_tokens": 3}}
            fh.write(json.dumps({"custom_id": line["custom_id"], "response": {"status_code": 200, "body": body}, "error": None}) + "\n")
        fh.write(json.dumps({"custom_id": "not-ours", "response": {"status_code": 200, "body": {}}}) + "\n")
    assert depsim_main(["batch", "import", "--release", "v1", "--config", str(cfg), "--file", str(batch_out)]) == 0
    assert "imported_ok=9, imported_failed=1, unknown_custom_id=1" in capsys.readouterr().out
    _run(cfg, instance, upstream=False)
    frame = _completions(cfg)
    assert frame["status"].to_list() == ["ok"] * 10
    assert frame["response_text"].str.starts_with("batched").sum() == 9
    assert sum(server.requests.values()) == 1  # only the call whose batch line failed went to the endpoint


def test_lean_transport_parses_into_the_sdk_type_like_the_sdk(server) -> None:
    """The lean path and the SDK path return equal `ChatCompletion`s for the same request, and the
    lean path classifies faults the same way the SDK path does."""
    import asyncio

    from openai.types.chat import ChatCompletion

    from depsim_assets.core.config import ReleaseConfig
    from depsim_assets.core.dispatch import Final, Retry, classify
    from depsim_assets.core.requests import chat_body
    from depsim_resources.model_endpoint import ModelEndpointResource

    server.behaviour = FakeBehaviour(reasoning=True)
    release = ReleaseConfig(name="v", backend="openai", model="fake-model", base_url=server.base_url, api_key_env="DEPSIM_TEST_API_KEY")
    body = chat_body([{"role": "user", "content": "compare the parsers"}], release)

    async def both(transport: str, b: dict) -> object:
        endpoint = ModelEndpointResource(transport=transport)
        async with endpoint.client(release) as client:
            try:
                return await endpoint.sender()(client, b, 2.0)
            except Exception as exc:  # noqa: BLE001
                return classify(exc)

    sdk, lean = asyncio.run(both("aiohttp", body)), asyncio.run(both("lean", body))
    assert isinstance(sdk, ChatCompletion) and isinstance(lean, ChatCompletion)
    assert lean.model_dump(exclude={"created"}) == sdk.model_dump(exclude={"created"})
    assert lean.choices[0].message.model_extra["reasoning_content"].startswith("thinking about")
    for fault, expected in [("rate_limit", "rate_limited"), ("server_error", "server_error"), ("malformed", "malformed_response"),
                            ("truncated", None), ("context_length", "context_length")]:
        server.behaviour = FakeBehaviour(permanent={fault: 1.0}, retry_after=0.25)
        sdk_v, lean_v = asyncio.run(both("aiohttp", body)), asyncio.run(both("lean", body))
        assert isinstance(sdk_v, Retry | Final) and isinstance(lean_v, Retry | Final), fault
        assert type(sdk_v) is type(lean_v), fault
        if expected:
            assert sdk_v.reason == lean_v.reason == expected, (fault, sdk_v.reason, lean_v.reason)
        if fault == "rate_limit":
            assert sdk_v.wait == lean_v.wait == 0.25  # Retry-After honoured on both paths


def test_mixed_faults_on_the_lean_transport(write_study, tmp_path, server, instance, monkeypatch) -> None:
    from depsim_resources.model_endpoint import ModelEndpointResource

    server.behaviour = FakeBehaviour(fault_rates={"rate_limit": 0.05, "server_error": 0.05, "hang": 0.05, "malformed": 0.05},
                                     retry_after=0.05, hang_seconds=3.0)
    cfg = _study(write_study, tmp_path, server, n=60)
    resources = {**build_resources(str(cfg)), "model_endpoint": ModelEndpointResource(transport="lean")}
    assert dg.materialize(lineage(cfg), instance=instance, resources=resources, selection=dg.AssetSelection.assets(*UPSTREAM)).success
    dg.materialize(lineage(cfg), instance=instance, resources=resources, partition_key="v1", selection=dg.AssetSelection.assets("regenerated_completions"))
    frame = _completions(cfg)
    assert frame["status"].to_list() == ["ok"] * 60
    assert (frame["attempts"] > 1).sum() >= 6 and max(server.requests.values()) <= 3
