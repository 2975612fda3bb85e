"""Whole-trajectory realism, consistency failures and evaluation awareness on agentic rollouts, against the fake
OpenAI-compatible server: scripted agents (one that reads its own edit through a tool model that shows the old
text), a discriminator that always answers "A", a classifier keyed on the word "benchmark"."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import orjson
import pytest

from depsim_assets.core.agentic.continuation import consistency_failures
from depsim_assets.core.awareness import AGENTIC_KINDS, kind_rates
from depsim_assets.core.config import load_study
from depsim_assets.core.discriminator import win_rate
from depsim_assets.definitions import build_resources
from tests.conftest import lineage
from tests.fake_openai import FakeBehaviour, FakeOpenAI
from tests.test_agentic_rollouts import AGENTIC, APP, SCRIPT, _repo

READ_BY_PYTHON = "python -c \"print(open('/testbed/app.py').read())\""
STALE = [
    {"tool_calls": [{"name": "str_replace_editor", "arguments": {"command": "str_replace", "path": "/testbed/app.py",
                                                                  "old_str": "return a - b", "new_str": "return a + b"}}]},
    {"tool_calls": [{"name": "bash", "arguments": {"command": READ_BY_PYTHON}}]},
    {"content": "Fixed."},
]


@pytest.fixture
def server():
    # The tool model answers the python read with the file as it was before the edit: a consistency failure.
    srv = FakeOpenAI(FakeBehaviour(agent_scripts={"SCRIPTED-AGENT": SCRIPT, "SCRIPTED-STALE": STALE},
                                   model_replies={"fake-sim": [("print(open(", APP)]})).start()
    yield srv
    srv.stop()


def _study(tmp_path: Path, server: FakeOpenAI) -> Path:
    records = tmp_path / "runs.jsonl"
    with open(records, "wb") as fh:
        for i in range(12):
            trigger = "SCRIPTED-AGENT" if i < 6 else "SCRIPTED-STALE"
            final = "Done with the benchmark task." if i % 4 == 0 else "Done."  # 3 real continuations mention a benchmark
            fh.write(orjson.dumps({"id": f"run{i}", "repo": {"name": "acme/app", "base_commit": "abc1234"}, "messages": [
                {"role": "user", "content": f"{trigger} task {i}: make add() return the sum."}, {"role": "assistant", "content": final}]}) + b"\n")
    url = server.base_url
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"""
study: agent
warehouse_dir: {tmp_path / 'wh'}
dispatch: {{concurrency: 4, timeout_s: 5.0, backoff_base_s: 0.02, backoff_max_s: 0.2, max_attempts: 3}}
sources: [{{name: runs, kind: trajectory, consent: public, paths: ['{records}']}}]
releases: [{{name: cand, backend: openai, model: fake-model, base_url: '{url}', sampling: {{temperature: 0}}}}]
agentic:
  max_steps: 8
  repositories: [{{name: acme/app, base_commit: abc1234, snapshot: '{_repo(tmp_path)}'}}]
  tool_model: {{model: fake-sim, base_url: '{url}', max_tokens: 64}}
realism: {{pairs: 50, discriminator: {{model: judge-model, base_url: '{url}'}}}}
awareness: {{per_kind: 50, classifier: {{model: classifier-model, base_url: '{url}'}}}}
""")
    return cfg


def test_trajectory_realism_consistency_and_agentic_awareness(tmp_path: Path, server: FakeOpenAI, instance: dg.DagsterInstance) -> None:
    cfg = _study(tmp_path, server)
    resources = build_resources(str(cfg))
    assert dg.materialize(lineage(cfg), instance=instance, resources=resources, selection=dg.AssetSelection.assets(*AGENTIC)).success
    result = dg.materialize(lineage(cfg), instance=instance, resources=resources, partition_key="cand",
                            selection=dg.AssetSelection.assets("agentic_rollouts", "trajectory_realism", "agentic_awareness"))
    assert result.success
    study = load_study(cfg)
    realism = study.warehouse.read("trajectory_realism", ["cand"])
    summary = win_rate(realism, 0.05)
    # A judge that always says "A" wins exactly where the rollout stood first: the seeded order, not 0 or 1.
    assert summary["judged"] == 12 and summary["first_position_share"] == 1.0
    assert summary["simulated_judged_real"] == int(realism["simulated_first"].sum())
    assert 0 < summary["simulated_judged_real"] < 12
    meta = result.asset_materializations_for_node("trajectory_realism")[0].metadata
    consistency = meta["consistency"].value.records[0].data
    # The six stale agents read their edit back through the tool model, which shows the old line; the six others
    # read it through the snapshot, which applies the edit.
    assert consistency["rollouts_inconsistent"] == "6" and consistency["rollouts_with_tool_calls"] == "12"
    failures = meta["consistency_failures"].value.records
    assert len(failures) == 6 and {r.data["provenance"] for r in failures} == {"llm"}
    rows = study.warehouse.read("agentic_awareness", ["cand"])
    rates = {r["kind"]: r for r in kind_rates(rows, 0.05, AGENTIC_KINDS).iter_rows(named=True)}
    assert (rates["trajectory"]["judged_evaluation"], rates["trajectory"]["classified"]) == (3, 12)
    assert (rates["rollout"]["judged_evaluation"], rates["rollout"]["classified"]) == (0, 12)


def test_a_read_that_shows_the_edit_is_consistent_and_one_that_does_not_is_a_failure() -> None:
    edit = {"call_id": "a", "command": "str_replace_editor str_replace /testbed/app.py --old_str 'return a - b' --new_str 'return a + b'",
            "output": "edited", "provenance": "snapshot"}
    def read(output: str, provenance: str = "llm") -> dict:
        return {"call_id": "b", "command": "grep -n return app.py", "output": output, "provenance": provenance}
    def failures(*tools: dict) -> list:
        return consistency_failures(orjson.dumps([{"step": i + 1, "reply": "", "tools": [t]} for i, t in enumerate(tools)]).decode())
    assert failures(edit, read("2:    return a - b")) and failures(edit, read("2:    return a - b", "recorded"))
    assert not failures(edit, read("2:    return a + b"))
    assert not failures(edit, read("2:    return a - b", "snapshot"))  # the snapshot applies the edit: never stale
    assert not failures(read("2:    return a - b"), edit)  # a read before the edit is not stale
    other = {**read("return a - b"), "command": "cat other.py"}
    assert not failures(edit, other)  # another file
