"""The hh-rlhf lineage at paper scale: each stage in a fresh process, its wall time and peak RSS.

Usage: python benchmarks/lineage.py [--pairs 650000] [--source PATH] [--keep DIR]

The input is hh-rlhf (chosen/rejected pairs = 2 conversations each) built from the public harmless-base
test split in ../shared/data; every copy is made textually unique by a per-copy name, number and token
written into its first human turn (the script reports how many texts are unique). The study has two
releases on recorded completions (`rejected` as incumbent, `chosen` as candidate) and the rules graders:
no model is called, so the figures are depsim's own cost. Ingestion, consent and de-identification are
one streamed stage (nothing raw is stored); the time spent scrubbing and gating inside it is reported apart.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data" / "traffic" / "hh-rlhf-harmless-base" / "test.jsonl.gz"
NAMES = ["Avery Quinlan", "Noor Haddad", "Tomasz Wrona", "Keiko Arai", "Bruno Esteves", "Ifeoma Obi", "Lars Holm", "Mei Lin"]
STAGES: list[tuple[str, list[str], str | None]] = [
    ("traffic (ingest, consent, de-id, checks)", ["deidentified_conversations", "privacy_report", "traffic_manifest", "traffic_quarantine"], None),
    ("prefixes", ["replay_prefixes"], None),
    ("completions hh-rejected", ["regenerated_completions"], "hh-rejected"),
    ("completions hh-chosen", ["regenerated_completions"], "hh-chosen"),
    ("labels hh-rejected", ["graded_labels"], "hh-rejected"),
    ("labels hh-chosen", ["graded_labels"], "hh-chosen"),
    ("calibration", ["grader_calibration"], None),
    ("forecasts hh-rejected", ["rate_forecasts", "observed_production_rates"], "hh-rejected"),
    ("forecasts hh-chosen", ["rate_forecasts", "observed_production_rates"], "hh-chosen"),
    ("comparison hh-rejected", ["release_comparison"], "hh-rejected"),
    ("comparison hh-chosen", ["release_comparison"], "hh-chosen"),
]
STUDY = """
study: hh_scale
warehouse_dir: {wh}
sources: [{{name: hh, kind: traffic, format: hh_rlhf, consent: public, paths: ["{data}"]}}]
releases:
  - {{name: hh-rejected, backend: recorded, model: rejected, recorded: {{reference_variant: rejected}}}}
  - {{name: hh-chosen, backend: recorded, model: chosen, incumbent: hh-rejected, recorded: {{reference_variant: chosen}}}}
graders:
  - {{id: rules, kind: rules, categories: [refusal, pii_disclosure, eval_awareness]}}
"""


def build_input(pairs: int, src: Path, out: Path) -> tuple[int, int]:
    """Write `pairs` hh-rlhf records; returns (records, distinct first human turns)."""
    with gzip.open(src, "rb") as fh:
        records = [orjson.loads(line) for line in fh]
    seen: set[int] = set()
    with open(out, "wb") as fh:
        for i in range(pairs):
            rec = records[i % len(records)]
            tag = f"I am {NAMES[i % len(NAMES)]}, customer {100000 + i}, ref tok{i:07x}. "
            chosen = rec["chosen"].replace("\n\nHuman: ", "\n\nHuman: " + tag, 1)
            rejected = rec["rejected"].replace("\n\nHuman: ", "\n\nHuman: " + tag, 1)
            seen.add(hash(chosen.split("\n\nAssistant:", 1)[0]))
            fh.write(orjson.dumps({"chosen": chosen, "rejected": rejected}) + b"\n")
    return pairs, len(seen)


def run_stage(config: Path, assets: list[str], partition: str | None) -> dict[str, float]:
    """In this (fresh) process: materialize the stage; print wall time and this process's peak RSS."""
    import dagster as dg

    from depsim.runner import console_config
    from depsim_assets.core.config import load_study
    from depsim_assets.definitions import CHECKS, build_resources, study_assets

    study = load_study(config)
    with dg.DagsterInstance.ephemeral() as instance:
        t0 = time.perf_counter()
        result = dg.materialize([*study_assets(study), *CHECKS], instance=instance, resources=build_resources(str(config)),
                                selection=dg.AssetSelection.keys(*assets), partition_key=partition, run_config=console_config(),
                                raise_on_error=False)
        elapsed = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mats = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()]
    deid = [m.metadata["deidentify_seconds"].value for m in mats if "deidentify_seconds" in m.metadata]
    return {"ok": result.success, "seconds": elapsed, "peak_rss_mib": rss, "deidentify_seconds": float(deid[0]) if deid else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=650_000)
    ap.add_argument("--source", type=Path, default=SHARED)
    ap.add_argument("--keep", type=Path, help="work in this directory and keep it")
    ap.add_argument("--stage", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stage is not None:
        _, assets, partition = STAGES[args.stage]
        print(json.dumps(run_stage(args.config, assets, partition)))
        return
    work = args.keep or Path(tempfile.mkdtemp(prefix="depsim-lineage-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "hh.jsonl"
    t0 = time.perf_counter()
    n, unique = build_input(args.pairs, args.source, data)
    print(f"input: {n:,} pairs = {2 * n:,} conversations, {data.stat().st_size / 1e9:.2f} GB, {unique:,} distinct first "
          f"human turns (built in {time.perf_counter() - t0:.0f}s)")
    config = work / "study.yaml"
    config.write_text(STUDY.format(wh=work / "wh", data=data))
    env = {**os.environ, "GX_ANALYTICS_ENABLED": "false", "DEPSIM_PRIVACY_KEY": os.environ.get("DEPSIM_PRIVACY_KEY", "bench-key"),
           "PYTHONPATH": str(REPO)}
    total = deid = 0.0
    print(f"{'stage':<40}{'wall s':>9}{'peak RSS MiB':>14}")
    for i, (name, _, _) in enumerate(STAGES):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, __file__, "--stage", str(i), "--config", str(config)], env=env,
                             capture_output=True, text=True)
        wall = time.perf_counter() - t0
        try:
            figures = json.loads(out.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            print(f"{name}: failed\n{out.stderr[-3000:]}")
            sys.exit(1)
        status = "" if figures["ok"] else "  FAILED"
        note = f"  (de-identification and gate: {figures['deidentify_seconds']:.0f}s of it)" if figures["deidentify_seconds"] else ""
        print(f"{name:<40}{wall:>9.1f}{figures['peak_rss_mib']:>14,.0f}{status}{note}", flush=True)
        total += wall
        deid += figures["deidentify_seconds"]
    print(f"end to end {total:.0f}s; excluding de-identification {total - deid:.0f}s (process start included in each stage)")


if __name__ == "__main__":
    main()
