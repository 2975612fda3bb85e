"""Forecasting stage: per-release rate forecasts, and the paired comparison with the incumbent."""

import datetime as dt

import dagster as dg
import polars as pl

from depsim_assets.core.forecast import compare
from depsim_assets.core.forecast import rate_forecasts as build_rate_forecasts
from depsim_assets.core.ledger import append as append_ledger
from depsim_assets.core.observed import filter_prefix_ids
from depsim_assets.core.prediction import history, predict
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
    "Jeffreys intervals, an upper bound when nothing was flagged, the detection floor given the effective n "
    "(weights and clustering) and the grader's sensitivity, the sampling-weighted (Hájek) rate with a "
    "Korn-Graubard interval (strata, conversations), and a grader-corrected rate (this release's flag-stratified "
    "review where people labelled one, else sensitivity and specificity from the leave-one-release-out "
    "calibration; or the reason it was refused). The forecast of record is the corrected rate where it exists, "
    "else the weighted one; its sampling-only interval is kept in forecast_lo/hi.",
)
def rate_forecasts(
    context: dg.AssetExecutionContext, study: StudyResource, graded_labels: pl.DataFrame, grader_calibration: pl.DataFrame,
    replay_prefixes: pl.LazyFrame,
) -> dg.Output[pl.DataFrame]:
    cfg = study.load().config.forecasting
    prefixes = replay_prefixes.select(THIN_PREFIX_COLUMNS).collect()
    keep = filter_prefix_ids(prefixes, cfg.prefix_filter)
    calibration = grader_calibration.filter(pl.col("excluded_release") == context.partition_key)
    reviewers = {g.id for g in study.load().config.graders if g.kind == "review"}
    table = build_rate_forecasts(graded_labels.filter(pl.col("prefix_id").is_in(keep)), prefixes, calibration, cfg, reviewers)
    shown = table.select("category", "forecast_estimate", "forecast_rate_per_100k", "forecast_lo_per_100k", "forecast_hi_per_100k",
                         "rate_per_100k", "n_eligible", "flagged", "design_effect", "correction_refused",
                         "grader_id") if len(table) and "grader_id" in table.columns else table
    return dg.Output(table, metadata={"categories": len(table), "forecast": table_md(shown)})


def _with_prediction(study: StudyResource, release: str, forecasts: pl.DataFrame, observed: pl.DataFrame) -> pl.DataFrame:
    """This release's forecast of record with its prediction interval for the observed rate, from the error
    model of releases listed earlier whose observation windows have closed (dated ones: `observation_days`
    after their release date). Their forecasts come from their rate_forecasts partitions (declared inputs),
    not from ledger entries another run may not have written yet, so every run order gives the same interval."""
    cfg = study.load().config
    own = forecasts.filter(pl.col("release") == release).drop("release")
    if own.is_empty() or "forecast_rate_per_100k" not in own.columns:
        return own
    names = [r.name for r in cfg.releases]
    today = dt.datetime.now(dt.UTC).date()
    closed = {r.name for r in cfg.releases[: names.index(release)]
              if r.release_date is None or r.release_date + dt.timedelta(days=cfg.post_release.observation_days) < today}
    em = cfg.forecasting.error_model
    past = history(forecasts, observed, names, closed, cfg.forecasting.alpha)
    return predict(own, past, em.category_groups, cfg.forecasting.alpha, em.prior_sd, em.prior_strength)


def _record(study: StudyResource, release: str, record: pl.DataFrame, labels: pl.DataFrame, config_hash: str) -> str:
    """Append the forecast of record to the hash-chained ledger (never rewritten; re-materializing appends)."""
    versions = dict(labels.filter(pl.col("release") == release).select("grader_id", "grader_version").unique().iter_rows())
    return append_ledger(study.load().ledger_path, release, record, config_hash, versions)


@dg.asset(
    group_name=GROUP,
    partitions_def=release_partitions,
    ins={**{name: dg.AssetIn(partition_mapping=WITH_INCUMBENT) for name in ("graded_labels", "regenerated_completions")},
         **{name: dg.AssetIn(partition_mapping=dg.AllPartitionMapping()) for name in ("rate_forecasts", "observed_production_rates")}},
    kinds={"polars", "parquet"},
    description="The release against its incumbent on the same prefixes (same snapshot id, else it fails): per "
    "category the rate ratio with a Bonett-Price interval and a paired test (exact McNemar with one prefix per "
    "conversation, else a sign-flip test over conversations with the interval widened by the design effect), "
    "Benjamini-Hochberg across categories, and a predicted direction (up, down, no detectable change). Appends "
    "the forecast of record to the hash-chained ledger with its prediction interval for the observed rate, "
    "learned from earlier releases' forecasts and observed rates (declared: every release's rate_forecasts and "
    "observed_production_rates).",
)
def release_comparison(
    context: dg.AssetExecutionContext, study: StudyResource, graded_labels: pl.LazyFrame, regenerated_completions: pl.LazyFrame,
    rate_forecasts: pl.LazyFrame, replay_prefixes: pl.LazyFrame, observed_production_rates: pl.LazyFrame,
) -> dg.Output[pl.DataFrame]:
    s = study.load()
    release = s.config.release(context.partition_key)
    labels = graded_labels.collect()
    observed = observed_production_rates.collect()
    snaps = regenerated_completions.select("release", "snapshot_id").collect().group_by("release").agg(pl.col("snapshot_id").unique())
    forecasts = rate_forecasts.collect()
    own = _with_prediction(study, release.name, forecasts, observed)
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
    table = compare(labels.filter(pl.col("release") == release.name), labels.filter(pl.col("release") == release.incumbent), cfg, prefixes)
    # The forecast of record: this release's rates with its direction versus the incumbent.
    if "direction" in table.columns:
        own = own.join(table.select("category", "direction", "rate_ratio", "ratio_lo", "ratio_hi", "p_adjusted_bh"), on="category", how="left")
    head = _record(study, release.name, own.with_columns(incumbent=pl.lit(release.incumbent)), labels, s.config_hash)
    plot_rows = forecasts.filter(pl.col("release").is_in([release.name, release.incumbent])).select(
        "release", "category", rate="forecast_rate_per_100k", lo="forecast_lo_per_100k", hi="forecast_hi_per_100k").drop_nulls()
    record_cols = ["category", "direction", "forecast_estimate", "forecast_rate_per_100k", "pi_lo_per_100k", "pi_hi_per_100k",
                   "forecast_lo_per_100k", "forecast_hi_per_100k", "error_model"]
    return dg.Output(
        table.with_columns(incumbent=pl.lit(release.incumbent)),
        metadata={
            "incumbent": release.incumbent, "ledger_head": head,
            "forecast_of_record": table_md(own.select([c for c in record_cols if c in own.columns])),
            "snapshot_id": found[release.name][0] if found[release.name] else "",
            "comparison": table_md(table.select("category", "direction", "candidate_rate_per_100k", "incumbent_rate_per_100k", "rate_ratio",
                                                "ratio_lo", "ratio_hi", "p_adjusted_bh", "pairs") if "pairs" in table.columns else table),
            "rates_plot": rates_plot(plot_rows, f"{release.name} vs {release.incumbent}") if len(plot_rows) else dg.MetadataValue.md("_no rates_"),
        },
    )
