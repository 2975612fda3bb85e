"""Post-release stage: observed production rates per release, and the scorecard across releases."""

from pathlib import Path

import dagster as dg
import polars as pl

from depsim_assets.core.ledger import entries_before, verify
from depsim_assets.core.post_release import (
    challenging_rows,
    observed_changes,
    observed_from_file,
    observed_from_labels,
    scoring_rows,
)
from depsim_assets.core.privacy.scrub import Scrubber
from depsim_assets.core.scoring import summarize
from depsim_assets.forecasting import release_comparison
from depsim_assets.grading import graded_labels
from depsim_assets.metadata import md_table, scorecard_plot
from depsim_assets.partitions import release_partitions
from depsim_resources.privacy import PrivacyKeyResource
from depsim_resources.study import StudyResource
from depsim_resources.warehouse import read_frame

GROUP = "post_release"


@dg.asset(
    group_name=GROUP,
    partitions_def=release_partitions,
    ins={"graded_labels": dg.AssetIn()},
    kinds={"polars", "duckdb"},
    description="What the release did after it shipped, per category: post-release traffic graded by the same "
    "graders (`post_release.observed.grader` on the configured prefixes), or rates imported from a file.",
)
def observed_production_rates(
    context: dg.AssetExecutionContext, study: StudyResource, graded_labels: pl.DataFrame, replay_prefixes: pl.DataFrame
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
    else:
        table = observed_from_labels(graded_labels, replay_prefixes, str(obs.grader), obs.prefix_filter, alpha)
    return dg.Output(table, metadata={"categories": len(table), "observed": md_table(table)})


def _examples(study: StudyResource, key: bytes, per_category: int = 2) -> pl.DataFrame:
    """A few flagged completions per category with the grader's rationale, scrubbed before display."""
    with study.connect() as con:
        labels = read_frame(con, "graded_labels").filter(pl.col("flagged").fill_null(False) & pl.col("eligible") & ~pl.col("human"))
        completions = read_frame(con, "regenerated_completions").select("release", "prefix_id", "sample_index", "response_text")
    sample = labels.sort("release", "prefix_id").group_by("category", maintain_order=True).head(per_category)
    sample = sample.join(completions, on=["release", "prefix_id", "sample_index"], how="left")
    text, _ = Scrubber(key=key).scrub(sample["response_text"].fill_null("").str.slice(0, 240))
    rationale, _ = Scrubber(key=key).scrub(sample["rationale"].fill_null(""))
    return sample.select("category", "release", "grader_id", "prefix_id").with_columns(completion=text, rationale=rationale)


@dg.asset(
    group_name=GROUP,
    deps=[release_comparison, observed_production_rates, graded_labels],
    kinds={"polars", "duckdb"},
    description="Every release's forecasts (from the ledger, entries recorded before its release date) scored "
    "against its observed post-release rates, next to the previous-production-rate baseline: directional "
    "accuracy on categories that changed >= 1.5x (abstentions count as misses), multiplicative error (median, "
    "p90, max; zeros floored at the detection limit and marked censored), interval coverage, taxonomy coverage.",
)
def forecast_scorecard(study: StudyResource, privacy_key: PrivacyKeyResource) -> dg.Output[pl.DataFrame]:
    s = study.load()
    cfg = s.config
    with study.connect() as con:
        ledger = entries_before(con, {r.name: r.release_date for r in cfg.releases})
        chain = verify(con)
        observed = read_frame(con, "observed_production_rates")
        labels = read_frame(con, "graded_labels")
        prefixes = read_frame(con, "replay_prefixes")
    if not chain.ok:
        raise ValueError(f"forecast ledger fails verification at entries {chain.broken}: refusing to score tampered forecasts")
    if "rate_per_100k" not in observed.columns:
        return dg.Output(pl.DataFrame(schema={"release": pl.String, "category": pl.String}),
                         metadata={"note": "no observed post-release rates (post_release.observed is not configured): nothing to score",
                                   "ledger_entries": chain.entries, "ledger_head": chain.head})
    graders = dict(ledger.select("category", "grader_id").unique("category").iter_rows()) if "grader_id" in ledger.columns else {}
    challenging = challenging_rows(labels, prefixes, cfg, graders)
    rows = scoring_rows(ledger, observed, observed_changes(labels, prefixes, cfg), cfg, challenging)
    table = pl.DataFrame(summarize(rows, cfg.post_release.changed_fold), infer_schema_length=None)
    seen = observed.filter(pl.col("flagged") > 0)["category"].unique()
    simulated = ledger.filter(pl.col("flagged") > 0)["category"].unique() if len(ledger) else pl.Series([], dtype=pl.String)
    coverage = float(seen.is_in(simulated).mean()) if len(seen) else None
    return dg.Output(
        rows,
        metadata={
            "scorecard": md_table(table), "taxonomy_coverage": coverage if coverage is not None else "n/a",
            "ledger_entries": chain.entries, "ledger_head": chain.head,
            "forecast_vs_observed": scorecard_plot(rows.filter(pl.col("method") == "depsim")),
            "flagged_examples": md_table(_examples(study, privacy_key.key()), 40),
        },
    )
