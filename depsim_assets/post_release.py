"""Post-release stage: observed production rates per release, and the scorecard across releases."""

from pathlib import Path

import dagster as dg
import polars as pl

from depsim_assets.core.examples import flagged_examples
from depsim_assets.core.ledger import entries_before, verify
from depsim_assets.core.observed import (
    challenging_rows,
    observed_from_counts,
    observed_changes,
    observed_from_file,
    observed_from_labels,
    scoring_rows,
)
from depsim_assets.core.prefixes import THIN_PREFIX_COLUMNS
from depsim_assets.core.rollout_batches import COUNTS_SCHEMA, window_counts, window_files
from depsim_assets.core.privacy.scrub import Scrubber
from depsim_assets.core.scoring import confusion_frame, summarize
from depsim_assets.metadata import md_table, scorecard_plot
from depsim_assets.metadata import table as table_md
from depsim_assets.partitions import release_partitions
from depsim_resources.privacy_key import PrivacyKeyResource
from depsim_resources.study import StudyResource

GROUP = "post_release"


@dg.asset(
    group_name=GROUP,
    partitions_def=release_partitions,
    ins={"graded_labels": dg.AssetIn()},
    kinds={"polars", "parquet"},
    description="What the release did after it shipped, per category: post-release traffic graded by the same "
    "graders (`post_release.observed.grader` on the configured prefixes), rates imported from a file, or the sum "
    "of the staged rollout's observation batches (`rollout_batches`).",
)
def observed_production_rates(
    context: dg.AssetExecutionContext, study: StudyResource, graded_labels: pl.DataFrame, replay_prefixes: pl.LazyFrame
) -> dg.Output[pl.DataFrame]:
    s = study.load()
    obs = s.config.post_release.observed
    alpha = s.config.forecasting.alpha
    if obs is None:
        table = pl.DataFrame(schema={"category": pl.String})
    elif obs.path:
        path = s.resolve(obs.path)
        frame = pl.read_parquet(path) if Path(path).suffix == ".parquet" else pl.read_csv(path)
        table = observed_from_file(frame, context.partition_key, alpha)
    elif obs.rollout_batches and s.config.staged_rollout is not None:
        batches = s.config.staged_rollout.batches
        files = window_files(s.resolve(batches.path))
        own = graded_labels.filter(pl.col("grader_id") == (batches.grader or obs.grader)) if "grader_id" in graded_labels.columns else None
        counts = [window_counts(p, context.partition_key, own) for p in files.values()]
        summed = pl.concat(counts).group_by("category").agg(pl.col("n", "flagged").sum()).sort("category") if counts else COUNTS_SCHEMA.to_frame()
        table = observed_from_counts(summed, f"rollout:{len(files)} batches", alpha)
    else:
        table = observed_from_labels(graded_labels, replay_prefixes.select(THIN_PREFIX_COLUMNS).collect(), str(obs.grader), obs.prefix_filter, alpha)
    return dg.Output(table, metadata={"categories": len(table), "observed": md_table(table)})


def _examples(labels: pl.DataFrame, completions: pl.DataFrame, prefixes: pl.DataFrame, key: bytes) -> pl.DataFrame:
    """Flagged examples across releases and categories, the completion and the grader's rationale scrubbed
    before display (the request is de-identified already)."""
    examples = flagged_examples(labels, completions, prefixes)
    if examples.is_empty():
        return examples
    scrubber = Scrubber(key=key)
    completion, _ = scrubber.scrub(examples["completion"])
    rationale, _ = scrubber.scrub(examples["rationale"])
    return examples.with_columns(completion=completion, rationale=rationale)


ALL_RELEASES = dg.AllPartitionMapping()


