"""Real files as they are published, and file-level faults: each built here, each ending in kept records
plus one file-level quarantine row, or in one clear line; the reconciliation balances only on a right read."""

import gzip
import json
import time
from pathlib import Path

import polars as pl
import pytest

from depsim.cli import main
from depsim_assets.core.config import IngestConfig, SourceConfig
from depsim_assets.core.ingest import count_source_records, ingest, reconcile
from depsim_assets.core.sources import count_records, inspect

SMALL = IngestConfig(batch_lines=7)


def _chat(i: int, **extra: object) -> dict:
    return {"id": f"c{i}", "consent": "model_improvement", **extra,
            "messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}]}


def _lines(records: list[dict]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def _run(tmp_path: Path, name: str, **source: object):
    src = SourceConfig(name="s", paths=[name], **source)  # type: ignore[arg-type]
    result = ingest([src], tmp_path, SMALL)
    balance = reconcile(count_source_records([src], tmp_path), result.conversations, result.quarantine)
    return result, balance.row(0, named=True)


def test_truncated_gzip_keeps_what_was_readable(tmp_path: Path) -> None:
    full = gzip.compress(_lines([_chat(i) for i in range(400)]))
    (tmp_path / "t.jsonl.gz").write_bytes(full[: len(full) // 2])
    r, balance = _run(tmp_path, "t.jsonl.gz")
    assert 50 < len(r.conversations) < 400  # the readable first half is kept
    assert r.quarantine["reason"].to_list() == ["truncated_file"]
    assert "t.jsonl.gz" in r.quarantine["source_file"].item()
    assert balance["balanced"]


def test_corrupt_parquet_is_quarantined_whole(tmp_path: Path) -> None:
    (tmp_path / "c.parquet").write_bytes(b"PAR1" + b"\x00garbage" * 50 + b"PAR1")
    r, balance = _run(tmp_path, "c.parquet")
    assert r.conversations.is_empty() and r.quarantine["reason"].to_list() == ["corrupt_file"]
    assert balance["balanced"]


@pytest.mark.parametrize("name", ["upper.jsonl.GZ", "gzip_named.jsonl"])
def test_compression_is_read_from_the_bytes_not_the_name(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(gzip.compress(_lines([_chat(i) for i in range(20)])))
    r, balance = _run(tmp_path, name)
    assert len(r.conversations) == 20 and r.quarantine.is_empty() and balance["balanced"]


def test_bom_and_nan_do_not_lose_records(tmp_path: Path) -> None:
    body = b"\xef\xbb\xbf" + _lines([_chat(0)]) + b'{"id": "c1", "consent": "model_improvement", "score": NaN, "messages": ' \
        + json.dumps(_chat(1)["messages"]).encode() + b"}\n"
    (tmp_path / "b.jsonl").write_bytes(body)
    r, balance = _run(tmp_path, "b.jsonl")
    assert sorted(r.conversations["conversation_id"].to_list()) == ["c0", "c1"] and balance["balanced"]


def test_sharegpt_json_array_read_record_by_record(tmp_path: Path) -> None:
    records = [{"id": f"s{i}", "conversations": [{"from": "human", "value": f"hi {i}"}, {"from": "gpt", "value": f"hello {i}"}]}
               for i in range(30)]
    (tmp_path / "sharegpt.json").write_text(json.dumps(records, indent=2))  # pretty-printed, as FastChat ships it
    sf = inspect(tmp_path / "sharegpt.json")
    assert sf.shape == "json_array" and count_records(sf) == 30  # records, not the file's many lines
    r, balance = _run(tmp_path, "sharegpt.json", consent="public")
    assert len(r.conversations) == 30 and r.quarantine.is_empty() and balance["balanced"]
    # A misread shape cannot balance: the same file counted as lines would be ~300 records.
    assert sum(1 for line in (tmp_path / "sharegpt.json").read_text().splitlines() if line.strip()) > 30


def test_malformed_json_array_keeps_records_before_the_fault(tmp_path: Path) -> None:
    good = json.dumps([_chat(i) for i in range(5)])
    (tmp_path / "a.json").write_text(good[:-1] + ', {"id": "c5", "messages": [')
    r, balance = _run(tmp_path, "a.json")
    assert len(r.conversations) == 5 and r.quarantine["reason"].to_list() == ["corrupt_file"] and balance["balanced"]


def test_one_bad_byte_in_a_csv_is_one_row(tmp_path: Path) -> None:
    rows = ["id,prompt,type"] + [f"{i},How do I bake bread number {i}?,safe" for i in range(10)]
    data = "\n".join(rows).encode().replace(b"number 4", b"number \xff4")
    (tmp_path / "e.csv").write_bytes(data)
    r, balance = _run(tmp_path, "e.csv", kind="eval_set", consent="public")
    assert len(r.conversations) == 9 and r.quarantine["reason"].to_list() == ["non_utf8"] and balance["balanced"]


def test_mt_bench_turns_refusal_parts_string_lists_and_typed_ids(tmp_path: Path) -> None:
    (tmp_path / "mt.jsonl").write_bytes(_lines([{"question_id": 81, "category": "writing", "turns": ["Write a poem.", "Now shorter."]}]))
    r, _ = _run(tmp_path, "mt.jsonl", kind="eval_set", consent="public", id_column="question_id")
    assert r.conversations["messages"].item()[0]["content"] == "Write a poem."
    assert json.loads(r.conversations["attributes"].item())["turns"][1] == "Now shorter."
    chat = [{**_chat(0), "messages": [{"role": "user", "content": ["part one", "part two"]},
                                      {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't help with that."}]}]},
            {**_chat(1), "id": 7}, {**_chat(2), "id": "7"}]
    (tmp_path / "shapes.jsonl").write_bytes(_lines(chat))
    r, balance = _run(tmp_path, "shapes.jsonl")
    assert r.quarantine.is_empty() and balance["balanced"]
    first = r.conversations.filter(pl.col("conversation_id") == "c0")
    assert [m["content"] for m in first["messages"].item()] == ["part one\npart two", "I can't help with that."]
    assert json.loads(first["attributes"].item()) == {"refusal_parts": 1}
    assert sorted(r.conversations["conversation_id"].to_list()) == ["7", "c0", "int:7"]  # 7 and "7" are two ids
    r, _ = _run(tmp_path, "shapes.jsonl", id_type="string")
    assert r.quarantine["reason"].to_list() == ["duplicate_conversation_id"]


def test_a_long_conversation_is_checked_in_seconds(tmp_path: Path) -> None:
    from depsim_assets.core.privacy.expectations import deidentified_expectations, run_suite

    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": "word " * 2000} for i in range(5000)]
    frame = pl.DataFrame({"source": ["s"] * 5000, "consent_ok": [True] * 5000, "emptied_by_scrub": [False] * 5000,
                          "content": [m["content"] for m in messages]})
    started = time.perf_counter()
    outcomes = run_suite(frame.to_pandas(), deidentified_expectations([]))
    assert all(o.success for o in outcomes)
    assert time.perf_counter() - started < 60


STUDY = """
study: faults
warehouse_dir: wh
sources: [{{name: s, paths: ["{path}"]}}]
releases:
  - {{name: v1, backend: recorded, model: m, recorded: {{reference_variant: original}}}}
  - {{name: v2, backend: recorded, model: m, incumbent: v1, recorded: {{reference_variant: original}}}}
graders:
  - {{id: rules, kind: rules, categories: [refusal]}}
"""


@pytest.mark.parametrize("content", [b"", b"\n\n  \n", b'{"not": "a conversation"}\n'])
def test_zero_conversations_is_an_empty_valid_result_all_the_way_down(tmp_path: Path, write_study, dagster_home: Path,
                                                                       capsys, content: bytes) -> None:
    (tmp_path / "empty.jsonl").write_bytes(content)
    cfg = write_study(STUDY.format(path=tmp_path / "empty.jsonl"))
    assert main(["run", "--all", "--config", str(cfg)]) == 0, capsys.readouterr().err
    assert "forecast_scorecard" in capsys.readouterr().out


def test_directory_and_unmatched_glob_are_one_line_errors(tmp_path: Path, write_study, dagster_home: Path, capsys) -> None:
    (tmp_path / "adir").mkdir()
    cfg = write_study(STUDY.format(path=tmp_path / "adir"))
    assert main(["run", "--all", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "adir is a directory" in err
    cfg = write_study(STUDY.format(path=tmp_path / "nothing*.jsonl"), name="glob.yaml")
    assert main(["run", "--all", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "matched no file" in err
