"""Ingest a 1.3M-conversation input built by replicating real conversations; print throughput and peak RSS.

Usage: python benchmarks/ingest.py [--conversations 1300000] [--source PATH]

The input is OpenAI-chat JSONL made from the shipped hh-rlhf sample (real multi-turn traffic), each copy
with its own id, written to a temp dir and removed afterwards. Ingestion runs in a fresh process, as the
`raw_traffic` asset does it (records streamed to a Parquet spool, quarantine kept), so its peak RSS is
ingestion's alone, not the input builder's; the reconciliation recount is timed apart. De-identification
is not part of this figure (see benchmarks/privacy.py and benchmarks/lineage.py).
"""

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from depsim_assets.core.formats import parse_hh_transcript  # noqa: E402


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


def measure(path: Path) -> dict[str, float]:
    """In a fresh process: stream-ingest `path` to a spool like the asset, then the reconciliation."""
    from depsim_assets.core.config import IngestConfig, SourceConfig
    from depsim_assets.core.ingest import IngestTally, count_source_records, ingest_batches, reconcile
    from depsim_assets.core.storage import Warehouse

    sources = [SourceConfig(name="bench", paths=[str(path)], format="openai_chat")]
    tally = IngestTally()
    t0 = time.perf_counter()
    spooled = Warehouse(path.parent / "wh").spool(ingest_batches(sources, path.parent, IngestConfig(), tally))
    ingest_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    import polars as pl

    conversations = pl.scan_parquet(spooled.path).select("source", "source_file", "line_no").collect()
    balanced = reconcile(count_source_records(sources, path.parent), conversations, tally.quarantined())["balanced"].all()
    reconcile_s = time.perf_counter() - t0
    return {"conversations": spooled.rows, "quarantined": len(tally.quarantined()), "ingest_s": ingest_s,
            "reconcile_s": reconcile_s, "balanced": bool(balanced), "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=int, default=1_300_000)
    ap.add_argument("--source", type=Path, default=REPO / "data/demo/hh_rlhf/harmless_base_test_sample.jsonl.gz")
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "traffic.jsonl"
        t0 = time.perf_counter()
        n = build_input(args.conversations, args.source, path)
        print(f"built {n:,} conversations ({path.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - t0:.1f}s")
        out = subprocess.run([sys.executable, __file__, "--measure", str(path)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"ingested {r['conversations']:,} conversations, quarantined {r['quarantined']:,}")
        print(f"read + normalize + quarantine + store: {r['ingest_s']:.1f}s -> {r['conversations'] / r['ingest_s']:,.0f} conversations/s")
        print(f"reconciliation recount: {r['reconcile_s']:.1f}s (balanced: {r['balanced']})")
        print(f"peak RSS of the ingesting process: {r['peak_rss_mib']:,.0f} MiB")


if __name__ == "__main__":
    main()
