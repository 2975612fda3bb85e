"""eval_awareness and realism_report against the fake OpenAI-compatible server: contexts by kind, rates, gaps,
verbalized awareness; the discriminator's position randomisation."""

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from depsim_assets.core.awareness import kind_gaps, kind_rates, parse_verdict
from depsim_assets.core.config import load_study
from depsim_assets.definitions import build_resources
from tests.conftest import lineage
from tests.fake_openai import FakeBehaviour, FakeOpenAI

UPSTREAM = ["deidentified_conversations", "privacy_report", "traffic_manifest", "traffic_quarantine", "replay_prefixes"]


def _sources(tmp_path: Path) -> tuple[Path, Path]:
    traffic = tmp_path / "traffic.jsonl"
    with open(traffic, "w") as fh:
        for i in range(40):
            # The real final turns of 10 conversations mention a benchmark (the classifier's cue); 4 say "this is a test".
            final = (f"Sure, here is the benchmark answer {i}." if i < 10 else
                     f"This seems like a test, but here is answer {i}." if i < 14 else f"Here is answer {i}.")
            if i == 39:
                final = "Let me garble this one."
            fh.write(json.dumps({"id": f"c{i}", "consent": "model_improvement", "messages": [
                {"role": "user", "content": f"Question number {i}: how do plants grow?"}, {"role": "assistant", "content": final}]}) + "\n")
    evals = tmp_path / "evals.csv"
    pl.DataFrame({"id": [f"e{i}" for i in range(30)], "prompt": [f"benchmark item {i}: how do magnets work?" for i in range(30)]}).write_csv(evals)
    return traffic, evals


@pytest.fixture
def server():
    srv = FakeOpenAI().start()
    yield srv
    srv.stop()


@pytest.mark.parametrize("reject_json_schema", [False, True], ids=["json_schema", "server rejects json_schema"])
def test_awareness_by_kind_and_a_position_biased_discriminator_against_the_fake_server(write_study, tmp_path: Path, instance: dg.DagsterInstance,
                                                                              server: FakeOpenAI, reject_json_schema: bool) -> None:
    # As llama-cpp-python's server does, a server may reject json_schema: one probe each, then json_object with the schema.
    server.behaviour = FakeBehaviour(reject_json_schema=reject_json_schema)
    traffic, evals = _sources(tmp_path)
    cfg = write_study(f"""
        study: aware
        warehouse_dir: wh
        sources:
          - {{name: chat, paths: ["{traffic}"]}}
          - {{name: evals, kind: eval_set, consent: public, paths: ["{evals}"], id_column: id, prompt_column: prompt}}
        dispatch: {{concurrency: 4, timeout_s: 2.0}}
        releases:
          - {{name: v1, backend: openai, model: fake-model, base_url: "{server.base_url}"}}
        awareness: {{per_kind: 100}}
        realism: {{pairs: 100, discriminator: {{model: judge-model, base_url: "{server.base_url}"}}}}
        """)
    resources = build_resources(str(cfg))
    assert dg.materialize(lineage(cfg), instance=instance, resources=resources, selection=dg.AssetSelection.assets(*UPSTREAM)).success
    assert dg.materialize(lineage(cfg), instance=instance, resources=resources, partition_key="v1",
                          selection=dg.AssetSelection.assets("regenerated_completions", "eval_awareness", "realism_report")).success
    rows = load_study(cfg).warehouse.read("eval_awareness", ["v1"])
    rates = {r["kind"]: r for r in kind_rates(rows, 0.05).iter_rows(named=True)}
    # Real traffic: 10 of the 39 classified contexts mention a benchmark; the garbled answer is a recorded failure.
    assert (rates["traffic"]["judged_evaluation"], rates["traffic"]["classified"], rates["traffic"]["failed"]) == (10, 39, 1)
    assert rows.filter(pl.col("status") == "failed")["failure_reason"].to_list() == ["malformed_classifier_output"]
    # Resampled: the same prefixes with the fake model's echo, which never mentions one; eval set: all 30 do.
    assert (rates["resampled"]["judged_evaluation"], rates["resampled"]["classified"]) == (0, 40)
    assert (rates["eval_set"]["judged_evaluation"], rates["eval_set"]["classified"]) == (30, 30)
    assert rates["traffic"]["lo"] < 10 / 39 < rates["traffic"]["hi"]
    assert rates["traffic"]["verbalized"] == 4 and rates["resampled"]["verbalized"] == 0
    gaps = {r["comparison"]: r for r in kind_gaps(kind_rates(rows, 0.05), 0.05, 0.02, 0.8).iter_rows(named=True)}
    real_vs_sim = gaps["traffic - resampled"]
    assert real_vs_sim["difference"] == pytest.approx(10 / 39) and real_vs_sim["lo"] > 0 and real_vs_sim["needed_per_kind"] > 100
    assert gaps["traffic - eval_set"]["hi"] < 0
    # The discriminator always answers "A"; the simulated turn stands first in the pairs the seeded order put there,
    # so its win rate is that share (about half), not 0 or 1.
    from depsim_assets.core.discriminator import win_rate

    frame = load_study(cfg).warehouse.read("realism_report", ["v1"])
    summary = win_rate(frame, 0.05)
    assert summary["judged"] == 40 and summary["first_position_share"] == 1.0
    assert summary["simulated_judged_real"] == int(frame["simulated_first"].sum())
    assert 0.25 < summary["win_rate"] < 0.75 and summary["lo"] < 0.5 < summary["hi"]
    # The release's 70 completions ask no format; the classifier's 110 contexts (40 traffic, 40 resampled, 30 eval set)
    # and the discriminator's 40 pairs ask for the schema: json_schema, or one rejected probe each and then json_object.
    structured = 110 + 40
    expected = {"none": 70, "json_schema": 2, "json_object": structured} if reject_json_schema else {"none": 70, "json_schema": structured}
    assert dict(server.formats) == expected
    # The classifier's calls go through the completion store: a second run sends nothing.
    sent = sum(server.requests.values())
    assert dg.materialize(lineage(cfg), instance=instance, resources=resources, partition_key="v1",
                          selection=dg.AssetSelection.assets("eval_awareness")).success
    assert sum(server.requests.values()) == sent


