"""Simulation stage: replay prefixes (per study), then per-release regenerated completions."""

from collections.abc import Iterator

import dagster as dg
import polars as pl

from depsim_assets.core.answer import answer
from depsim_assets.core.config import Study
from depsim_assets.core.consent import UNIT_ID
from depsim_assets.core.prefixes import PREFIX_SCHEMA, prefix_batches, sample_prefixes, snapshot_of
from depsim_assets.core.recorded import recorded_completions
from depsim_assets.core.simulate import (
    assemble,
    plan_calls,
    recorded_frame,
)
from depsim_assets.core.storage import Spooled, aligned, row_batches
from depsim_assets.metadata import md_table
from depsim_assets.partitions import release_partitions
from depsim_resources.completion_store import CompletionStoreResource
from depsim_resources.model_endpoint import ModelEndpointResource
from depsim_resources.study import StudyResource

GROUP = "simulation"


@dg.asset(
    group_name=GROUP,
    kinds={"polars", "parquet"},
    description="Each de-identified conversation cut just before its final assistant turn (or every assistant "
    "turn), with the original response(s) kept; an hh-rlhf pair is one prefix with both responses; eval-set "
    "records are prefixes as they are. Sampled per the config's target, with weights, and stamped with a snapshot id.",
)
def replay_prefixes(study: StudyResource, deidentified_conversations: pl.LazyFrame) -> dg.Output[Spooled]:
    s = study.load()
    cfg = s.config.prefixes
    wh = s.warehouse
    # Two streamed passes: every prefix with its content id, then the sample (chosen on a thin frame of
    # ids and strata) stamped with the snapshot id of the set.
    conversations = aligned(row_batches(deidentified_conversations), UNIT_ID)
    everything = wh.spool(prefix_batches(conversations, cfg.mode), empty=PREFIX_SCHEMA)
    try:
        thin = everything.scan().select("prefix_id", "content_sha256", "source", "language", "n_turns", "length_bucket").collect()
        sample, info = sample_prefixes(thin, cfg)
        snap = snapshot_of(sample["prefix_id"], sample["content_sha256"])
        chosen = sample.select("prefix_id", "weight", "stratum")

        def stamped() -> Iterator[pl.DataFrame]:
            for batch in wh.row_groups_of(everything):
                yield batch.join(chosen, on="prefix_id", how="inner").with_columns(snapshot_id=pl.lit(snap))

        spooled = wh.spool(stamped(), empty=pl.Schema({**PREFIX_SCHEMA, "weight": pl.Float64, "stratum": pl.String, "snapshot_id": pl.String}))
    finally:
        everything.path.unlink(missing_ok=True)
    by_source = sample.group_by("source").agg(pl.len().alias("prefixes"), pl.col("weight").sum()).sort("source")
    return dg.Output(
        spooled,
        metadata={
            "prefixes": spooled.rows,
            "snapshot_id": snap,
            "sampling": dg.MetadataValue.json(info),
            "weight_sum": float(sample["weight"].sum()),
            "by_source": md_table(by_source),
        },
    )


def _latency_quantiles(frame: pl.DataFrame) -> dict[str, float]:
    lat = frame.filter(pl.col("status") == "ok")["latency_ms"].drop_nulls()
    return {"latency_p50_ms": float(lat.quantile(0.5)), "latency_p95_ms": float(lat.quantile(0.95))} if len(lat) else {}


@dg.asset(
    group_name=GROUP,
    partitions_def=release_partitions,
    pool="llm",
    kinds={"openai", "parquet"},
    description="The release's completion for every replay prefix (the same prefixes, same snapshot id, for a "
    "release and its incumbent). Calls go through the completion store: a stored call is never sent again, a "
    "failed call is recorded with its reason, and re-materializing sends only what is missing.",
)
def regenerated_completions(
    context: dg.AssetExecutionContext,
    study: StudyResource,
    model_endpoint: ModelEndpointResource,
    completion_store: CompletionStoreResource,
    replay_prefixes: pl.LazyFrame,
) -> dg.Output[pl.DataFrame]:
    s = study.load()
    frame = complete(s, context.partition_key, replay_prefixes, model_endpoint, completion_store, context.log)
    return dg.Output(frame, metadata=completion_metadata(frame, s.config.release(context.partition_key).backend))


def complete(s: Study, release_name: str, prefixes: pl.LazyFrame, model_endpoint: ModelEndpointResource,
             completion_store: CompletionStoreResource, log: dg.DagsterLogManager, shards: int = 1) -> pl.DataFrame:
    """The release's completions of these prefixes (all of them, or one of `shards` shards), through the completion store.

    A shard enforces an equal share of the release's budget against its own prefixes' spend: shards run at
    the same time, so each one checking the whole budget against what was spent when it started could
    spend it `shards` times over."""
    release = s.config.release(release_name)
    cfg = s.config.dispatch
    if release.backend == "recorded":
        assert release.recorded is not None
        chosen = prefixes.select("prefix_id", "conversation_id", "snapshot_id", "reference_responses").collect()
        return recorded_frame(chosen, recorded_completions(chosen, release.recorded, s.root), release.model)
    plan = plan_calls(prefixes.collect(), release, cfg.samples_per_prefix)
    log.info(f"{len(plan.calls)} calls planned")
    with completion_store.open(s.warehouse_dir) as store:
        budget, spent = release.budget_usd, store.spent(release.name)
        if shards > 1:
            budget = None if budget is None else budget / shards
            spent = store.spent(release.name, {c.prefix_id for c in plan.calls})
        answered = answer(plan.calls, store, model_endpoint, release, cfg, log.info, budget, spent)
    return assemble(plan, answered.stored, release.model, answered.sent)


def completion_metadata(frame: pl.DataFrame, backend: str) -> dict[str, object]:
    failed = frame.filter(pl.col("status") != "ok").group_by("failure_reason").len().sort("failure_reason")
    ok = frame["status"] == "ok"
    return {
        "completed": int(ok.sum()),
        "failed": int((~ok).sum()),
        "failed_by_reason": md_table(failed),
        "cache_hits": int((frame["served_from_store"] & ok).sum()) if backend == "openai" else 0,
        "calls_sent": int((~frame["served_from_store"]).sum()) if backend == "openai" else 0,
        "prompt_tokens": int(frame["prompt_tokens"].fill_null(0).sum()),
        "completion_tokens": int(frame["completion_tokens"].fill_null(0).sum()),
        "cost_usd": float(frame["cost_usd"].fill_null(0).sum()),
        "snapshot_id": frame["snapshot_id"].drop_nulls().first() or "",
        **_latency_quantiles(frame),
    }
