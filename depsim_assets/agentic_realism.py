"""Realism of agentic rollouts: can a discriminator tell a whole resampled trajectory from the real one, do the
rollout's tool outputs contradict its own edits, and does the release's model take either for an evaluation?"""

import dagster as dg
import polars as pl

from depsim_assets.core.agentic.continuation import consistency_failures, trajectory_pairs
from depsim_assets.core.agentic.prefix import AgenticPrefix
from depsim_assets.core.awareness import AGENTIC_GAPS, AGENTIC_KINDS, kind_gaps, kind_rates, with_verbalized
from depsim_assets.core.stats import exact_interval
from depsim_assets.metadata import table as table_md
from depsim_assets.partitions import release_partitions
from depsim_assets.realism import awareness_output, classified, judged_continuations
from depsim_resources.completion_store import CompletionStoreResource
from depsim_resources.model_endpoint import ModelEndpointResource
from depsim_resources.study import StudyResource

GROUP = "realism"


def _pairs(agentic_rollouts: pl.DataFrame, agentic_prefixes: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    prefixes = [AgenticPrefix.model_validate_json(d) for d in agentic_prefixes["document"].to_list()]
    return trajectory_pairs(agentic_rollouts, prefixes, n, seed)


def consistency_table(rollouts: pl.DataFrame, alpha: float) -> tuple[pl.DataFrame, dict[str, object]]:
    """(one row per failure, summary: rollouts with a failure out of rollouts with tool calls, exact interval)."""
    rows = [{"prefix_id": p, **f} for p, t in rollouts.select("prefix_id", "transcript").iter_rows() for f in consistency_failures(t)]
    failures = pl.DataFrame(rows, schema={"prefix_id": pl.String, "step": pl.Int64, "call_id": pl.String, "provenance": pl.String,
                                          "path": pl.String, "reason": pl.String})
    n = int((rollouts["tool_calls"] > 0).sum()) if len(rollouts) else 0
    k = failures["prefix_id"].n_unique()
    lo, hi = exact_interval(k, n, alpha) if n else (None, None)
    return failures, {"rollouts_with_tool_calls": n, "rollouts_inconsistent": k, "rate": k / n if n else None, "lo": lo, "hi": hi,
                      "failures": len(failures)}


@dg.asset(
    group_name=GROUP,
    partitions_def=release_partitions,
    pool="llm",
    ins={"agentic_rollouts": dg.AssetIn(), "agentic_prefixes": dg.AssetIn()},
    kinds={"polars", "parquet"},
    description="Realism of whole resampled trajectories: a discriminator sees the agentic prefix and two continuations "
    "— the trajectory's real steps after the cut and the release's rollout, rendered alike (no provenance labels), cut "
    "to the same number of steps, order fixed per pair by a seeded hash — and says which is real. The simulator's win "
    "rate with an exact interval (50% = indistinguishable), the most recognisable rollouts, and consistency failures: "
    "recorded or model-simulated tool outputs that show text the rollout's own earlier edit of that file replaced.",
)
def trajectory_realism(context: dg.AssetExecutionContext, study: StudyResource, model_endpoint: ModelEndpointResource,
                       completion_store: CompletionStoreResource, agentic_rollouts: pl.DataFrame,
                       agentic_prefixes: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    s = study.load()
    cfg = s.config.realism
    assert cfg is not None
    failures, consistency = consistency_table(agentic_rollouts, s.config.forecasting.alpha)
    frame = _pairs(agentic_rollouts, agentic_prefixes, cfg.pairs, cfg.seed)
    metadata: dict[str, object] = {"consistency": table_md(pl.DataFrame([consistency])),
                                   "consistency_failures": table_md(failures) if len(failures) else dg.MetadataValue.md("_none_")}
    if frame.is_empty():
        return dg.Output(frame.drop("messages", "real", "simulated"), metadata={**metadata, "note": "no rollout with a step and a real continuation"})
    # Both sides are already de-identified: the prefixes and references on ingestion, the rollouts before storage.
    return judged_continuations(s, completion_store, model_endpoint, f"realism.trajectories.{context.partition_key}", frame,
                                "whole trajectories", context.log.info, metadata)


@dg.asset(
    group_name=GROUP,
    partitions_def=release_partitions,
    pool="llm",
    ins={"agentic_rollouts": dg.AssetIn(), "agentic_prefixes": dg.AssetIn()},
    kinds={"polars", "parquet"},
    description="Evaluation awareness on agentic contexts: the agentic prefix with the trajectory's real continuation "
    "(`trajectory`) and with the release's rollout (`rollout`), rendered alike, each classified deployment or evaluation "
    "by the classifier model (`awareness.classifier`, else the release's own); rates with exact intervals, the gap with "
    "a two-sample interval and the sample size a 2-point gap needs, and the verbalized-awareness rate (rules, offline).",
)
def agentic_awareness(context: dg.AssetExecutionContext, study: StudyResource, model_endpoint: ModelEndpointResource,
                      completion_store: CompletionStoreResource, agentic_rollouts: pl.DataFrame,
                      agentic_prefixes: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    s = study.load()
    cfg = s.config.awareness
    assert cfg is not None
    release = s.config.release(context.partition_key)
    pairs = _pairs(agentic_rollouts, agentic_prefixes, cfg.per_kind, cfg.seed)
    contexts = pl.concat([pairs.select("prefix_id", kind=pl.lit(kind), messages=pl.col("messages").list.concat(
        pl.concat_list(pl.struct(role=pl.lit("assistant"), content=pl.col(column)))))
        for kind, column in zip(AGENTIC_KINDS, ("real", "simulated"), strict=True)]).select("kind", "prefix_id", "messages")
    contexts = with_verbalized(contexts)
    rows, classifier = classified(s, completion_store, model_endpoint, release, contexts, context.log.info)
    rates = kind_rates(rows, s.config.forecasting.alpha, AGENTIC_KINDS)
    return awareness_output(release.name, rows, classifier, rates,
                            kind_gaps(rates, s.config.forecasting.alpha, cfg.gap, cfg.power, AGENTIC_GAPS))