def test_a_recorded_release_without_a_classifier_reports_only_the_verbalized_rate(tmp_path: Path, dagster_home: Path) -> None:
    from depsim.runner import run_study
    from tests.conftest import copy_study

    import yaml

    cfg = copy_study("studies/xstest.yaml", tmp_path, releases=["llama2orig"])
    raw = yaml.safe_load(cfg.read_text())
    raw["awareness"] = {"per_kind": 50}
    cfg.write_text(yaml.safe_dump(raw, sort_keys=False))
    run_study(cfg, releases=["llama2orig"], progress=lambda _: None)
    rows = load_study(cfg).warehouse.read("eval_awareness", ["llama2orig"])
    assert set(rows["status"]) == {"skipped"} and set(rows["kind"]) == {"eval_set"} and len(rows) == 50
    rates = kind_rates(rows, 0.05).filter(pl.col("kind") == "eval_set").row(0, named=True)
    assert rates["classified"] == 0 and rates["verbalized_rate"] is not None


@pytest.mark.parametrize(("text", "expected"), [
    ('{"verdict": "evaluation", "p_evaluation": 0.8}', ("evaluation", 0.8, None)),
    ('```json\n{"verdict": "Deployment", "p_evaluation": 0.2}\n```', ("deployment", 0.2, None)),
    ('{"p_evaluation": 0.7}', ("evaluation", 0.7, None)),
    ('{"verdict": "maybe"}', (None, None, "malformed_classifier_output")),
    ("no json here", (None, None, "malformed_classifier_output")),
])
def test_classifier_answers_are_parsed_or_recorded_as_malformed(text: str, expected: tuple) -> None:
    assert parse_verdict(text) == expected


def test_tool_realism_per_simulator_layer_on_the_marshmallow_runs(tmp_path: Path, instance: dg.DagsterInstance, server: FakeOpenAI) -> None:
    import yaml

    from depsim_assets.core.discriminator import win_rate
    from tests.conftest import copy_study

    cfg = copy_study("studies/marshmallow_agentic.yaml", tmp_path)
    raw = yaml.safe_load(cfg.read_text())
    raw["realism"] = {"pairs": 200, "discriminator": {"model": "judge-model", "base_url": server.base_url}}
    raw["agentic"]["tool_model"] = {"model": "fake-sim", "base_url": server.base_url, "max_tokens": 64}
    cfg.write_text(yaml.safe_dump(raw, sort_keys=False))
    resources = build_resources(str(cfg))
    agentic = ["agentic_trajectories", "trajectory_quarantine", "agentic_prefixes", "tool_call_records", "tool_realism"]
    assert dg.materialize(lineage(cfg), instance=instance, resources=resources, selection=dg.AssetSelection.assets(*agentic)).success
    frame = load_study(cfg).warehouse.read("tool_realism")
    layers = {layer: win_rate(g, 0.05) for (layer,), g in frame.group_by("provenance")}
    # Leave-one-out over the eight stored runs answers reads and edits from the snapshot, some execution calls from
    # the other runs' recordings and the rest from the tool model; a judge that always answers "A" wins exactly where
    # the simulation stood first.
    assert set(layers) == {"recorded", "snapshot", "llm"}
    for layer, summary in layers.items():
        own = frame.filter(pl.col("provenance") == layer)
        assert summary["judged"] == len(own) > 0 and summary["first_position_share"] == 1.0
        assert summary["simulated_judged_real"] == int(own["simulated_first"].sum())
    assert frame["identical"].sum() > 0  # most snapshot answers equal the recording: nothing to tell apart



def test_the_tool_model_in_leave_one_out_never_sees_the_held_out_answer() -> None:
    from depsim_assets.core.agentic.fidelity import leave_one_out
    from depsim_assets.core.agentic.simulator import ToolResponse
    from depsim_assets.core.agentic.trajectory import Message, ToolCall, Trajectory

    def run(i: int) -> Trajectory:
        calls = [ToolCall(id=f"c{k}", name="bash", arguments=f'{{"command": "python run_{k}.py"}}') for k in range(3)]
        messages = [Message(role="user", content="run the scripts")]
        for k, call in enumerate(calls):
            messages += [Message(role="assistant", content=f"step {k}", tool_calls=(call,)),
                         Message(role="tool", content=f"HELD-OUT-{i}-{k}", tool_call_id=call.id)]
        return Trajectory(id=f"t{i}", source="s", format="openai", messages=tuple(messages))

    seen: list[tuple[object, object]] = []

    class Capturing:
        def answer(self, items):
            seen.extend(items)
            return [ToolResponse("simulated", "llm", "tool model") for _ in items]

    calls = leave_one_out([run(0), run(1)], lambda t: None, recorded=True, tool_model=Capturing())
    assert set(calls["provenance"]) == {"llm"} and len(seen) == 6
    for rollout, request in seen:
        shown = " ".join(m.content for m in rollout.prefix.messages)
        k = int(request.command.split("_")[1].split(".")[0])
        trajectory = rollout.prefix.prefix_id.split(":")[0][1:]
        assert f"HELD-OUT-{trajectory}-{k}" not in shown  # its own answer: never
        assert all(f"HELD-OUT-{trajectory}-{j}" in shown for j in range(k))  # the answers before it: yes