@dg.asset(
    group_name=GROUP,
    ins={name: dg.AssetIn(partition_mapping=ALL_RELEASES)
         for name in ("observed_production_rates", "graded_labels", "regenerated_completions")},
    deps=[dg.AssetDep("release_comparison", partition_mapping=ALL_RELEASES)],
    kinds={"polars", "parquet"},
    description="Every release's forecasts (from the ledger, entries recorded before its release date) scored "
    "against its observed post-release rates, next to the previous-production-rate and challenging-prompt "
    "baselines, every method on the same categories: a direction confusion table, directional accuracy on "
    "categories that changed >= 1.5x (abstentions and missing forecasts count as misses), false-alarm rate on "
    "unchanged ones, multiplicative error (median, p90, max over uncensored rows; zeros reported apart as "
    "bounds), coverage of the prediction interval and of the sampling-only one, taxonomy coverage. "
    "Valid with partial data: releases not yet forecast or observed are listed, not scored.",
)
def forecast_scorecard(
    study: StudyResource, privacy_key: PrivacyKeyResource, observed_production_rates: pl.LazyFrame, graded_labels: pl.LazyFrame,
    regenerated_completions: pl.LazyFrame, replay_prefixes: pl.LazyFrame,
) -> dg.Output[pl.DataFrame]:
    s = study.load()
    cfg = s.config
    ledger = entries_before(s.ledger_path, {r.name: r.release_date for r in cfg.releases})
    chain = verify(s.ledger_path)
    if not chain.ok:
        raise ValueError(f"forecast ledger fails verification at entries {chain.broken}: refusing to score tampered forecasts")
    observed = observed_production_rates.collect()
    labels = graded_labels.collect()
    base_meta = {"ledger_entries": chain.entries, "ledger_head": chain.head}
    empty = pl.DataFrame(schema={"release": pl.String, "category": pl.String, "method": pl.String})
    if cfg.post_release.observed is None:
        return dg.Output(empty, metadata={"note": "no observed post-release rates (post_release.observed is not configured): "
                                                  "nothing to score", **base_meta})
    observed_releases = set(observed["release"].unique().to_list()) if "rate_per_100k" in observed.columns else set()
    forecast_releases = set(ledger["release"].unique().to_list()) if "rate_per_100k" in ledger.columns else set()
    # Error and coverage need a forecast and an observation; direction also needs an incumbent (unscored without).
    scorable = [r.name for r in cfg.releases if r.name in observed_releases and r.name in forecast_releases]
    unscored = {r.name: "no forecast in the ledger" if r.name not in forecast_releases else "no observed rates"
                for r in cfg.releases if r.name not in scorable}
    base_meta["not_scored"] = dg.MetadataValue.json(unscored)
    if not scorable:
        return dg.Output(empty, metadata={"note": "no release has both a forecast and observed rates yet: "
                                                  "nothing to score", **base_meta})
    graders = dict(ledger.select("category", "grader_id").unique("category").iter_rows()) if "grader_id" in ledger.columns else {}
    prefixes = replay_prefixes.select(THIN_PREFIX_COLUMNS).collect()
    challenging = challenging_rows(labels, prefixes, cfg, graders)
    rows = scoring_rows(ledger, observed, observed_changes(labels, prefixes, cfg), cfg, challenging)
    rows = rows.filter(pl.col("release").is_in(scorable))
    cards = summarize(rows, cfg.post_release.changed_fold)
    confusion = confusion_frame(cards)
    table = pl.DataFrame([{k: v for k, v in c.items() if k != "confusion"} for c in cards], infer_schema_length=None)
    seen = observed.filter(pl.col("flagged") > 0)["category"].unique()
    simulated = ledger.filter(pl.col("flagged") > 0)["category"].unique()
    coverage = float(seen.is_in(simulated).mean()) if len(seen) else None
    return dg.Output(
        rows,
        metadata={
            # A method with nothing to score keeps its row and says why (the note), rather than a blank row.
            "scorecard": table_md(table,
                                  first=("method", "directional_accuracy", "false_alarm_rate", "changed_categories", "interval_coverage", "note")),
            "direction_confusion": table_md(confusion, first=("method", "predicted", "observed")),
            "scored_rows": table_md(rows, first=("release", "category", "method", "predicted_direction", "forecast_rate", "observed_rate")),
            "taxonomy_coverage": coverage if coverage is not None else "n/a",
            "scored_releases": dg.MetadataValue.json(scorable), **base_meta,
            "forecast_vs_observed": scorecard_plot(rows.filter((pl.col("method") == "depsim") & pl.col("forecast_rate").is_not_null())),
            "flagged_examples": table_md(_examples(labels, regenerated_completions.collect(),
                                                   replay_prefixes.select("prefix_id", "messages").collect(), privacy_key.key()),
                                         first=("category", "release", "grader_id", "people")),
        },
    )
