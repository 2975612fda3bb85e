"""Forecasting stage: per-release rate forecasts, and the paired comparison with the incumbent."""

import dagster as dg
import polars as pl

from depsim_assets.core.forecast import compare
from depsim_assets.core.forecast import rate_forecasts as build_rate_forecasts
from depsim_assets.core.ledger import append as append_ledger
from depsim_assets.core.observed import filter_prefix_ids
from depsim_assets.core.prefixes import THIN_PREFIX_COLUMNS
from depsim_assets.metadata import rates_plot
from depsim_assets.metadata import table as table_md
from depsim_assets.partitions import WITH_INCUMBENT, release_partitions
from depsim_resources.study import StudyResource

GROUP = "forecasting"


@dg.asset(
    group_name=GROUP,
    partitions_def=release_partitions,
    kinds={"polars", "parquet"},
    description="Per category, over eligible prefixes only: n, flagged, rate per 100k with Clopper-Pearson and "
    "Jeffreys intervals, an upper bound when nothing was flagged, the detection floor given n and the grader's "
    "sensitivity, the sampling-weighted (Hájek) rate with a bootstrap-by-conversation interval where needed, "
    "and a grader-corrected rate from the leave-one-release-out calibration (or the reason it was refused).",
)
def rate_forecasts(
    context: dg.AssetExecutionContext, study: StudyResource, graded_labels: pl.DataFrame, grader_calibration: pl.DataFrame,
    replay_prefixes: pl.LazyFrame,
) -> dg.Output[pl.DataFrame]:
    cfg = study.load().config.forecasting
    prefixes = replay_prefixes.select(THIN_PREFIX_COLUMNS).collect()
    keep = filter_prefix_ids(prefixes, cfg.prefix_filter)
    calibration = grader_calibration.filter(pl.col("excluded_release") == context.partition_key)
    table = build_rate_forecasts(graded_labels.filter(pl.col("prefix_id").is_in(keep)), prefixes, calibration, cfg)
    shown = table.select("category", "rate_per_100k", "cp_lo_per_100k", "cp_hi_per_100k", "corrected_rate_per_100k", "n_eligible",
                         "flagged", "grader_id") if len(table) and "grader_id" in table.columns else table
    return dg.Output(table, metadata={"categories": len(table), "forecast": table_md(shown)})


def _record(study: StudyResource, release: str, record: pl.DataFrame, labels: pl.DataFrame, config_hash: str) -> str:
    """Append the forecast of record to the hash-chained ledger (never rewritten; re-materializing appends)."""
    versions = dict(labels.filter(pl.col("release") == release).select("grader_id", "grader_version").unique().iter_rows())
    return append_ledger(study.load().ledger_path, release, record, config_hash, versions)


@dg.asset(
    group_name=GROUP,
    partitions_def=release_partitions,
    ins={name: dg.AssetIn(partition_mapping=WITH_INCUMBENT) for name in ("graded_labels", "regenerated_completions", "rate_forecasts")},
    kinds={"polars", "parquet"},
    description="The release against its incumbent on the same prefixes (same snapshot id, else it fails): per "
    "category the rate ratio with an interval and an exact paired test on discordant pairs (McNemar), "
    "Benjamini-Hochberg across categories, and a predicted direction (up, down, no detectable change). Reads the "
    "release's and its incumbent's partitions (declared: the incumbent's labels are materialized first), and "
    "appends the forecast of record to the hash-chained ledger.",
)
def release_comparison(
    context: dg.AssetExecutionContext, study: StudyResource, graded_labels: pl.LazyFrame, regenerated_completions: pl.LazyFrame,
    rate_forecasts: pl.LazyFrame, replay_prefixes: pl.LazyFrame,
) -> dg.Output[pl.DataFrame]:
    s = study.load()
    release = s.config.release(context.partition_key)
    labels = graded_labels.collect()
    snaps = regenerated_completions.select("release", "snapshot_id").collect().group_by("release").agg(pl.col("snapshot_id").unique())
    forecasts = rate_forecasts.collect()
    own = forecasts.filter(pl.col("release") == release.name).drop("release")
    if release.incumbent is None:
        head = _record(study, release.name, own, labels, s.config_hash)
        return dg.Output(pl.DataFrame(schema={"category": pl.String}),
                         metadata={"note": "no incumbent declared: nothing to compare", "ledger_head": head})
    prefixes = replay_prefixes.select(THIN_PREFIX_COLUMNS).collect()
    if prefixes.is_empty():
        return dg.Output(pl.DataFrame(schema={"category": pl.String}),
                         metadata={"note": "no replay prefixes (no consented conversation was ingested): nothing to compare"})
    found = {r: sorted(x for x in ids if x) for r, ids in snaps.iter_rows()}
    if release.incumbent not in found or labels.filter(pl.col("release") == release.incumbent).is_empty():
        raise ValueError(f"incumbent '{release.incumbent}' has no graded completions: materialize its partition first")
    if found.get(release.name) != found.get(release.incumbent):
        raise ValueError(
            f"'{release.name}' and its incumbent '{release.incumbent}' were run on different prefix snapshots "
            f"({found.get(release.name)} vs {found.get(release.incumbent)}): re-materialize the older one on the current replay_prefixes"
        )
    cfg = s.config.forecasting
    labels = labels.filter(pl.col("prefix_id").is_in(filter_prefix_ids(prefixes, cfg.prefix_filter)))
    table = compare(labels.filter(pl.col("release") == release.name), labels.filter(pl.col("release") == release.incumbent), cfg)
    # The forecast of record: this release's rates with its direction versus the incumbent.
    if "direction" in table.columns:
        own = own.join(table.select("category", "direction", "rate_ratio", "ratio_lo", "ratio_hi", "p_adjusted_bh"), on="category", how="left")
    head = _record(study, release.name, own.with_columns(incumbent=pl.lit(release.incumbent)), labels, s.config_hash)
    plot_rows = forecasts.select("release", "category", rate="rate_per_100k", lo="cp_lo_per_100k", hi="cp_hi_per_100k").drop_nulls()
    return dg.Output(
        table.with_columns(incumbent=pl.lit(release.incumbent)),
        metadata={
            "incumbent": release.incumbent, "ledger_head": head, "snapshot_id": found[release.name][0] if found[release.name] else "",
            "comparison": table_md(table.select("category", "direction", "candidate_rate_per_100k", "incumbent_rate_per_100k", "rate_ratio",
                                                "ratio_lo", "ratio_hi", "p_adjusted_bh", "pairs") if "pairs" in table.columns else table),
            "rates_plot": rates_plot(plot_rows, f"{release.name} vs {release.incumbent}") if len(plot_rows) else dg.MetadataValue.md("_no rates_"),
        },
    )
