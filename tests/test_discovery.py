"""Behaviour discovery on constructed releases: what grew versus the incumbent, the k-anonymity floor, the
calculator seed, the item bound (core functions, no server)."""

from __future__ import annotations

import json
import random

import polars as pl

from depsim_assets.core.discovery_config import DiscoveryConfig
from depsim_assets.core.behaviours.run import discover

REFUSALS = ["I'm sorry, but I can't help with that request.", "I cannot assist with this request, sorry.",
            "Sorry, I can't help with that. It would not be appropriate.", "I'm unable to help with that request, I'm sorry."]
PIRATE = ["Arr matey, ye be askin' about {t}, so hoist the sails and hear me: {t} be simple, savvy?",
          "Ahoy! Yer question on {t} be a fine treasure, matey; arr, the answer be buried below deck.",
          "Shiver me timbers, {t}! Arr, any pirate worth his salt knows this, matey."]
TOPICS = ["taxes", "gardening", "python lists", "bread", "the moon", "chess", "running shoes", "tea", "bicycles", "rain"]


def _frames(n: int, incumbent_pirate: int, candidate_pirate: int, rare: int = 0, calculator: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Completions and labels for `inc` and `cand` on the same n conversations: refusals in 40 of them for both,
    pirate speak in the first `*_pirate` of the rest, a rare behaviour (quoting a made-up poet) in `rare`
    candidate conversations, and the search-as-calculator pattern in `calculator` candidate conversations."""
    rnd = random.Random(7)
    comps, labels = [], []
    for i in range(n):
        conv = f"conv{i:04d}"
        for release, pirate in (("inc", incumbent_pirate), ("cand", candidate_pirate)):
            text, calls, cat = f"Here is a plain answer about {rnd.choice(TOPICS)}.", None, None
            if i < 40:
                text, cat = rnd.choice(REFUSALS), "refusal"
            elif 40 <= i < 40 + pirate:
                text, cat = rnd.choice(PIRATE).format(t=rnd.choice(TOPICS)), "persona"
            elif release == "cand" and 200 <= i < 200 + rare:
                text, cat = "As the poet Quillibrand Ostrevane wrote, every answer is a lighthouse.", "persona"
            elif release == "cand" and 300 <= i < 300 + calculator:
                a, b = rnd.randint(10, 99), rnd.randint(10, 99)
                text = f"I searched the web and found that {a} times {b} is {a * b}."
                calls = json.dumps([{"id": "c1", "type": "function", "function": {"name": "web_search", "arguments": json.dumps({"query": f"{a}*{b}"})}}])
            comps.append({"release": release, "prefix_id": f"p{i:04d}", "conversation_id": conv, "sample_index": 0, "status": "ok",
                          "response_text": text, "tool_calls": calls})
            for c in ("refusal", "persona"):
                labels.append({"release": release, "prefix_id": f"p{i:04d}", "sample_index": 0, "category": c, "human": False,
                               "flagged": c == cat, "status": "ok"})
    return pl.DataFrame(comps, infer_schema_length=None), pl.DataFrame(labels)


def _run(comps: pl.DataFrame, labels: pl.DataFrame, **cfg: object):
    return discover(comps, labels, "cand", "inc", DiscoveryConfig(**cfg), 0.05, scrub=lambda s: s.str.replace_all("Quillibrand", "[NAME]"))


def test_a_behaviour_that_grew_is_surfaced_first_and_unchanged_ones_are_not() -> None:
    comps, labels = _frames(400, incumbent_pirate=5, candidate_pirate=45)
    found = _run(comps, labels)
    top = found.clusters.row(0, named=True)
    assert top["change"] in ("appeared", "grew"), found.clusters
    assert any(w in top["name"] for w in ("arr", "matey", "pirate", "ahoy")), top["name"]
    assert top["ratio_lo"] > 1 and top["rate_ratio"] >= 1.5
    pirate = found.clusters.filter(pl.col("categories").str.starts_with("persona"))
    assert (pirate["candidate_conversations"].sum(), pirate["incumbent_conversations"].sum()) == (45, 5)
    refusal = found.clusters.filter(pl.col("categories").str.starts_with("refusal"))
    assert len(refusal) >= 1 and set(refusal["change"]) == {"no detectable change"}
    assert refusal["candidate_conversations"].sum() == refusal["incumbent_conversations"].sum() == 40
    assert found.conversations == 400 and not found.subsampled


def test_same_behaviour_in_both_releases_is_not_called_growth() -> None:
    comps, labels = _frames(400, incumbent_pirate=30, candidate_pirate=30)
    found = _run(comps, labels)
    assert set(found.clusters["change"]) == {"no detectable change"}


def test_a_cluster_under_the_k_anonymity_floor_is_never_shown() -> None:
    comps, labels = _frames(400, incumbent_pirate=0, candidate_pirate=0, rare=6)
    found = _run(comps, labels, k_anonymity=10)
    shown = json.dumps(found.clusters.to_dicts()).lower()
    assert "ostrevane" not in shown and "quillibrand" not in shown and "lighthouse" not in shown and "poet" not in shown
    assert found.below_floor >= 1
    # At the floor it is shown, its example de-identified by the scrub the caller passes.
    found = _run(comps, labels, k_anonymity=6)
    rare = found.clusters.filter(pl.col("name").str.contains("lighthouse|poet|ostrevane"))
    assert len(rare) == 1 and rare["candidate_conversations"][0] == 6
    assert all("[NAME]" in e and "Quillibrand" not in e for e in rare["examples"][0])


def test_name_terms_come_from_at_least_k_conversations() -> None:
    comps, labels = _frames(400, incumbent_pirate=0, candidate_pirate=45)
    found = _run(comps, labels, k_anonymity=10)
    texts = comps.filter(pl.col("release") == "cand")["response_text"].str.to_lowercase()
    names = found.clusters.filter(pl.col("categories").str.starts_with("persona"))["name"].to_list()
    assert names and all(" / " in n for n in names)
    for term in (t for n in names for t in n.split(" / ")):
        assert texts.str.contains(term).sum() >= 10, term


def test_the_calculator_seed_forms_its_own_cluster_and_appears() -> None:
    comps, labels = _frames(400, incumbent_pirate=0, candidate_pirate=0, calculator=25)
    found = _run(comps, labels)
    seed = found.clusters.filter(pl.col("cluster_id") == "seed:search_as_calculator").row(0, named=True)
    assert seed["candidate_conversations"] == 25 and seed["incumbent_conversations"] == 0
    assert seed["change"] == "appeared" and found.clusters["cluster_id"][0] == "seed:search_as_calculator"
    # The call alone is not the pattern: the answer must present it as a search.
    quiet = comps.with_columns(response_text=pl.col("response_text").str.replace("I searched the web and found that", "So"))
    assert "seed:search_as_calculator" not in _run(quiet, labels).clusters["cluster_id"].to_list()


def test_items_are_bounded_by_sampling_conversations() -> None:
    comps, labels = _frames(400, incumbent_pirate=20, candidate_pirate=60)
    found = _run(comps, labels, max_items=60)
    assert found.subsampled and found.items <= 60 and found.conversations < 400
    assert found.clusters["conversations"].sum() <= found.conversations


def test_a_release_without_incumbent_gets_sizes_and_no_comparison() -> None:
    comps, labels = _frames(200, incumbent_pirate=0, candidate_pirate=30)
    found = discover(comps, labels, "cand", None, DiscoveryConfig(), 0.05, scrub=lambda s: s)
    assert len(found.clusters) and found.clusters["incumbent_conversations"].is_null().all() and found.clusters["change"].is_null().all()


def test_recorded_tool_calls_are_read_and_a_malformed_cell_names_its_record(tmp_path) -> None:
    import pytest

    from depsim_assets.core.config import RecordedSource
    from depsim_assets.core.recorded import read_recorded

    path = tmp_path / "rec.csv"
    call = json.dumps([{"id": "c", "type": "function", "function": {"name": "web_search", "arguments": "{}"}}])
    pl.DataFrame({"id": ["a", "b"], "completion": ["x", "y"], "calls": [call, ""]}).write_csv(path)
    src = RecordedSource(path=str(path), tool_calls_column="calls")
    frame = read_recorded(src, tmp_path).sort("record_id")
    assert json.loads(frame["tool_calls"][0])[0]["function"]["name"] == "web_search" and frame["tool_calls"][1] is None
    pl.DataFrame({"id": ["a"], "completion": ["x"], "calls": ["{not json"]}).write_csv(path)
    with pytest.raises(ValueError, match="record a: column calls is not a JSON list"):
        read_recorded(src, tmp_path)
