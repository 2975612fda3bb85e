"""Ingest a 1.3M-conversation input built by replicating real conversations; print throughput and peak RSS.

Usage: python benchmarks/ingest.py [--conversations 1300000] [--source PATH]
The input is OpenAI-chat JSONL made from the shipped hh-rlhf sample (real multi-turn traffic), each
copy with its own id; it is written to a temp dir and removed afterwards.
"""

import argparse
import gzip
import resource
import sys
import tempfile
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from depsim_assets.core.config import IngestConfig, SourceConfig  # noqa: E402
from depsim_assets.core.formats import parse_hh_transcript  # noqa: E402
from depsim_assets.core.ingest import ingest  # noqa: E402


def build_input(target: int, src: Path, out: Path) -> int:
    convs = []
    with gzip.open(src, "rb") as fh:
        for line in fh:
            rec = orjson.loads(line)
            for side in ("chosen", "rejected"):
                msgs = parse_hh_transcript(rec[side], 10**9)
                convs.append([{"role": m["role"], "content": m["content"]} for m in msgs])
    written = 0
    with open(out, "wb") as fh:
        while written < target:
            for msgs in convs:
                if written >= target:
                    break
                fh.write(orjson.dumps({"id": f"c{written}", "consent": "model_improvement", "messages": msgs}) + b"\n")
                written += 1
    return written


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=int, default=1_300_000)
    ap.add_argument("--source", type=Path, default=REPO / "data/demo/hh_rlhf/harmless_base_test_sample.jsonl.gz")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "traffic.jsonl"
        t0 = time.perf_counter()
        n = build_input(args.conversations, args.source, path)
        print(f"built {n:,} conversations ({path.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - t0:.1f}s")
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        result = ingest([SourceConfig(name="bench", paths=[str(path)], format="openai_chat")], Path(tmp), IngestConfig())
        elapsed = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"ingested {len(result.conversations):,} conversations, quarantined {len(result.quarantine):,}")
        print(f"elapsed {elapsed:.1f}s  ->  {len(result.conversations) / elapsed:,.0f} conversations/s")
        print(f"peak RSS {peak / 1024:.0f} MiB (before ingest: {rss_before / 1024:.0f} MiB)")
        print(f"messages {result.conversations['messages'].list.len().sum():,}; frame size {result.conversations.estimated_size() / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
