"""The de-identification asset end to end on a real instance: the gate, the GE checks, the report."""

from pathlib import Path

import dagster as dg
import polars as pl
import pyarrow.parquet as pq
import pytest

from depsim_assets.core.config import load_study
from depsim_assets.core.privacy.gate import PrivacyGateError, canary_values
from depsim_assets.definitions import build_resources
from tests.conftest import TESTS, lineage, warehouse_sql

TRAFFIC = TESTS / "data" / "privacy" / "traffic_with_pii.jsonl"


def _study(write_study, extra: str = "") -> Path:
    return write_study(
        f"""
        study: priv
        warehouse_dir: wh
        sources: [{{name: chat, paths: ["{TRAFFIC}"]}}]
        {extra}
        """
    )


OUTPUTS = ("deidentified_conversations", "privacy_report", "traffic_manifest", "traffic_quarantine")


def _materialize(cfg: Path, instance: dg.DagsterInstance, *assets: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(lineage(cfg), instance=instance, resources=build_resources(str(cfg)),
                          selection=dg.AssetSelection.assets(*assets), raise_on_error=False)


def _tables(cfg: Path) -> set[str]:
    return set(load_study(cfg).warehouse.tables())


def test_scrubbed_output_passes_gate_and_checks(write_study, instance: dg.DagsterInstance) -> None:
    cfg = _study(write_study)
    result = _materialize(cfg, instance, *OUTPUTS, "replay_prefixes")
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"traffic_reconciles": True, "deidentified_passes_expectations": True}
    with warehouse_sql(cfg) as con:
        texts = con.sql("select m.content from (select unnest(messages) m from deidentified_conversations)").pl().to_series().to_list()
        report = con.sql("select entity, sum(count)::int n from privacy_report group by 1").pl()
        users = con.sql("select distinct user_id from deidentified_conversations").pl().to_series().to_list()
    blob = "\n".join(texts)
    for leaked in ("margaret.thornbury@fastmail.fm", "Thornbury", "867-5309", "4539 1488 0343 6467"):
        assert leaked not in blob
    assert "4539148803436468" in blob  # an order number (fails Luhn) survives
    assert "Mix flour, water, salt and yeast." in blob
    # The same e-mail got the same surrogate in the user and the assistant turn.
    surrogate = next(w for w in blob.split() if "@example." in w).rstrip(".")
    assert blob.count(surrogate) == 2
    counts = dict(report.iter_rows())
    assert counts["EMAIL_ADDRESS"] >= 2 and counts["CREDIT_CARD"] >= 1 and counts["PHONE_NUMBER"] >= 1
    assert all(u and u not in ("user-42", "user-7") and len(u) == 24 for u in users)
    mat = result.asset_materializations_for_node("deidentified_conversations")
    report_meta = next(m for m in mat if m.asset_key.to_user_string() == "privacy_report").metadata
    assert report_meta["canaries_planted"].value == 3


# (Disabling `ssn` or `ipv4` alone does not leak: the phone rule also takes 3-2-4 and dotted digit groups.)
@pytest.mark.parametrize("rule", ["email", "credit_card", "api_key", "ssn, phone", "ipv4, phone"])
def test_disabled_rule_stops_the_run_before_anything_is_stored(write_study, instance: dg.DagsterInstance, rule: str) -> None:
    cfg = _study(write_study, f"privacy: {{disabled_rules: [{rule}]}}")
    result = _materialize(cfg, instance, *OUTPUTS)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "deidentified_conversations"
    error = failure.event_specific_data.error.cause  # the user-code error under Dagster's wrapper
    assert error.cls_name == PrivacyGateError.__name__
    assert "survived scrubbing" in error.message
    assert "margaret" not in error.message.lower()  # the error never echoes a leaked value
    assert _tables(cfg) == set()  # no table at all: raw traffic is never stored, and the failed batch left nothing
    # Nothing anywhere: every Parquet file's strings and metadata, and every other file byte-wise, in the
    # warehouse directory and DAGSTER_HOME (event log, compute logs).
    # The planted canaries (one value per entity type, the disabled one included) and the traffic's own e-mail.
    leaks = ["margaret.thornbury@fastmail.fm"] + [v for i in range(3) for v in canary_values(b"test-key-0123456789", i).values()]
    for root in (load_study(cfg).warehouse_dir, Path(instance.root_directory)):
        for f in (p for p in root.rglob("*") if p.is_file()) if root.exists() else []:
            data = f.read_bytes()
            if f.suffix == ".parquet":
                frame = pl.read_parquet(f)
                data += str(frame.select(pl.col(pl.String)).rows()).encode() + str(pq.ParquetFile(f).metadata.metadata).encode()
            found = [v for v in leaks if v.encode() in data]
            assert not found, f"{found} found in {f}"


def test_expectations_fail_on_a_stored_leak(write_study, instance: dg.DagsterInstance) -> None:
    cfg = _study(write_study)
    assert _materialize(cfg, instance, *OUTPUTS).success
    wh = load_study(cfg).warehouse
    frame = wh.read("deidentified_conversations")
    leaked = frame.head(1).with_columns(
        conversation_id=pl.lit("planted"),
        messages=pl.lit([{"role": "user", "content": "reach me at real.person@corp.io", "tool_calls": None, "tool_call_id": None, "name": None}], dtype=frame.schema["messages"]),
    )
    wh.write("deidentified_conversations", pl.concat([frame, leaked]))
    result = dg.materialize(lineage(cfg), instance=instance, resources=build_resources(str(cfg)), raise_on_error=False,
                            selection=dg.AssetSelection.checks_for_assets("deidentified_conversations"))
    (ev,) = result.get_asset_check_evaluations()
    assert not ev.passed
    assert ev.metadata["no_residual_identifiers"].value.startswith("FAILED (1 unexpected)")
    assert ev.metadata["only_consented_rows"].value.startswith("passed")
