"""Sharded dispatch and grading: a release's prefixes split into `dispatch.shards` partitions.

With `shards: N > 1` a study's chat pipeline gains two multi-partitioned assets (release × shard),
`completion_shards` and `label_shards`: each shard is its own run, so a Celery (or Kubernetes) executor
and several workers call the model for one release at once, each shard writing its own Parquet file and
its own completion-store journal. `regenerated_completions` and `graded_labels` keep their keys and their
release partitions and gather every shard of their release through
`MultiToSingleDimensionPartitionMapping`, so everything downstream (the comparison's incumbent mapping
included) reads them exactly as with one shard. With one shard (the default) none of this exists.
"""

import warnings

import dagster as dg
import polars as pl

from depsim_assets.core.config import Study, StudyConfig
from depsim_assets.core.prefixes import shard_of
from depsim_assets.core.storage import PARTITION_COLUMN, Spooled, row_batches
from depsim_assets.grading import grade, label_metadata
from depsim_assets.partitions import study_partitions
from depsim_assets.simulation import complete, completion_metadata
from depsim_resources.completion_store import CompletionStoreResource
from depsim_resources.model_endpoint import ModelEndpointResource
from depsim_resources.study import StudyResource

RELEASE, SHARD = PARTITION_COLUMN, "shard"
with warnings.catch_warnings():  # beta in dagster 1.13, and the documented way to read all of a dimension
    warnings.simplefilter("ignore", dg.BetaWarning)
    BY_RELEASE = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=RELEASE)


def shard_keys(shards: int) -> list[str]:
    width = len(str(shards - 1))  # zero-padded, so the UI and the files sort in shard order
    return [f"{i:0{width}d}" for i in range(shards)]


def shard_partitions(config: StudyConfig) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition({RELEASE: study_partitions(config),
                                         SHARD: dg.StaticPartitionsDefinition(shard_keys(config.dispatch.shards))})


def in_shard(prefixes: pl.LazyFrame, shard: str, shards: int) -> pl.LazyFrame:
    ids = prefixes.select("prefix_id").collect()["prefix_id"]
    mine = ids.filter(shard_of(ids, shards) == int(shard))
    return prefixes.filter(pl.col("prefix_id").is_in(mine.implode()))


def _key(context: dg.AssetExecutionContext) -> tuple[str, str]:
    key = context.partition_key.keys_by_dimension  # type: ignore[attr-defined]
    return key[RELEASE], key[SHARD]


def _gathered(s: Study, table: str, release: str, shards: pl.LazyFrame) -> Spooled:
    missing = [k for k in shard_keys(s.config.dispatch.shards) if not s.warehouse.exists(table, {RELEASE: release, SHARD: k})]
    if missing:  # a partial release would look like a smaller sample, not like an error
        raise ValueError(f"'{release}': shards {missing} of {table} are not materialized: materialize them first")
    # Stored as one file per release, batch by batch (a release can be larger than memory should hold).
    empty = pl.Schema({k: v for k, v in shards.collect_schema().items() if k != PARTITION_COLUMN})
    return s.warehouse.spool((batch.drop(PARTITION_COLUMN, strict=False) for batch in row_batches(shards)), empty=empty)


def shard_assets(study: Study) -> list[dg.AssetsDefinition]:
    config = study.config
    shards = config.dispatch.shards
    partitions = shard_partitions(config)

    @dg.asset(group_name="simulation", partitions_def=partitions, pool="llm", kinds={"openai", "parquet"},
              description="One shard of the release's completions: the replay prefixes whose id hashes to this shard "
              "(the same split for every release), called through the shared completion store.")
    def completion_shards(context: dg.AssetExecutionContext, study: StudyResource, model_endpoint: ModelEndpointResource,
                          completion_store: CompletionStoreResource, replay_prefixes: pl.LazyFrame) -> dg.Output[pl.DataFrame]:
        s = study.load()
        release, shard = _key(context)
        frame = complete(s, release, in_shard(replay_prefixes, shard, shards), model_endpoint, completion_store, context.log, shards)
        return dg.Output(frame, metadata=completion_metadata(frame, s.config.release(release).backend))

    @dg.asset(group_name="grading", partitions_def=partitions, pool="llm", kinds={"polars", "parquet"},
              description="The labels of one shard's completions (every grader, as for a whole release).")
    def label_shards(context: dg.AssetExecutionContext, study: StudyResource, model_endpoint: ModelEndpointResource,
                     completion_store: CompletionStoreResource, replay_prefixes: pl.LazyFrame,
                     completion_shards: pl.LazyFrame) -> dg.Output[pl.DataFrame]:
        s = study.load()
        release, _ = _key(context)
        labels = grade(s, release, replay_prefixes, completion_shards.drop(PARTITION_COLUMN, strict=False), model_endpoint,
                       completion_store, context.log)
        return dg.Output(labels, metadata=label_metadata(labels))

    @dg.asset(group_name="simulation", partitions_def=study_partitions(config), kinds={"polars", "parquet"},
              ins={"completion_shards": dg.AssetIn(partition_mapping=BY_RELEASE)},
              description=f"The release's completion for every replay prefix, gathered from its {shards} completion shards.")
    def regenerated_completions(context: dg.AssetExecutionContext, study: StudyResource,
                                completion_shards: pl.LazyFrame) -> dg.Output[Spooled]:
        s = study.load()
        spooled = _gathered(s, "completion_shards", context.partition_key, completion_shards)
        frame = spooled.scan().collect()
        return dg.Output(spooled, metadata=completion_metadata(frame, s.config.release(context.partition_key).backend))

    @dg.asset(group_name="grading", partitions_def=study_partitions(config), kinds={"polars", "parquet"},
              ins={"label_shards": dg.AssetIn(partition_mapping=BY_RELEASE)},
              description=f"One label per (completion, category, grader), gathered from the release's {shards} label shards.")
    def graded_labels(context: dg.AssetExecutionContext, study: StudyResource, label_shards: pl.LazyFrame) -> dg.Output[Spooled]:
        s = study.load()
        spooled = _gathered(s, "label_shards", context.partition_key, label_shards)
        return dg.Output(spooled, metadata=label_metadata(spooled.scan().collect()))

    return [completion_shards, label_shards, regenerated_completions, graded_labels]
