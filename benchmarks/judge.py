"""Judge cost per graded completion, single-category vs multi-category mode, for the full shipped taxonomy,
and the agreement between the two modes' labels on a scripted fixture (the fake server's deterministic judge).

Usage: python benchmarks/judge.py [--completions 200]
The real-server figures (malformed share per output mode, wall time) come from scripts/live_check.py.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from depsim_assets.core.config import DispatchConfig, GraderConfig  # noqa: E402
from depsim_assets.core.graders.judge import JudgeGrader  # noqa: E402
from depsim_assets.core.graders.taxonomy import load_taxonomy  # noqa: E402
from depsim_assets.core.store import Store  # noqa: E402
from depsim_resources.model_endpoint import ModelEndpointResource  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402


def fixture(n: int, categories: list[str], seed: int = 0) -> pl.DataFrame:
    """Completions tagged for a random category now and then (the fake judge flags exactly the tagged one)."""
    rng = random.Random(seed)
    texts = [f"Release {seed} answer number {i}. " + (f"UNSAFE:{rng.choice(categories)}" if rng.random() < 0.2 else "Nothing remarkable.") for i in range(n)]
    return pl.DataFrame({
        "prefix_id": [f"p{i}#1" for i in range(n)], "sample_index": [0] * n, "conversation_id": [f"p{i}" for i in range(n)],
        "attributes": [None] * n, "response_text": texts, "reasoning": [None] * n, "tool_calls": [None] * n,
        "messages": [[{"role": "user", "content": f"Please help me with task {i}.", "tool_calls": None, "tool_call_id": None, "name": None}]
                     for i in range(n)],
    })


def run(mode: str, releases: list[pl.DataFrame], categories: list, server: FakeOpenAI) -> tuple[pl.DataFrame, dict[str, float]]:
    """Grade every release's completions (same prefixes) with one judge and one store, as a study does."""
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "s") as store:
        cfg = GraderConfig(id=f"judge_{mode}", kind="llm_judge", model="judge-model", base_url=server.base_url, judge_mode=mode)  # type: ignore[arg-type]
        judge = JudgeGrader(cfg, DispatchConfig(concurrency=16), store, ModelEndpointResource())
        labels = pl.concat([judge.grade(items, categories, f"r{i}").with_columns(release=pl.lit(f"r{i}")) for i, items in enumerate(releases)])
        calls = store.all()
    n = sum(len(r) for r in releases)
    return labels, {"calls_per_completion": len(calls) / n,
                    "prompt_tokens_per_completion": calls["prompt_tokens"].sum() / n,
                    "completion_tokens_per_completion": calls["completion_tokens"].sum() / n}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--completions", type=int, default=200)
    args = ap.parse_args()
    categories = [c for c in load_taxonomy({}).categories if "llm_judge" in c.graders]
    completion_ids = [c.id for c in categories if c.target == "completion"]
    print(f"{len(categories)} judge categories ({sum(c.target == 'request' for c in categories)} request-level, judged once per prefix), "
          f"{args.completions} prefixes")
    print(f"{'releases':>8} {'mode':<8}{'calls/completion':>18}{'prompt tok/completion':>24}{'completion tok/completion':>28}")
    server = FakeOpenAI().start()
    try:
        for n_releases in (1, 2, 5):
            releases = [fixture(args.completions, completion_ids, seed=r) for r in range(n_releases)]
            for name in ("single", "multi"):
                labels, f = run(name, releases, categories, server)
                print(f"{n_releases:>8} {name:<8}{f['calls_per_completion']:>18.2f}{f['prompt_tokens_per_completion']:>24,.0f}"
                      f"{f['completion_tokens_per_completion']:>28,.0f}")
                if n_releases == 2:
                    single, multi = (labels, None) if name == "single" else (single, labels)
    finally:
        server.stop()
    assert multi is not None
    keys = ["release", "prefix_id", "sample_index", "category"]
    joined = single.select(*keys, "flagged").join(multi.select(*keys, flagged_multi="flagged"), on=keys)
    agree = (joined["flagged"] == joined["flagged_multi"]).mean()
    print(f"agreement single vs multi: {agree:.4f} on {len(joined)} labels; failed labels: single {int((single['status'] != 'ok').sum())}, "
          f"multi {int((multi['status'] != 'ok').sum())}")


if __name__ == "__main__":
    main()
