"""Grading stage: labels for every completion of a release, and grader calibration against people."""

import dagster as dg
import polars as pl

from depsim_assets.core.config import Study
from depsim_assets.core.graders.calibration import CALIBRATION_INPUT, calibrate
from depsim_assets.core.graders.grade import ITEM_COMPLETION_COLUMNS, ITEM_PREFIX_COLUMNS, grade_release, label_summary
from depsim_assets.core.graders.base import LABEL_SCHEMA
from depsim_assets.core.privacy.scrub import Scrubber
from depsim_assets.core.review import export, review_sample
from depsim_assets.core.storage import row_batches
from depsim_assets.metadata import md_table
from depsim_assets.partitions import release_partitions
from depsim_resources.completion_store import CompletionStoreResource
from depsim_resources.model_endpoint import ModelEndpointResource
from depsim_resources.privacy_key import PrivacyKeyResource
from depsim_resources.study import StudyResource

GROUP = "grading"


@dg.asset(
    group_name=GROUP,
    partitions_def=release_partitions,
    pool="llm",
    kinds={"polars", "parquet"},
    description="One label per (completion, category, grader): eligible, flagged, severity, rationale, grader id "
    "and version, status. Graders: deterministic rules, recorded labels (people or models) and an LLM judge "
    "whose calls are cached and crash-safe like the release's own.",
)
def graded_labels(
    context: dg.AssetExecutionContext,
    study: StudyResource,
    model_endpoint: ModelEndpointResource,
    completion_store: CompletionStoreResource,
    replay_prefixes: pl.LazyFrame,
    regenerated_completions: pl.LazyFrame,
) -> dg.Output[pl.DataFrame]:
    s = study.load()
    labels = grade(s, context.partition_key, replay_prefixes, regenerated_completions, model_endpoint, completion_store, context.log)
    return dg.Output(labels, metadata=label_metadata(labels))


def grade(s: Study, release: str, prefixes: pl.LazyFrame, completions: pl.LazyFrame, model_endpoint: ModelEndpointResource,
          completion_store: CompletionStoreResource, log: dg.DagsterLogManager) -> pl.DataFrame:
    """Labels of these completions (a release's, or one shard's), batch by batch: a batch's completions
    with only their own prefixes in memory."""
    parts = []
    with completion_store.open(s.warehouse_dir) as store:
        for batch in row_batches(completions.select(ITEM_COMPLETION_COLUMNS)):
            chosen = prefixes.select(ITEM_PREFIX_COLUMNS).filter(pl.col("prefix_id").is_in(batch["prefix_id"].implode())).collect()
            parts.append(grade_release(s, release, chosen, batch, store, model_endpoint, log.info))
    return pl.concat(parts) if parts else pl.DataFrame(schema={**LABEL_SCHEMA, "eligible": pl.Boolean})


def label_metadata(labels: pl.DataFrame) -> dict[str, object]:
    failures = labels.filter(pl.col("status") != "ok").group_by("grader_id", "failure_reason").len()
    return {"labels": len(labels), "per_category": md_table(label_summary(labels), 100),
            "failed_labels": int((labels["status"] != "ok").sum()), "failures": md_table(failures),
            "grader_versions": dg.MetadataValue.json(dict(labels.select("grader_id", "grader_version").unique().iter_rows()))}


@dg.asset(
    group_name=GROUP,
    ins={"graded_labels": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
    kinds={"polars", "parquet"},
    description="For each release, grader and category with human labels: sensitivity, specificity and precision "
    "with exact (Clopper-Pearson) intervals, Cohen's kappa and the confusion matrix, computed leave-one-release-out: "
    "the rows for release R (`excluded_release`) use only the other releases' labelled completions. Reads every "
    "release's labels, so it is stale whenever any release is re-graded.",
)
def grader_calibration(context: dg.AssetExecutionContext, study: StudyResource, graded_labels: pl.LazyFrame) -> dg.Output[pl.DataFrame]:
    labels = graded_labels.collect()
    if labels.is_empty():  # no release graded yet
        labels = pl.DataFrame(schema=CALIBRATION_INPUT)
    releases = [r.name for r in study.load().config.releases]
    graded = set(labels["release"].unique().to_list())
    table = pl.concat([calibrate(labels, exclude_release=r) for r in releases]) if releases else calibrate(labels)
    shown = table.filter(pl.col("excluded_release") == releases[-1]) if releases and len(table) else table
    return dg.Output(table, metadata={
        "rows": len(table), "releases_graded": dg.MetadataValue.json(sorted(graded)),
        "not_graded_yet": dg.MetadataValue.json([r for r in releases if r not in graded]),
        "calibration": md_table(shown.select("excluded_release", "grader_id", "category", "n", "sensitivity", "specificity",
                                             "precision", "kappa", "releases_used"), 100)})


@dg.asset(
    group_name=GROUP,
    partitions_def=release_partitions,
    kinds={"polars", "parquet", "csv"},
    description="A flag-stratified sample of the release's completions for people to label: per category, up to "
    "`review.per_stratum` flagged and not-flagged completions with their inclusion probabilities, request and "
    "completion scrubbed by the privacy filter. Exported to `<warehouse_dir>/<review.export_dir>/<release>.csv` and "
    ".jsonl; labelled files come back as a `kind: review` human grader, the reference for calibration at the "
    "traffic's own prevalence.",
)
def review_queue(
    context: dg.AssetExecutionContext, study: StudyResource, privacy_key: PrivacyKeyResource, graded_labels: pl.DataFrame,
    regenerated_completions: pl.LazyFrame, replay_prefixes: pl.LazyFrame,
) -> dg.Output[pl.DataFrame]:
    s = study.load()
    cfg = s.config.review
    wanted = graded_labels.filter(~pl.col("human"))["prefix_id"].unique().implode()
    prefixes = replay_prefixes.select("prefix_id", "messages").filter(pl.col("prefix_id").is_in(wanted)).collect()
    completions = regenerated_completions.select("prefix_id", "sample_index", "response_text").collect()
    sample = review_sample(graded_labels, completions, prefixes, context.partition_key, cfg)
    scrubber = Scrubber(key=privacy_key.key())
    request, _ = scrubber.scrub(sample["request"].fill_null(""))
    completion, _ = scrubber.scrub(sample["completion"].fill_null(""))
    sample = sample.with_columns(request=request, completion=completion)
    files = export(sample, s.warehouse_dir / cfg.export_dir, context.partition_key)
    counts = sample.group_by("category", "stratum").agg(pl.len().alias("rows"), pl.col("inclusion_prob").first()).sort("category", "stratum")
    return dg.Output(sample, metadata={"rows": len(sample), "per_stratum": md_table(counts, 100),
                                       "exported": dg.MetadataValue.json([str(f) for f in files])})
