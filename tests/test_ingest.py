"""Readers on fixtures and real files, the quarantine corpus, reconciliation and consent."""

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from depsim_assets.core.config import IngestConfig, SourceConfig, load_study
from depsim_assets.core.consent import apply_consent
from depsim_assets.core.formats import REASONS
from depsim_assets.core.ingest import count_source_records, ingest, reconcile
from depsim_assets.definitions import build_resources
from tests.conftest import TESTS, lineage, shared

DATA = TESTS / "data"
SMALL = IngestConfig(max_message_chars=1000)


def _ingest(*sources: SourceConfig, base: Path = DATA, cfg: IngestConfig = SMALL):
    return ingest(list(sources), base, cfg)


def test_malformed_corpus_quarantines_every_reason_with_line_numbers() -> None:
    src = SourceConfig(name="m", paths=["malformed.jsonl"])
    r = _ingest(src)
    expected = (DATA / "malformed.expect").read_text().split()
    got = r.quarantine.sort("line_no")
    assert got["reason"].to_list() == expected
    # Line numbers point at the physical lines (blank lines 14-15 are skipped, not counted).
    assert got["line_no"].to_list() == list(range(2, 14))
    assert set(expected) <= set(REASONS)
    assert all(got["detail"].str.len_chars() > 5)
    assert r.conversations["conversation_id"].to_list() == ["ok1", "tools", "image", "noconsent"]
    assert r.records_in == {"m": 16} == count_source_records([src], DATA)
    assert reconcile(r.records_in, r.conversations, r.quarantine)["balanced"].all()


def test_openai_tool_calls_and_tool_messages_survive() -> None:
    r = _ingest(SourceConfig(name="m", paths=["malformed.jsonl"]))
    msgs = r.conversations.filter(pl.col("conversation_id") == "tools")["messages"][0].to_list()
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "tool", "assistant"]
    call = json.loads(msgs[2]["tool_calls"])
    assert msgs[2]["content"] is None and call[0]["function"]["name"] == "browser.search"
    assert msgs[3]["tool_call_id"] == "call_1" and msgs[3]["name"] == "browser.search"
    image = r.conversations.filter(pl.col("conversation_id") == "image")
    assert image["multimodal"].item() and image["messages"][0][0]["content"] == "what is this?"


def test_consent_keeps_allowed_and_excludes_multimodal_with_counts() -> None:
    src = SourceConfig(name="m", paths=["malformed.jsonl"])
    kept, excluded = apply_consent(_ingest(src).conversations, [src])
    assert kept["conversation_id"].to_list() == ["ok1", "tools"]
    assert dict(excluded.select("reason", "conversations").iter_rows()) == {"multimodal": 1, "no_consent": 1}
    public = src.model_copy(update={"consent": "public"})
    kept, excluded = apply_consent(_ingest(public).conversations, [public])
    assert set(kept["conversation_id"]) == {"ok1", "tools", "noconsent"}
    assert excluded["reason"].to_list() == ["multimodal"]


def test_sharegpt_and_lmsys_readers() -> None:
    r = _ingest(SourceConfig(name="sg", paths=["formats/sharegpt.jsonl"]), SourceConfig(name="lm", paths=["formats/lmsys.jsonl"]))
    assert r.quarantine.is_empty()
    sg = r.conversations.filter(pl.col("source") == "sg")
    assert [m["role"] for m in sg["messages"][1]] == ["system", "user", "assistant"]
    lm = r.conversations.filter(pl.col("source") == "lm").sort("conversation_id")
    assert lm.select("conversation_id", "model", "language", "user_id").rows() == [
        ("lm1", "vicuna-13b", "English", None),
        ("wc1", "gpt-4", "French", "abc"),
    ]


