"""`dagster dev` (webserver + daemon) on 127.0.0.1 for tests that act as the UI does, over GraphQL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import REPO


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DagsterDev:
    """Start with `with DagsterDev(config, log) as ui:`; stopped by process group (dagster dev's children too)."""

    def __init__(self, config: Path, log: Path, timeout: float = 180, daemon_tick: float | None = None) -> None:
        self.config, self.log, self.timeout, self.daemon_tick = config, log, timeout, daemon_tick
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> DagsterDev:
        env = {**os.environ, "DEPSIM_CONFIG": str(self.config)}
        if self.daemon_tick:  # see tests/daemon_tick/sitecustomize.py
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "tests" / "daemon_tick"), env.get("PYTHONPATH")]))
            env["DEPSIM_TEST_DAEMON_TICK"] = str(self.daemon_tick)
        # The shipped workspace.yaml's first location, alone: the demo studies' locations would be backfilled too.
        workspace = self.log.with_name("workspace.yaml")
        workspace.write_text("load_from:\n  - python_module: {module_name: depsim_assets.definitions, location_name: depsim}\n")
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dagster", "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(self.port)],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.time() + self.timeout
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/server_info", timeout=2) as r:
                    if "dagster_webserver_version" in json.load(r):
                        break
            except OSError:
                time.sleep(1)
        else:
            self.__exit__()
            raise AssertionError(f"dagster dev did not come up; its log:\n{self.log.read_text()[-3000:]}")
        # The code location loads after the server answers: wait until it serves the asset graph.
        while time.time() < deadline and not self.graphql("{ assetNodes { id } }").get("assetNodes"):
            time.sleep(1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/graphql", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            answer = json.load(r)
        if answer.get("errors"):
            raise AssertionError(f"GraphQL errors: {answer['errors']}")
        return answer.get("data") or {}
