"""Loaded by every Python process of a test's `dagster dev` (its PYTHONPATH starts here): shortens the daemons' tick.

Dagster's backfill daemon advances a backfill one dependency wave per `DEFAULT_DAEMON_INTERVAL_SECONDS` (30 s, a
module constant with no setting), so a whole-lineage backfill spends most of its time waiting. The daemon, the
executor and the runs are Dagster's own; only the wait between ticks is shorter (DEPSIM_TEST_DAEMON_TICK seconds).
"""

import importlib.abc
import importlib.machinery
import os
import sys

_MODULE = "dagster._daemon.controller"
_TICK = float(os.environ.get("DEPSIM_TEST_DAEMON_TICK", "0") or 0)


class _Tick(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):  # noqa: ANN001, ANN201 - the importlib protocol
        if name != _MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):  # noqa: ANN001, ANN202
            run(module)
            module.DEFAULT_DAEMON_INTERVAL_SECONDS = _TICK

        spec.loader.exec_module = exec_module
        return spec


if _TICK > 0:
    sys.meta_path.insert(0, _Tick())
