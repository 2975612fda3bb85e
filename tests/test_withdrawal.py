"""Consent withdrawn (`depsim forget`): a conversation's and a user's rows leave every table, review export and
the completion store; the log keeps counts only; later ingestion keeps them out; the rest is untouched."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from depsim.cli import main
from depsim.runner import run_study
from depsim_assets.core.config import load_study
from depsim_assets.core.store import Store
from tests.fake_openai import FakeOpenAI

MARKS = ("WITHDRAWMEMARK", "USERSEVENMARK")


@pytest.fixture
def server():
    srv = FakeOpenAI().start()
    yield srv
    srv.stop()


def _study(write_study, tmp_path: Path, server: FakeOpenAI) -> Path:
    traffic = tmp_path / "traffic.jsonl"
    with open(traffic, "w") as fh:
        for i in range(30):
            mark = MARKS[0] if i == 3 else MARKS[1] if i % 10 == 7 else "plain"
            fh.write(json.dumps({"id": f"conv-{i}", "user_id": f"user-{i % 10}", "consent": "model_improvement", "messages": [
                {"role": "user", "content": f"Question {i} about soup ({mark})."}, {"role": "assistant", "content": f"Answer {i}."}]}) + "\n")
    return write_study(f"""
        study: forget
        warehouse_dir: wh
        sources: [{{name: chat, paths: ["{traffic}"]}}]
        dispatch: {{concurrency: 4, timeout_s: 2.0}}
        releases: [{{name: v1, backend: openai, model: fake-model, base_url: "{server.base_url}"}}]
        graders: [{{id: rules, kind: rules, categories: [refusal]}}]
        """)


def _stored_text(root: Path) -> str:
    """Every table, export and store file under the warehouse, decoded (Parquet to rows) or as bytes."""
    parts = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            parts.append(json.dumps(pl.read_parquet(path).to_dicts(), default=str))
        else:
            parts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


def test_forget_removes_a_conversation_and_a_user_everywhere_and_keeps_them_out(write_study, tmp_path: Path, server: FakeOpenAI,
                                                                                dagster_home: Path, capsys) -> None:
    cfg = _study(write_study, tmp_path, server)
    run_study(cfg, releases=["v1"], progress=lambda _: None)
    study = load_study(cfg)
    root = study.warehouse_dir
    before = _stored_text(root)
    assert all(m in before for m in MARKS)  # the completions echo the marks; the store holds the requests
    with Store(root / "_completions") as store:
        stored_before = len(store.all())
    assert main(["forget", "--config", str(cfg), "--conversation", "conv-3", "--user", "user-7"]) == 0
    out = capsys.readouterr().out
    assert "withdrawn: 4 conversation(s), 4 prefix(es)" in out and "completion store 4" in out
    after = _stored_text(root)
    assert not any(m in after for m in MARKS)
    with Store(root / "_completions") as store:
        assert len(store.all()) == stored_before - 4
    log = (root / "_withdrawals" / "log.jsonl").read_text()
    assert "conv-3" not in log and "user-7" not in log and json.loads(log)["conversations"] == 4
    # Untouched: the other 26 conversations and their completions.
    assert study.warehouse.read("replay_prefixes").height == 26
    assert study.warehouse.read("regenerated_completions", ["v1"]).height == 26
    # Re-ingestion keeps them out, with the reason, and nothing is sent again for the others.
    sent = sum(server.requests.values())
    run_study(cfg, releases=["v1"], progress=lambda _: None, refresh=True)
    manifest = study.warehouse.read("traffic_manifest")
    assert manifest.filter(pl.col("exclusion") == "consent_withdrawn").height == 4
    assert study.warehouse.read("deidentified_conversations").height == 26
    assert not any(m in _stored_text(root / "deidentified_conversations") for m in MARKS)
    assert sum(server.requests.values()) == sent


def test_forget_without_ids_is_one_line(write_study, tmp_path: Path, server: FakeOpenAI, capsys) -> None:
    cfg = _study(write_study, tmp_path, server)
    assert main(["forget", "--config", str(cfg)]) == 2
    assert capsys.readouterr().err.strip() == "depsim: name what to withdraw: --conversation ID and/or --user ID (repeatable)"
