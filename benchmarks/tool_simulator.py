"""Tool-simulator fidelity, offline: leave-one-trajectory-out over the marshmallow-1867 SWE-agent runs.

For every tool call of the held-out trajectory its recorded observation is hidden and answered by
(a) the snapshot layer alone and (b) recorded + snapshot (recorded built from the other seven). The
eight runs are near-copies of one demonstration, so (b) mostly measures the recorded layer; (a) is the
figure that says whether the repository snapshot answers like the real environment.

Usage: python benchmarks/tool_simulator.py [--data ../shared/data/agentic] [--mismatches]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from depsim_assets.core.agentic.fidelity import leave_one_out, snapshot_loader, summary  # noqa: E402
from depsim_assets.core.agentic.readers import read_trajectories  # noqa: E402

COMMIT = "bfd2593d4b416122e30cdefe0c72d322ef471611"  # the SWE-bench base commit of marshmallow-1867 (data README)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "agentic")
    parser.add_argument("--mismatches", action="store_true", help="list the calls answered differently")
    args = parser.parse_args()
    paths = sorted((args.data / "swe-agent").glob("*marshmallow-1867*.traj"))
    hints = {"commit:marshmallow-code/marshmallow": COMMIT}
    trajectories, quarantine = read_trajectories(paths, hints=hints)
    print(f"{len(paths)} files, {len(trajectories)} trajectories, {sum(len(t.calls()) for t in trajectories)} calls, "
          f"{len(quarantine)} quarantined")
    load = snapshot_loader({("marshmallow-code/marshmallow", COMMIT[:7]): args.data / "repos" / "marshmallow-bfd2593.tar.gz"})
    pl.Config.set_tbl_rows(50)
    pl.Config.set_float_precision(3)
    for label, recorded in (("(a) snapshot layer alone", False), ("(b) recorded + snapshot", True)):
        calls = leave_one_out(trajectories, load, recorded=recorded)
        print(f"\n{label}")
        print(summary(calls))
        if args.mismatches:
            print(calls.filter(pl.col("answered") & ~pl.col("normalised")).select("trajectory", "call", "verb", "provenance"))
            print(calls.filter(~pl.col("answered")).group_by("verb").len())


if __name__ == "__main__":
    main()
