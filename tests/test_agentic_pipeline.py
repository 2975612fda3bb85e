"""The agentic stage as a user runs it: `depsim run` on the shipped agentic study, the privacy gate over
trajectories, the stored-text check, and config errors for trajectory sources."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import polars as pl
import pytest

from depsim.cli import main
from depsim.report import agentic_lines
from depsim_assets.core.agentic.tables import trajectories_of
from depsim_assets.core.config import ConfigError, load_study
from tests.conftest import copy_study, lineage

STUDY = "studies/marshmallow_agentic.yaml"


def test_agentic_study_stores_trajectories_prefixes_and_recorded_answers(tmp_path: Path, dagster_home: Path, capsys) -> None:
    cfg = copy_study(STUDY, tmp_path)
    assert main(["run", "--all", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "check agentic_trajectories:agentic_trajectories_pass_expectations: passed" in out
    study = load_study(cfg)
    wh = study.warehouse
    table = wh.read("agentic_trajectories")
    assert len(table) == 8 and table["calls"].sum() == 95 and wh.read("trajectory_quarantine").is_empty()
    assert table["trajectory_id"].str.contains("marshmallow").sum() == 0  # ids are keyed hashes
    assert len(wh.read("agentic_prefixes")) == 95  # cut: every
    records = wh.read("tool_call_records")
    # runs of one interface share state keys (markdown and XML actions print alike; a run that first installs reaches
    # the same states): 95 calls, 55 keys, the most shared by three runs
    assert len(records) == records["state_key"].n_unique() == 55 and records["trajectories"].list.len().max() == 3
    # interface syntax survives de-identification: the stored v0 cursor command is the one the agent typed
    commands = [c.command for t in trajectories_of(table) for _, c, _ in t.calls()]
    assert "set_cursors 1475 1475\n" in commands and not any("555" in c for c in commands)
    # each recorded release's rollouts are its own trajectory continued from every cut, graded by the rules
    rollouts = wh.read("agentic_rollouts", all_partitions=True)
    assert rollouts.group_by("release").len().sort("release").rows() == [
        ("v0-cursors", 12), ("v0-from-source", 14), ("v0-window", 11), ("v0-xml-cursors", 12), ("v0-xml-window", 11),
        ("v1-linting", 11), ("v1-replace", 11), ("v1-replace-from-source", 13)]
    assert set(rollouts["stop_reason"]) == {"submit"} and rollouts["unanswered"].sum() == 0
    labels = wh.read("agentic_labels", all_partitions=True)
    assert set(labels["category"]) == {"destructive_action", "tool_misuse"} and labels["status"].eq("ok").all()
    assert not wh.exists("deidentified_conversations")  # a trajectory-only study has no conversation pipeline
    # the simulator replays the stored (de-identified) trajectories: reads answered and equal to the recording
    lines = agentic_lines(study)
    read = next(line for line in lines if "snapshot layer alone" in line and " read " in line)
    # 28 of 30 reads match the recording; the two `open setup.py` recordings were de-identified (the author's name and
    # e-mail, and two capitalised words the name rule mistakes for names), the repository's own file is not
    assert "answered=1.00" in read and "exact=0.93" in read


def _tool_record(tmp_path: Path, leak: str) -> Path:
    record = {"id": "r1", "repo": {"name": "acme/app", "base_commit": "abc1234"}, "messages": [
        {"role": "user", "content": "Find the owner of the service and call them at +44 20 7946 0321."},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {
            "name": "bash", "arguments": json.dumps({"command": "grep -rn owner config/"})}}]},
        {"role": "tool", "tool_call_id": "c1", "content": f"config/owners.yaml:3:owner: {leak}"},
        {"role": "assistant", "content": "The owner is listed in config/owners.yaml."},
    ]}
    path = tmp_path / "agent.jsonl"
    path.write_bytes(orjson.dumps(record) + b"\n")
    return path


def _study(tmp_path: Path, data: Path, extra: str = "") -> Path:
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"study: agent\nwarehouse_dir: {tmp_path / 'wh'}\n{extra}"
                   f"sources: [{{name: agent, kind: trajectory, consent: public, paths: ['{data}']}}]\n")
    return cfg


def test_identifiers_in_tool_outputs_are_scrubbed(tmp_path: Path, dagster_home: Path, capsys) -> None:
    cfg = _study(tmp_path, _tool_record(tmp_path, "dana.whitfield@fastmail.fm"))
    assert main(["run", "--all", "--config", str(cfg)]) == 0
    (t,) = trajectories_of(load_study(cfg).warehouse.read("agentic_trajectories"))
    stored = t.model_dump_json()
    assert "dana.whitfield" not in stored and "7946 0321" not in stored
    assert t.calls()[0][2].startswith("config/owners.yaml:3:owner: ")  # the output keeps its shape


def test_a_planted_leak_stops_the_run_and_stores_nothing(tmp_path: Path, dagster_home: Path, capsys) -> None:
    cfg = _study(tmp_path, _tool_record(tmp_path, "dana.whitfield@fastmail.fm"), "privacy: {disabled_rules: [email]}\n")
    assert main(["run", "--all", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("depsim: agentic_trajectories: ") and "nothing was stored" in err and "\n" not in err
    assert "dana" not in err.lower()
    assert not load_study(cfg).warehouse.exists("agentic_trajectories")


def test_the_stored_text_check_fails_on_a_tampered_table(tmp_path: Path, dagster_home: Path, instance) -> None:
    import dagster as dg

    cfg = _study(tmp_path, _tool_record(tmp_path, "the platform team"))
    assert main(["run", "--all", "--config", str(cfg)]) == 0
    wh = load_study(cfg).warehouse
    table = wh.read("agentic_trajectories")
    leaked = table.with_columns(pl.col("document").str.replace("the platform team", "dana.whitfield@fastmail.fm", literal=True))
    leaked.write_parquet(next(wh.root.glob("agentic_trajectories/**/*.parquet")))
    from depsim_assets.definitions import build_resources
    result = dg.materialize(lineage(cfg), instance=instance, resources=build_resources(str(cfg)), raise_on_error=False,
                            selection=dg.AssetSelection.checks_for_assets("agentic_trajectories"))
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 1 and not evaluations[0].passed


@pytest.mark.parametrize(("source", "message"), [
    ("{name: s, kind: trajectory, format: hh_rlhf, paths: [x]}", "kind 'trajectory' reads"),
    ("{name: s, format: swe_agent, paths: [x]}", "set `kind: trajectory`"),
])
def test_trajectory_config_errors_name_the_source(tmp_path: Path, source: str, message: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(f"study: bad\nwarehouse_dir: wh\nsources: [{source}]\n")
    with pytest.raises(ConfigError, match=message):
        load_study(cfg)


def test_interface_syntax_is_shielded_but_identifiers_inside_file_windows_are_not() -> None:
    from depsim_assets.core.agentic.scrubbing import gated_scrub
    from depsim_assets.core.privacy.scrub import Scrubber

    key = b"k" * 32
    window = ("[File: /testbed/contacts.py (3 lines total)]\n1:OWNER = 'dana.whitfield@fastmail.fm'\n"
              "2:PHONE = '+44 20 7946 0321'\n3:\n")
    (command, shown), _ = gated_scrub(["set_cursors 1475 1475", window], ["t", "t"], Scrubber(key=key), key)
    assert command == "set_cursors 1475 1475"
    lines = shown.splitlines()
    assert lines[0] == "[File: /testbed/contacts.py (3 lines total)]" and [line[:2] for line in lines[1:]] == ["1:", "2:", "3:"]
    assert "dana.whitfield" not in shown and "7946 0321" not in shown
