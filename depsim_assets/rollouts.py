"""Agentic rollouts, per release: the candidate continues every agentic prefix, the simulator answers.

Every model call — the candidate's turns and the tool model's answers — goes through the completion
store, so a re-materialization (after a crash or a kill) rebuilds each rollout from stored calls and
sends only what was never answered. What is stored passes the privacy gate like every other text.
"""

from pathlib import Path

import dagster as dg
import polars as pl

from depsim_assets.core.agentic.overlay import Snapshot
from depsim_assets.core.agentic.prefix import AgenticPrefix
from depsim_assets.core.agentic.recorded_calls import RecordedLayer
from depsim_assets.core.agentic.rollout import Engine, recorded_rollout
from depsim_assets.core.agentic.rollout_items import category_rates, rollout_items
from depsim_assets.core.agentic.scrubbing import gated_scrub
from depsim_assets.core.agentic.simulator import Session, Simulator, SnapshotLayer
from depsim_assets.core.agentic.tables import recorded_of, rollout_table
from depsim_assets.core.agentic.tool_model import ToolModel
from depsim_assets.core.answer import answer
from depsim_assets.core.config import ReleaseConfig, SamplingParams
from depsim_assets.core.forecast import compare
from depsim_assets.core.forecast import rate_forecasts as build_rate_forecasts
from depsim_assets.core.graders.grade import grade_items
from depsim_assets.core.ingest import expand_paths
from depsim_assets.core.privacy.scrub import study_scrubber
from depsim_assets.core.requests import chat_body
from depsim_assets.metadata import md_table
from depsim_assets.metadata import table as table_md
from depsim_assets.partitions import WITH_INCUMBENT, release_partitions
from depsim_resources.completion_store import CompletionStoreResource
from depsim_resources.model_endpoint import ModelEndpointResource
from depsim_resources.privacy_key import PrivacyKeyResource
from depsim_resources.study import StudyResource

GROUP = "agentic"


def _session(prefix: AgenticPrefix) -> Session:
    snapshot = prefix.repo.snapshot if prefix.repo else None
    archive = Snapshot.from_archive(snapshot) if snapshot and Path(snapshot).is_file() else None
    return Session(prefix.repo, prefix.interface, archive)


