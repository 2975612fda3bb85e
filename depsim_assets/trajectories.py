"""Agentic stage: trajectory sources -> de-identified trajectories, agentic prefixes, recorded tool calls.

Coding-agent runs cannot be replayed by regenerating one turn: the candidate's next tool call needs an
answer. This stage stores what the tool simulator needs — the trajectories (de-identified and gated
like traffic), the prefixes to regenerate, and the database of recorded tool answers keyed by
repository, commit and state — for the rollouts of the next stage.
"""

import dagster as dg
import polars as pl

from depsim_assets.core.agentic.loading import load_trajectory_sources
from depsim_assets.core.agentic.prefix import cut
from depsim_assets.core.agentic.recorded_calls import RecordedCalls
from depsim_assets.core.agentic.scrubbing import scrub_trajectories
from depsim_assets.core.agentic.tables import prefix_table, recorded_table, trajectories_of, trajectory_table
from depsim_assets.core.privacy.scrub import study_scrubber
from depsim_assets.metadata import md_table
from depsim_resources.privacy_key import PrivacyKeyResource
from depsim_resources.study import StudyResource

GROUP = "agentic"
QUARANTINE_SCHEMA = pl.Schema({"source": pl.String, "origin": pl.String, "reason": pl.String, "detail": pl.String})


@dg.multi_asset(
    group_name=GROUP,
    outs={
        "agentic_trajectories": dg.AssetOut(
            description="Every readable, consented agent trajectory of the `kind: trajectory` sources (SWE-agent .traj, "
            "OpenAI chat records with tools), one row each: the whole trajectory as a validated JSON document (messages, "
            "tool calls linked to their answers, tool definitions, repository and interface settings) with every string "
            "de-identified and gated (planted canaries included); ids are keyed hashes.", kinds={"polars", "parquet"}),
        "trajectory_quarantine": dg.AssetOut(
            description="Trajectory documents that could not be replayed, one row each with its reason (unknown_tool_call_id, "
            "missing_tool_call_id, invalid_tool_arguments, ...). Documents in = trajectories + quarantined.",
            kinds={"polars", "parquet"}),
    },
)
def agentic_trajectories(context: dg.AssetExecutionContext, study: StudyResource, privacy_key: PrivacyKeyResource):
    s = study.load()
    key = privacy_key.key()
    loaded = load_trajectory_sources(s.config.sources, s.root, s.config.agentic, s.resolve)
    privacy = s.config.privacy
    scrubber = study_scrubber(key, privacy)
    scrubbed = scrub_trajectories(loaded.trajectories, scrubber, key, privacy.canaries.count if privacy.canaries.enabled else 0)
    table = trajectory_table(scrubbed.trajectories)
    quarantine = pl.DataFrame(loaded.quarantine, schema=QUARANTINE_SCHEMA)
    if len(quarantine):
        details, _ = scrubber.scrub(quarantine["detail"])
        origins, _ = scrubber.scrub(quarantine["origin"])
        quarantine = quarantine.with_columns(detail=details, origin=origins)
    context.log.info(f"read {len(table)} trajectories ({int(table['calls'].sum() or 0)} tool calls), quarantined {len(quarantine)}; gate passed")
    yield dg.Output(table, output_name="agentic_trajectories", metadata={
        "trajectories": len(table), "tool_calls": int(table["calls"].sum() or 0),
        "documents_in": dg.MetadataValue.json(loaded.records_in),
        "by_repository": md_table(table.group_by("repo_name", "base_commit", "format", "generation").len().sort("repo_name")),
        "replacements": md_table(scrubbed.counts.group_by("entity").agg(pl.col("count").sum()).sort("entity"))})
    yield dg.Output(quarantine, output_name="trajectory_quarantine", metadata={
        "quarantined": len(quarantine), "by_reason": md_table(quarantine.group_by("reason").len().sort("reason"))})


@dg.asset(
    group_name=GROUP,
    kinds={"polars", "parquet"},
    description="Agentic prefixes: each trajectory cut before an assistant step (`agentic.cut`: final, every, or a seeded "
    "sample), with the tool definitions, the repository (name, base commit, snapshot) and the steps so far; the "
    "original step and the rest of the trajectory kept as the reference.",
)
def agentic_prefixes(study: StudyResource, agentic_trajectories: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    cfg = study.load().config.agentic
    prefixes = [p for t in trajectories_of(agentic_trajectories) for p in cut(t, cfg.cut, cfg.steps_per_trajectory, cfg.seed)]
    table = prefix_table(prefixes)
    return dg.Output(table, metadata={
        "prefixes": len(table), "cut": cfg.cut,
        "by_repository": md_table(table.group_by("repo_name").agg(pl.len().alias("prefixes"), pl.col("trajectory_id").n_unique().alias("trajectories")))})


@dg.asset(
    group_name=GROUP,
    kinds={"polars", "parquet"},
    description="The recorded layer of the tool simulator: every recorded tool answer keyed by repository, base commit, "
    "interface, call (canonical arguments) and state (the state-changing calls before it), with how often it was seen "
    "and in which trajectories. A key with more than one answer is a disagreement the simulator reports.",
)
def tool_call_records(agentic_trajectories: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    table = recorded_table(RecordedCalls.build(trajectories_of(agentic_trajectories)))
    disagreements = table.group_by("state_key").len().filter(pl.col("len") > 1).height
    return dg.Output(table, metadata={
        "answers": len(table), "state_keys": table["state_key"].n_unique(), "disagreeing_keys": disagreements,
        "by_repository": md_table(table.group_by("repo_name", "base_commit").agg(pl.len().alias("answers")).sort("repo_name"))})
