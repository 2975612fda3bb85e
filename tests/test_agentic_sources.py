"""Trajectory readers and agentic prefixes: real SWE-agent files, OpenAI tool records, and every rejection."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from depsim_assets.core.agentic.prefix import cut, cut_points
from depsim_assets.core.agentic.readers import READERS, read_trajectories
from tests.conftest import REPO, shared

SHIPPED = REPO / "data" / "agentic" / "swe-agent"
COMMIT = "bfd2593d4b416122e30cdefe0c72d322ef471611"


def test_every_real_swe_agent_file_is_read_with_its_calls_linked() -> None:
    paths = sorted(shared("agentic/swe-agent").glob("*.traj"))
    trajectories, quarantine = read_trajectories(paths)
    assert quarantine == [] and len(trajectories) == len(paths) == 22
    for t, path in zip(trajectories, paths):
        doc = json.loads(path.read_text())
        steps = [s for s in doc.get("trajectory", []) if s.get("action", "").strip()]
        calls = t.calls()
        # calls are the steps, in order, each with its step's raw output; hand-edited demonstrations drop or
        # add a step here and there (and a history may end before the final `submit`)
        remaining = iter(steps)
        for _, call, output in calls if steps else []:
            step = next(s for s in remaining if s["action"].strip() == call.command.strip())
            assert output == step["observation"]
        assert not steps or len(calls) >= len(steps) - 2
        answered = [m.tool_call_id for m in t.messages if m.role == "tool"]
        assert len(answered) == len(set(answered)), "reused call ids are made unique"


def test_swe_agent_interfaces_and_tool_definitions() -> None:
    by_flavour = {p.name.split("__")[3]: p for p in SHIPPED.glob("*.traj")}
    (t,), _ = read_trajectories([by_flavour["function_calling"]])
    assert (t.interface.generation, t.interface.edit, t.interface.tty, t.interface.root) == ("v1", "linting", True, "/testbed")
    assert t.repo.name == "marshmallow-code/marshmallow" and t.repo.base_commit == COMMIT
    tools = {d["function"]["name"]: d["function"] for d in t.tools}
    assert {"open", "edit", "find_file", "bash", "submit"} <= set(tools)
    assert tools["open"]["parameters"]["required"] == ["path"]
    assert tools["goto"]["parameters"]["properties"]["line_number"]["type"] == "integer"
    (cursors,), _ = read_trajectories([by_flavour["default_sys-env_cursors_window100"]],
                                      hints={"commit:marshmallow-code/marshmallow": COMMIT})
    # v0 files keep no config: the window is what the system prompt told the agent, the commit comes from the study
    assert (cursors.interface.generation, cursors.interface.cursors, cursors.interface.window) == ("v0", True, 200)
    assert cursors.repo.base_commit == COMMIT and cursors.interface.root == "/marshmallow-code__marshmallow"


def _write(path: Path, records: list) -> Path:
    path.write_bytes(b"\n".join(r if isinstance(r, bytes) else orjson.dumps(r) for r in records) + b"\n")
    return path


TOOLS = [{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}]


def _record(rid: str, **changes) -> dict:
    messages = [
        {"role": "system", "content": "You are a coding agent."},
        {"role": "user", "content": "Fix the bug in app.py"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\": \"app.py\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "print('hi')"},
        {"role": "assistant", "content": "Done."},
    ]
    record = {"id": rid, "messages": messages, "tools": TOOLS, "repo": {"name": "acme/app", "base_commit": "abc1234"}}
    for index, message in changes.items():
        record["messages"][int(index.removeprefix("m"))] = message
    return record


def test_openai_tool_records_keep_tools_and_link_legacy_function_calls(tmp_path: Path) -> None:
    legacy = {"id": "legacy", "functions": [{"name": "lookup", "parameters": {"type": "object"}}], "messages": [
        {"role": "user", "content": "Weather in Lisbon?"},
        {"role": "assistant", "content": None, "function_call": {"name": "lookup", "arguments": "{\"city\": \"Lisbon\"}"}},
        {"role": "function", "name": "lookup", "content": "21C"},
        {"role": "assistant", "content": "21C in Lisbon."},
    ]}
    trajectories, quarantine = read_trajectories([_write(tmp_path / "t.jsonl", [_record("ok"), legacy])])
    assert quarantine == []
    ok, old = trajectories
    assert ok.tools == tuple(TOOLS) and ok.repo.name == "acme/app"
    assert [(c.name, obs) for _, c, obs in ok.calls()] == [("read_file", "print('hi')")]
    assert old.tools[0]["function"]["name"] == "lookup"
    assert [(c.name, c.arguments, obs) for _, c, obs in old.calls()] == [("lookup", "{\"city\": \"Lisbon\"}", "21C")]


@pytest.mark.parametrize(("change", "reason"), [
    ({"m3": {"role": "tool", "tool_call_id": "nope", "content": "x"}}, "unknown_tool_call_id"),
    ({"m3": {"role": "tool", "content": "x"}}, "missing_tool_call_id"),
    ({"m2": {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "read_file", "arguments": "{path: app.py"}}]}}, "invalid_tool_arguments"),
    ({"m4": {"role": "robot", "content": "beep"}}, "unknown_role"),
])
def test_each_broken_record_is_quarantined_with_its_reason_and_counts_reconcile(tmp_path: Path, change: dict, reason: str) -> None:
    path = _write(tmp_path / "t.jsonl", [_record("good"), _record("bad", **change), b"{not json"])
    kept, quarantine = read_trajectories([path])
    assert [t.id for t in kept] == ["good"]
    assert sorted(q["reason"] for q in quarantine) == sorted([reason, "not_a_trajectory"])
    assert len(kept) + len(quarantine) == 3  # records in = trajectories + quarantined


def test_a_swe_agent_tool_message_must_answer_an_existing_call(tmp_path: Path) -> None:
    doc = json.loads(next(SHIPPED.glob("*__function_calling__install*")).read_text())
    doc["history"][3]["tool_call_ids"] = ["call_that_never_was"]
    (tmp_path / "bad.traj").write_text(json.dumps(doc))
    kept, quarantine = read_trajectories([tmp_path / "bad.traj"])
    assert kept == [] and quarantine[0]["reason"] == "unknown_tool_call_id" and "call_that_never_was" in quarantine[0]["detail"]


def test_readers_are_a_registry_of_small_classes() -> None:
    assert set(READERS) == {"swe_agent", "openai_tools"}
    assert all(hasattr(r, "accepts") and hasattr(r, "read") for r in READERS.values())


def test_prefixes_cut_before_assistant_steps_with_the_original_as_reference() -> None:
    (t,), _ = read_trajectories([next(SHIPPED.glob("*__function_calling__install*"))])
    points = cut_points(t)
    (final,) = cut(t, "final")
    assert final.step == final.steps == len(points) == 11
    assert final.reference[0].role == "assistant" and final.reference[0].tool_calls[0].name == "submit"
    assert final.messages[-1].role == "tool" and final.tools == t.tools and final.repo == t.repo
    every = cut(t, "every")
    assert [p.step for p in every] == list(range(1, 12))
    assert every[0].messages[-1].role == "user"  # the first step sees only the task
    a, b = cut(t, "sample", per_trajectory=3, seed=7), cut(t, "sample", per_trajectory=3, seed=7)
    assert [p.prefix_id for p in a] == [p.prefix_id for p in b] and len(a) == 3
    assert {p.step for p in cut(t, "sample", per_trajectory=3, seed=8)} != {p.step for p in a} or len(points) <= 3


def test_a_trajectory_configured_as_traffic_is_one_row_saying_what_to_declare(tmp_path: Path) -> None:
    from depsim_assets.core.config import IngestConfig, SourceConfig
    from depsim_assets.core.ingest import ingest

    files = sorted(SHIPPED.glob("*.traj"))
    source = SourceConfig(name="t", paths=[str(p) for p in files], consent="public")
    result = ingest([source], tmp_path, IngestConfig())
    assert len(result.quarantine) == len(files) == 8  # one row per file, not one per line of pretty-printed JSON
    assert result.quarantine["detail"].str.contains("declare the source `kind: trajectory`").all()
