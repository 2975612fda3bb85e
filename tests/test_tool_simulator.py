"""The tool simulator: state-aware recorded answers, the snapshot layer's commands, and its isolation."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import tarfile
from pathlib import Path

import pytest

from depsim_assets.core.agentic.fidelity import leave_one_out, snapshot_loader, summary
from depsim_assets.core.agentic.overlay import Overlay, Snapshot, blob_id
from depsim_assets.core.agentic.readers import read_trajectories
from depsim_assets.core.agentic.recorded_calls import RecordedCalls, RecordedLayer
from depsim_assets.core.agentic.simulator import Session, Simulator, SnapshotLayer, ToolRequest
from depsim_assets.core.agentic.trajectory import Interface, Message, RepoRef, ToolCall, Trajectory
from tests.conftest import REPO

AGENTIC = REPO / "data" / "agentic"
ARCHIVE = AGENTIC / "repos" / "marshmallow-bfd2593.tar.gz"
COMMIT = "bfd2593d4b416122e30cdefe0c72d322ef471611"
V0 = Interface(family="swe_agent", generation="v0", window=100, overlap=2, root="/acme__app", edit="linting")
V1 = Interface(family="swe_agent", generation="v1", window=100, overlap=2, root="/testbed", edit="linting")
APP = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(60))  # 180 lines


def _snapshot(tmp_path: Path, files: dict[str, str]) -> Path:
    path = tmp_path / "repo.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture()
def repo(tmp_path: Path) -> Snapshot:
    return Snapshot.from_archive(_snapshot(tmp_path, {
        "app.py": APP, "README.md": "# acme\nUse app.f1 for one.\n", "pkg/util.py": "import os\nVALUE = 1\n",
        "pkg/data.txt": "value one\nvalue two\n", ".github/ci.yml": "on: push\n"}))


def _run(session: Session, *commands: str, sim: Simulator | None = None) -> list:
    sim = sim or Simulator()
    return [sim.answer(ToolRequest(name=c.split()[0], command=c), session) for c in commands]


def test_windowed_views_follow_each_generations_arithmetic(repo: Snapshot) -> None:
    with Session(None, V0, repo) as s0, Session(None, V1, repo) as s1:
        v0, = _run(s0, "open app.py 120")
        v1, = _run(s1, "open app.py 120")
    # v0 centres CURRENT_LINE = 120 + 50 - 16 = 154, so 104..180 would overflow: constrained to 130 -> lines 81..180
    assert v0.output.splitlines()[:3] == ["[File: /acme__app/app.py (180 lines total)]", "(80 more lines above)", "81:"]
    assert v0.output.splitlines()[-1] == "180:" and v0.provenance == "snapshot"
    # v1 keeps a first line: 119 - 100/6 -> 102, clamped to n - window = 80
    assert v1.output.splitlines()[:2] == ["[File: app.py (180 lines total)]", "(80 more lines above)"]


def test_goto_and_scroll_move_the_window_and_remember_it(repo: Snapshot) -> None:
    with Session(None, V0, repo) as s:
        none, opened, goto, down, up = _run(s, "goto 5", "open app.py", "goto 60", "scroll_down", "scroll_up")
    assert none.output == "No file open. Use the open command first.\n"
    assert opened.output.splitlines()[1] == "1:def f0(x):"
    # goto 60: CURRENT_LINE = 60 + 50 - 16 = 94 -> 44 lines above, window 45..144 (line 60 a sixth of the way down)
    assert goto.output.splitlines()[1:3] == ["(44 more lines above)", "45:"] and "58:def f19(x):" in goto.output
    assert down.output.splitlines()[1] == "(80 more lines above)"  # 94 + 98 = 192, constrained to 180 - 50 = 130
    assert up.output.splitlines()[1] == "1:def f0(x):"  # 130 - 98 = 32, constrained up to the half window, 50


def test_search_and_find_commands_answer_from_the_snapshot(repo: Snapshot) -> None:
    with Session(None, V0, repo) as s:
        find, search_dir, search_file, none, grep, ls = _run(
            s, 'find_file "*.py"', "search_dir value pkg", "search_file return app.py", "search_file zebra app.py",
            "grep -rn VALUE pkg", "ls -a")
    assert find.output == 'Found 2 matches for "*.py" in /acme__app:\n/acme__app/app.py\n/acme__app/pkg/util.py\n'
    assert search_dir.output.splitlines() == ['Found 2 matches for "value" in /acme__app/pkg:', "/acme__app/pkg/data.txt (2 matches)",
                                              'End of matches for "value" in /acme__app/pkg']
    assert search_file.output.startswith('Found 60 matches for "return" in /acme__app/app.py:\nLine 2:    return x + 0\n')
    assert search_file.output.endswith('Line 179:    return x + 59\nEnd of matches for "return" in /acme__app/app.py\n')
    assert none.output == 'No matches found for "zebra" in /acme__app/app.py\n'
    assert grep.output == "pkg/util.py:2:VALUE = 1\n"
    assert ls.output.split() == [".", "..", ".github", "README.md", "app.py", "pkg"]


def test_edits_are_linted_and_a_rejected_edit_changes_nothing(repo: Snapshot) -> None:
    with Session(None, V0, repo) as s:
        _, bad, undefined, good = _run(s, "open app.py", "edit 2:2\nreturn x\nend_of_edit",
                                       "edit 2:2\n    return y\nend_of_edit", "edit 2:2\n    return x * 2\nend_of_edit")
        assert "- E999 IndentationError: expected an indented block" in bad.output and "NOT been applied" in bad.output
        assert "F821 undefined name 'y'" in undefined.output
        assert good.output.endswith("Edit the file again if necessary.\n") and "2:    return x * 2" in good.output
        assert s.overlay.read_text("app.py").splitlines()[1] == "    return x * 2"
        assert s.overlay.status() == [("M", "app.py")]


def test_git_diff_is_computed_against_the_base_with_real_blob_ids(repo: Snapshot) -> None:
    assert blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object` of "hello\n"
    with Session(None, V0, repo) as s:
        *_, diff, status, log = _run(s, "open pkg/util.py", "edit 2:2\nVALUE = 2\nend_of_edit", "create new.py",
                                     "git diff", "git status --porcelain", "git log")
    old, new = "import os\nVALUE = 1\n".encode(), "import os\nVALUE = 2\n".encode()
    assert diff.output.splitlines()[:5] == ["diff --git a/pkg/util.py b/pkg/util.py", f"index {blob_id(old)[:7]}..{blob_id(new)[:7]} 100644",
                                            "--- a/pkg/util.py", "+++ b/pkg/util.py", "@@ -1,2 +1,2 @@"]
    assert "-VALUE = 1" in diff.output and "+VALUE = 2" in diff.output and "new.py" not in diff.output
    assert status.output.splitlines() == [" M pkg/util.py", "?? new.py"]
    assert log.provenance == "unanswered" and "history" in log.detail


def test_str_replace_editor_as_a_function_tool(repo: Snapshot) -> None:
    call = lambda **a: ToolRequest.of(ToolCall(id="x", name="str_replace_editor", arguments=__import__("json").dumps(a)))  # noqa: E731
    with Session(None, V1, repo) as s:
        sim = Simulator()
        view = sim.answer(call(command="view", path="/testbed/pkg/util.py"), s)
        edit = sim.answer(call(command="str_replace", path="/testbed/pkg/util.py", old_str="VALUE = 1", new_str="VALUE = 3"), s)
        again = sim.answer(call(command="view", path="/testbed/pkg/util.py", view_range=[2, 2]), s)
        undo = sim.answer(call(command="undo_edit", path="/testbed/pkg/util.py"), s)
        rel = sim.answer(call(command="view", path="pkg/util.py"), s)
    assert view.output.replace("\r\n", "\n") == "Here's the result of running `cat -n` on /testbed/pkg/util.py:\n     1\timport os\n     2\tVALUE = 1\n     3\t\n"
    assert "has been edited" in edit.output and again.output.replace("\r\n", "\n").endswith("     2\tVALUE = 3\n")
    assert "undone successfully" in undo.output and "not an absolute path" in rel.output


def test_a_read_after_an_edit_never_gets_the_recorded_pre_edit_answer(repo: Snapshot) -> None:
    ref = RepoRef(name="acme/app", base_commit="abc")

    def trajectory(tid: str, commands: list[tuple[str, str]]) -> Trajectory:
        messages = [Message(role="user", content="task")]
        for i, (command, answer) in enumerate(commands):
            messages += [Message(role="assistant", tool_calls=(ToolCall(id=f"{tid}{i}", name=command.split()[0], command=command),)),
                         Message(role="tool", content=answer, tool_call_id=f"{tid}{i}")]
        return Trajectory(id=tid, source=tid, format="test", messages=tuple(messages), repo=ref, interface=V0)

    recorded = RecordedCalls.build([trajectory("a", [("cat README.md", "RECORDED BEFORE EDIT\n"),
                                                      ("rm README.md", ""), ("cat README.md", "RECORDED AFTER RM\n")])])
    sim = Simulator([RecordedLayer(recorded), SnapshotLayer()])
    with Session(ref, V0, repo) as same:
        first, _, second = _run(same, "cat README.md", "rm README.md", "cat README.md", sim=sim)
    assert (first.output, first.provenance) == ("RECORDED BEFORE EDIT\n", "recorded")
    assert (second.output, second.provenance) == ("RECORDED AFTER RM\n", "recorded")
    with Session(ref, V0, repo) as other:  # a different edit: no recorded state matches, the snapshot answers with it
        _, edit, read = _run(other, "open README.md", "edit 1:1\n# changed\nend_of_edit", "cat README.md", sim=sim)
    assert read.provenance == "snapshot" and read.output.startswith("# changed\n") and "RECORDED" not in read.output


def test_the_snapshot_layer_runs_nothing_and_leaves_the_archive_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the snapshot layer must not start a process or open a socket")

    for target, name in ((subprocess, "Popen"), (subprocess, "run"), (os, "system"), (os, "popen"), (socket, "socket"),
                         (socket, "create_connection")):
        monkeypatch.setattr(target, name, refuse)
    before = hashlib.sha256(ARCHIVE.read_bytes()).hexdigest()
    trajectories, _ = read_trajectories(sorted((AGENTIC / "swe-agent").glob("*.traj")),
                                        hints={"commit:marshmallow-code/marshmallow": COMMIT})
    calls = leave_one_out(trajectories, snapshot_loader({("marshmallow-code/marshmallow", COMMIT[:7]): ARCHIVE}), recorded=False)
    assert hashlib.sha256(ARCHIVE.read_bytes()).hexdigest() == before
    reads = summary(calls).filter(call_class="read", provenance="all").row(0, named=True)
    assert reads["calls"] >= 12 and reads["answered"] >= 0.9 and reads["normalised_of_answered"] >= 0.8  # the goal
    execution = calls.filter(call_class="execution")
    assert set(execution["provenance"]) == {"unanswered"} and set(execution["verb"]) >= {"python"}


def test_rollouts_are_isolated_and_clean_up(repo: Snapshot) -> None:
    a, b = Overlay(repo), Overlay(repo)
    a.write_text("app.py", "changed\n")
    assert b.read_text("app.py") == APP and repo.files["app.py"] == APP.encode()
    a.close()
    assert not a.root.exists()
    b.close()