@dg.asset(
    group_name=GROUP,
    partitions_def=release_partitions,
    pool="llm",
    kinds={"openai", "parquet"},
    description="The release's rollout from every agentic prefix: up to `agentic.max_steps` candidate turns, each tool "
    "call answered by the simulator (recorded, snapshot, then the tool model) with its provenance, and the stop reason "
    "(final_answer, submit, step_limit, unanswerable_call, model_call_failed, ...). A `recorded` release's rollouts are "
    "its own recorded trajectories (`recorded.path`) continued from each cut. Destructive actions are flagged by rule; "
    "texts are de-identified and gated before they are stored.",
)
def agentic_rollouts(
    context: dg.AssetExecutionContext,
    study: StudyResource,
    model_endpoint: ModelEndpointResource,
    completion_store: CompletionStoreResource,
    privacy_key: PrivacyKeyResource,
    agentic_prefixes: pl.DataFrame,
    tool_call_records: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    s = study.load()
    release = s.config.release(context.partition_key)
    cfg, dispatch = s.config.agentic, s.config.dispatch
    prefixes = [AgenticPrefix.model_validate_json(d) for d in agentic_prefixes["document"].to_list()]
    key = privacy_key.key()
    privacy = s.config.privacy
    scrubber = study_scrubber(key, privacy)

    def scrub(texts: list[str], groups: list[str]) -> list[str]:
        return gated_scrub(texts, groups, scrubber, key, privacy.canaries.count if privacy.canaries.enabled else 0)[0]

    if release.backend == "recorded":
        assert release.recorded is not None and release.recorded.path
        files = {p.name for p in expand_paths([release.recorded.path], s.root)}
        mine = [recorded_rollout(p) for p in prefixes if p.source.split(":", 1)[-1] in files]
        table = rollout_table(mine, scrub)
        return dg.Output(table, metadata={"rollouts": len(table), "recorded_from": dg.MetadataValue.json(sorted(files)),
                                          "stop_reasons": md_table(table.group_by("stop_reason").len().sort("stop_reason"))})
    with completion_store.open(s.warehouse_dir) as store:
        sent: set[str] = set()

        def asker(target: ReleaseConfig):
            def ask(calls):
                answered = answer(calls, store, model_endpoint, target, dispatch, context.log.info, target.budget_usd,
                                  store.spent(target.name))
                sent.update(answered.sent)
                return answered.stored
            return ask

        tool_model = None
        if cfg.tool_model is not None:
            tm = cfg.tool_model
            target = ReleaseConfig(name=f"{release.name}-tool-model", backend="openai", model=tm.model, base_url=tm.base_url,
                                   api_key_env=tm.api_key_env, sampling=SamplingParams(temperature=0, max_tokens=tm.max_tokens))
            tool_model = ToolModel(model=tm.model, ask=asker(target), release=target.name, max_tokens=tm.max_tokens)
        simulator = Simulator([RecordedLayer(recorded_of(tool_call_records)), SnapshotLayer()])
        engine = Engine(body=lambda messages, tools: chat_body(messages, release) | ({"tools": list(tools)} if tools else {}),
                        ask_candidate=asker(release), simulator=simulator, release=release.name, max_steps=cfg.max_steps,
                        tool_model=tool_model)
        rollouts = engine.run(prefixes, _session)
    for r in rollouts:
        r.session.close()
    table = rollout_table(rollouts, scrub)
    provenance = table.select(pl.col("recorded", "snapshot", "llm", "unanswered").sum())
    return dg.Output(table, metadata={
        "rollouts": len(table), "steps": int(table["steps"].sum() or 0), "calls_sent": len(sent),
        "stop_reasons": md_table(table.group_by("stop_reason").len().sort("stop_reason")),
        "tool_answers_by_provenance": md_table(provenance),
        "destructive_rollouts": int((table["destructive_actions"].list.len() > 0).sum()),
    })


@dg.asset(
    group_name=GROUP,
    partitions_def=release_partitions,
    pool="llm",
    kinds={"polars", "parquet"},
    description="One label per (rollout, category, grader), from the study's graders seeing each rollout whole: the "
    "candidate's turns, the commands it ran and every tool output with the layer that answered it. Agentic categories "
    "(misrepresented work, tool-result lies, tool misuse, background-work promises, destructive actions) with their "
    "eligibility; per-category rates with exact 95% intervals in the metadata.",
)
def agentic_labels(
    context: dg.AssetExecutionContext,
    study: StudyResource,
    model_endpoint: ModelEndpointResource,
    completion_store: CompletionStoreResource,
    agentic_rollouts: pl.DataFrame,
    agentic_prefixes: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    s = study.load()
    items = rollout_items(agentic_rollouts, agentic_prefixes)
    with completion_store.open(s.warehouse_dir) as store:
        labels = grade_items(s, context.partition_key, items, store, model_endpoint, context.log.info)
    rates = category_rates(labels)
    return dg.Output(labels, metadata={"rollouts": len(items), "labels": len(labels), "rates": md_table(rates)})


@dg.asset(
    group_name=GROUP,
    partitions_def=release_partitions,
    ins={"agentic_labels": dg.AssetIn(partition_mapping=WITH_INCUMBENT)},
    kinds={"polars", "parquet"},
    description="The release's agentic rates per 100k rollouts with the forecasting stage's estimators (weighted rate, "
    "design-based interval clustered by trajectory, exact bounds, detection floor) and, with an incumbent, the paired "
    "comparison on the prefixes both were rolled out from (direction after BH across categories).",
)
def agentic_forecasts(
    context: dg.AssetExecutionContext, study: StudyResource, agentic_labels: pl.LazyFrame, agentic_prefixes: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    s = study.load()
    release = s.config.release(context.partition_key)
    cfg = s.config.forecasting
    labels = agentic_labels.collect()
    prefixes = agentic_prefixes.select("prefix_id", conversation_id="trajectory_id").with_columns(
        weight=pl.lit(1.0), stratum=pl.lit("all"), snapshot_id=pl.lit(None, pl.String))
    own = build_rate_forecasts(labels.filter(pl.col("release") == release.name).drop("release"), prefixes, pl.DataFrame(), cfg)
    note = "no incumbent declared: nothing to compare"
    if release.incumbent is not None:
        table = compare(labels.filter(pl.col("release") == release.name), labels.filter(pl.col("release") == release.incumbent), cfg, prefixes)
        note = f"compared with '{release.incumbent}' on {int(table['pairs'].max() or 0) if len(table) else 0} shared prefixes"
        if "direction" in table.columns:
            own = own.join(table.select("category", "direction", "rate_ratio", "ratio_lo", "ratio_hi", "p_adjusted_bh"), on="category", how="left")
    shown = [c for c in ("category", "grader_id", "n_eligible", "flagged", "forecast_rate_per_100k", "forecast_lo_per_100k",
                         "forecast_hi_per_100k", "direction", "rate_ratio") if c in own.columns]
    return dg.Output(own, metadata={"categories": len(own), "note": note, "forecast": table_md(own.select(shown)) if len(own) else "_empty_"})