def test_lmsys_parquet_reader(tmp_path: Path) -> None:
    conv = pl.DataFrame(
        {"conversation_id": ["p1", "p2"], "model": ["m", "m"],
         "conversation": [[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
                          [{"role": "user", "content": "only a question"}]]}
    )
    conv.write_parquet(tmp_path / "chat.parquet")
    src = SourceConfig(name="pq", paths=["chat.parquet"])
    r = _ingest(src, base=tmp_path)
    assert r.conversations["conversation_id"].to_list() == ["p1"]
    assert r.quarantine.select("line_no", "reason").rows() == [(2, "no_assistant_turn")]
    assert count_source_records([src], tmp_path) == {"pq": 2}


def test_eval_sets_keep_ids_and_attributes() -> None:
    csv_src = SourceConfig(name="ev", kind="eval_set", paths=["formats/eval.csv"])
    jl_src = SourceConfig(name="ej", kind="eval_set", paths=["formats/eval.jsonl"], id_column="qid", prompt_column="question")
    r = _ingest(csv_src, jl_src)
    ev = r.conversations.filter(pl.col("source") == "ev")
    assert ev["conversation_id"].to_list() == ["1", "2"]
    assert json.loads(ev["attributes"][1]) == {"label": "unsafe", "type": "contrast_homonyms"}
    assert ev["messages"][1][0]["content"] == "A prompt\nspanning lines"
    q = r.quarantine.sort("source", "line_no").select("source", "line_no", "reason").rows()
    # CSV line numbers are where the row starts (row 2 spans lines 3-4).
    assert q == [("ej", 2, "missing_prompt"), ("ev", 5, "malformed_row"), ("ev", 6, "missing_prompt")]
    assert reconcile(r.records_in, r.conversations, r.quarantine)["balanced"].all()


def test_hh_rlhf_real_test_split_pairs_and_quarantine() -> None:
    path = shared("traffic/hh-rlhf-harmless-base/test.jsonl.gz")
    src = SourceConfig(name="hh", paths=[str(path)], format="hh_rlhf", consent="public")
    r = _ingest(src, cfg=IngestConfig())
    reasons = dict(r.quarantine.group_by("reason").len().iter_rows())
    assert reasons == {"pair_prefix_mismatch": 5, "empty_final_turn": 4}
    assert len(r.conversations) == 2 * (2312 - 9)
    pairs = r.conversations.group_by("pair_id").agg(pl.col("pair_role").sort())
    assert pairs["pair_role"].to_list() == [["chosen", "rejected"]] * pairs.height
    # Line 1255 of the real file has "  Human:" typed inline inside an assistant turn; elsewhere
    # such inline text must stay inside its turn rather than start a new one.
    inline = r.conversations.filter(pl.col("messages").list.eval(pl.element().struct.field("content").str.contains(r"[^\n] ?Human: ")).list.any())
    assert inline.height > 0
    for msgs in inline["messages"].to_list():
        roles = [m["role"] for m in msgs]
        assert roles[0] == "user" and roles[-1] == "assistant"


def test_xstest_prompts_real_file() -> None:
    src = SourceConfig(name="xs", kind="eval_set", paths=[str(shared("labels/xstest/xstest_prompts.csv"))], consent="public")
    r = _ingest(src)
    assert r.quarantine.is_empty() and len(r.conversations) == 450
    types = r.conversations["attributes"].str.json_path_match("$.type")
    assert types.str.starts_with("contrast_").sum() == 200


def test_reconciliation_check_fails_when_a_row_is_dropped(write_study, instance: dg.DagsterInstance) -> None:
    cfg = write_study(
        f"""
        study: rec
        warehouse_dir: wh
        ingest: {{max_message_chars: 1000}}
        sources: [{{name: m, paths: ["{DATA / 'malformed.jsonl'}"]}}]
        """
    )
    resources = build_resources(str(cfg))
    result = dg.materialize(lineage(cfg), instance=instance, resources=resources,
                            selection=dg.AssetSelection.assets("deidentified_conversations", "privacy_report", "traffic_manifest",
                                                               "traffic_quarantine"))
    ev = next(e for e in result.get_asset_check_evaluations() if e.check_name == "traffic_reconciles")
    assert ev.passed
    wh = load_study(cfg).warehouse
    wh.write("traffic_manifest", wh.read("traffic_manifest").slice(1))  # a conversation lost between parser and storage
    check_only = dg.materialize(lineage(cfg), instance=instance, resources=resources, raise_on_error=False,
                                selection=dg.AssetSelection.checks_for_assets("traffic_manifest"))
    (ev,) = check_only.get_asset_check_evaluations()
    assert not ev.passed
    assert ev.metadata["unbalanced_sources"].value == ["m"]


@pytest.mark.parametrize("bad", ['{"chosen": 5, "rejected": "x"}', '{"chosen": "no markers", "rejected": "x"}'])
def test_hh_malformed_pairs(tmp_path: Path, bad: str) -> None:
    (tmp_path / "hh.jsonl").write_text(bad + "\n")
    r = _ingest(SourceConfig(name="hh", paths=["hh.jsonl"], format="hh_rlhf"), base=tmp_path)
    assert r.conversations.is_empty() and len(r.quarantine) == 1
    assert r.quarantine["reason"].item() in {"wrong_field_type", "missing_messages"}
