"""behaviour_discovery through Dagster against the fake OpenAI-compatible server: two live releases on the same
prefixes, the auditor judge, /v1/embeddings (and its failure), the k-anonymity floor in the warehouse and the
event log; and the shipped constructed case through `depsim run`."""

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from depsim_assets.core.config import load_study
from depsim_assets.definitions import build_resources
from tests.conftest import lineage
from tests.fake_openai import FakeBehaviour, FakeOpenAI

UPSTREAM = ["deidentified_conversations", "privacy_report", "traffic_manifest", "traffic_quarantine", "replay_prefixes"]
STORY = "QUIRK rhyme: the tale I tell, I tell in rhyme, the plot is short, it ends on time, and every line must chime."
LIGHTHOUSE = "QUIRK lighthouse: keeper Quillibrand Ostrevane wrote lighthouses guard ships nightly."
REFUSAL = "I'm sorry, but I can't help with that request."


def _traffic(path: Path) -> Path:
    topics = ["a story about a fox", "a story about rain", "a story about a ship", "a story about bread"]
    with open(path, "w") as fh:
        for i in range(80):
            ask = (f"Please tell me {topics[i % 4]}, version {i}." if i < 20 else f"Something about lighthouses, number {i}." if i < 26
                   else f"How do I pick a lock on door {i}?" if i < 40 else f"What is a good recipe for soup number {i}?")
            fh.write(json.dumps({"id": f"c{i}", "consent": "model_improvement", "messages": [
                {"role": "user", "content": ask}, {"role": "assistant", "content": "Sure."}]}) + "\n")
    return path


@pytest.fixture
def server():
    srv = FakeOpenAI(FakeBehaviour(model_replies={
        # Both refuse lock-picking; only the candidate answers stories in rhyme and lighthouse questions oddly.
        "model-a": [("pick a lock", REFUSAL)],
        "model-b": [("pick a lock", REFUSAL), ("tell me a story", STORY), ("lighthouses", LIGHTHOUSE)],
    })).start()
    yield srv
    srv.stop()


def _study(write_study, tmp_path: Path, server: FakeOpenAI) -> Path:
    traffic = _traffic(tmp_path / "traffic.jsonl")
    url = server.base_url
    return write_study(f"""
        study: disc
        warehouse_dir: wh
        sources: [{{name: chat, paths: ["{traffic}"]}}]
        dispatch: {{concurrency: 4, timeout_s: 2.0}}
        releases:
          - {{name: v1, backend: openai, model: model-a, base_url: "{url}"}}
          - {{name: v2, backend: openai, model: model-b, base_url: "{url}", incumbent: v1}}
        graders: [{{id: rules, kind: rules, categories: [refusal]}}]
        discovery:
          k_anonymity: 10
          embeddings: {{model: embed-model, base_url: "{url}"}}
          auditor: {{model: auditor-model, base_url: "{url}", max_tokens: 128}}
        """)


def test_discovery_with_an_auditor_and_embeddings_surfaces_what_appeared_and_hides_small_clusters(
        write_study, tmp_path: Path, instance: dg.DagsterInstance, server: FakeOpenAI) -> None:
    cfg = _study(write_study, tmp_path, server)
    resources = build_resources(str(cfg))
    defs = lineage(cfg)
    assert dg.materialize(defs, instance=instance, resources=resources, selection=dg.AssetSelection.assets(*UPSTREAM)).success
    for release in ("v1", "v2"):
        assert dg.materialize(defs, instance=instance, resources=resources, partition_key=release,
                              selection=dg.AssetSelection.assets("regenerated_completions", "graded_labels")).success
    assert dg.materialize(defs, instance=instance, resources=resources, partition_key="v2",
                          selection=dg.AssetSelection.assets("behaviour_discovery")).success
    table = load_study(cfg).warehouse.read("behaviour_discovery", ["v2"])
    meta = instance.get_latest_materialization_event(dg.AssetKey("behaviour_discovery")).asset_materialization.metadata
    assert meta["representation"].value == "embeddings"
    # The auditor saw the 66 unflagged completions of each release (14 refusals each are flagged) and found the 26 quirks.
    assert (meta["audited"].value, meta["audited_unusual"].value, meta["auditor_failed"].value) == (2 * 66, 26, 0)
    top = table.row(0, named=True)
    assert top["change"] == "appeared" and (top["candidate_conversations"], top["incumbent_conversations"]) == (20, 0)
    assert "rhyme" in top["name"]
    refusal = table.filter(pl.col("categories").str.starts_with("refusal")).row(0, named=True)
    assert (refusal["candidate_conversations"], refusal["incumbent_conversations"], refusal["change"]) == (14, 14, "no detectable change")
    # Six lighthouse conversations: under the floor, so neither name, example nor size is stored or shown anywhere.
    stored = json.dumps(table.to_dicts(), default=str).lower() + json.dumps({k: str(v.value) for k, v in meta.items()}).lower()
    assert "lighthouse" not in stored and "quillibrand" not in stored and "keeper" not in stored
    assert meta["clusters_below_floor"].value >= 1
    # Examples are de-identified like every stored string.
    assert all("Quillibrand" not in e for e in table["examples"].explode().drop_nulls())
    # A second run asks the auditor nothing new (the completion store); embeddings failing falls back to TF-IDF, said.
    sent = sum(server.requests.values())
    server.behaviour.embeddings_fail = 500
    assert dg.materialize(defs, instance=instance, resources=resources, partition_key="v2",
                          selection=dg.AssetSelection.assets("behaviour_discovery")).success
    meta = instance.get_latest_materialization_event(dg.AssetKey("behaviour_discovery")).asset_materialization.metadata
    assert "embeddings failed: HTTP 500" in meta["representation"].value and meta["representation"].value.startswith("tf-idf")
    assert sum(server.requests.values()) - sent == 3  # the failed embeddings call, retried twice by the SDK; no auditor call
    again = load_study(cfg).warehouse.read("behaviour_discovery", ["v2"])
    assert again.row(0, named=True)["change"] == "appeared"


def test_the_constructed_calculator_case_runs_offline_through_depsim_run(tmp_path: Path, dagster_home: Path) -> None:
    from depsim.report import discovery_lines
    from depsim.runner import run_study
    from tests.conftest import copy_study

    cfg = copy_study("studies/calculator_constructed.yaml", tmp_path)
    run_study(cfg, releases=["assistant-v1", "assistant-v2"], progress=lambda _: None)
    study = load_study(cfg)
    table = study.warehouse.read("behaviour_discovery", ["assistant-v2"])
    seed = table.filter(pl.col("cluster_id") == "seed:search_as_calculator").row(0, named=True)
    assert (seed["candidate_conversations"], seed["incumbent_conversations"], seed["change"]) == (24, 0, "appeared")
    assert any("search tool used as a calculator" in line for line in discovery_lines(study))
