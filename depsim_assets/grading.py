"""Grading stage: labels for every completion of a release, and grader calibration against people."""

import dagster as dg
import polars as pl

from depsim_assets.core.grading.calibration import calibrate
from depsim_assets.core.grading.grade import grade_release, label_summary
from depsim_assets.metadata import md_table
from depsim_assets.partitions import release_partitions
from depsim_resources.completion_store import CompletionStoreResource
from depsim_resources.model_endpoint import ModelEndpointResource
from depsim_resources.study import StudyResource
from depsim_resources.warehouse import read_frame

GROUP = "grading"


@dg.asset(
    group_name=GROUP,
    partitions_def=release_partitions,
    pool="llm",
    kinds={"polars", "duckdb"},
    description="One label per (completion, category, grader): eligible, flagged, severity, rationale, grader id "
    "and version, status. Graders: deterministic rules, recorded labels (people or models) and an LLM judge "
    "whose calls are cached and crash-safe like the release's own.",
)
def graded_labels(
    context: dg.AssetExecutionContext,
    study: StudyResource,
    model_endpoint: ModelEndpointResource,
    completion_store: CompletionStoreResource,
    replay_prefixes: pl.DataFrame,
    regenerated_completions: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    s = study.load()
    with completion_store.open(s.warehouse_dir) as store:
        labels = grade_release(s, context.partition_key, replay_prefixes, regenerated_completions, store, model_endpoint)
    summary = label_summary(labels)
    failures = labels.filter(pl.col("status") != "ok").group_by("grader_id", "failure_reason").len()
    return dg.Output(
        labels,
        metadata={"labels": len(labels), "per_category": md_table(summary, 100), "failed_labels": int((labels["status"] != "ok").sum()),
                  "failures": md_table(failures), "grader_versions": dg.MetadataValue.json(
                      dict(labels.select("grader_id", "grader_version").unique().iter_rows()))},
    )


@dg.asset(
    group_name=GROUP,
    partitions_def=release_partitions,
    deps=[graded_labels],
    kinds={"polars", "duckdb"},
    description="For each grader and category with human labels: sensitivity, specificity and precision with exact "
    "(Clopper-Pearson) intervals, Cohen's kappa and the confusion matrix, computed leave-one-release-out: the "
    "calibration of a release uses only the other releases' labelled completions.",
)
def grader_calibration(context: dg.AssetExecutionContext, study: StudyResource) -> dg.Output[pl.DataFrame]:
    with study.connect() as con:
        labels = read_frame(con, "graded_labels")
    table = calibrate(labels, exclude_release=context.partition_key)
    return dg.Output(table, metadata={"rows": len(table), "calibration": md_table(
        table.select("grader_id", "category", "n", "sensitivity", "specificity", "precision", "kappa", "releases_used"), 100)})
