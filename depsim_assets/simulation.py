"""Simulation stage: replay prefixes (per study), then per-release regenerated completions."""

import dagster as dg
import polars as pl

from depsim_assets.core.prefixes import build_prefixes, sample_prefixes, snapshot_id
from depsim_assets.metadata import md_table
from depsim_resources.study import StudyResource

GROUP = "simulation"


@dg.asset(
    group_name=GROUP,
    kinds={"polars", "duckdb"},
    description="Each de-identified conversation cut just before its final assistant turn (or every assistant "
    "turn), with the original response(s) kept; an hh-rlhf pair is one prefix with both responses; eval-set "
    "records are prefixes as they are. Sampled per the config's target, with weights, and stamped with a snapshot id.",
)
def replay_prefixes(study: StudyResource, deidentified_conversations: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    cfg = study.load().config.prefixes
    prefixes = build_prefixes(deidentified_conversations, cfg.mode)
    sample, info = sample_prefixes(prefixes, cfg)
    snap = snapshot_id(sample)
    sample = sample.with_columns(snapshot_id=pl.lit(snap))
    return dg.Output(
        sample,
        metadata={
            "prefixes": len(sample),
            "snapshot_id": snap,
            "sampling": dg.MetadataValue.json(info),
            "weight_sum": float(sample["weight"].sum()),
            "by_source": md_table(sample.group_by("source").agg(pl.len().alias("prefixes"), pl.col("weight").sum()).sort("source")),
        },
    )
