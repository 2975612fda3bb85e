"""Staged rollout: observed batches per release and window, gate decisions, promotion, incidents, and the
sensor that picks up new batches. Built per study (its releases and its own window partitions), only for
studies with a `staged_rollout:` plan."""

import warnings
from pathlib import Path

import dagster as dg
import polars as pl

from depsim_assets.core.config import Study, StudyConfig
from depsim_assets.core.gates import ROLL_BACK, Reference, evaluate, reference_table
from depsim_assets.core.incidents import current, open_new, triggers
from depsim_assets.core.ledger import entries_before
from depsim_assets.core.rollout_batches import window_counts, window_files
from depsim_assets.metadata import rollout_plot
from depsim_assets.metadata import table as table_md
from depsim_assets.partitions import study_partitions
from depsim_resources.study import StudyResource

GROUP = "staged_rollout"
# The two multi-dimension partition mappings are beta in Dagster 1.13; nothing else does the release x window join.
warnings.filterwarnings("ignore", category=dg.BetaWarning, module=__name__)
RELEASE, WINDOW = "release", "window"
BY_RELEASE = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=RELEASE)
# A decision at a window reads its release's observations at every window (it keeps those up to its own).
RELEASE_WINDOWS = dg.MultiPartitionMapping({
    RELEASE: dg.DimensionPartitionMapping(RELEASE, dg.IdentityPartitionMapping()),
    WINDOW: dg.DimensionPartitionMapping(WINDOW, dg.AllPartitionMapping())})


def windows_of(config: StudyConfig) -> dg.DynamicPartitionsDefinition:
    return dg.DynamicPartitionsDefinition(name=f"{config.study}__rollout_windows")


def asset_key(study: Study, name: str) -> dg.AssetKey:
    """An asset's key in the study's code location (prefixed by the study, see `definitions.study_definitions`)."""
    return dg.AssetKey([study.config.study, name])


def incidents_path(study: Study) -> Path:
    return study.warehouse_dir / "_ledger" / "incidents.jsonl"


def batch_dir(study: Study) -> Path:
    assert study.config.staged_rollout is not None
    return study.resolve(study.config.staged_rollout.batches.path)


def references(study: Study, release: str, observed: pl.DataFrame) -> dict[str, Reference]:
    """Per category: the release's forecast of record (ledger, entries before its release date) and its
    incumbent's observed rate."""
    cfg = study.config
    incumbent = cfg.release(release).incumbent
    ledger = entries_before(study.ledger_path, {r.name: r.release_date for r in cfg.releases})
    rates = observed.filter(pl.col("release") == incumbent) if incumbent and "rate_per_100k" in observed.columns else None
    return reference_table(ledger.filter(pl.col("release") == release), rates, has_incumbent=incumbent is not None)


def rollout_assets(study: Study) -> list[dg.AssetsDefinition]:
    config = study.config
    plan = config.staged_rollout
    assert plan is not None
    windows = windows_of(config)
    partitions = dg.MultiPartitionsDefinition({RELEASE: study_partitions(config), WINDOW: windows})

    @dg.asset(group_name=GROUP, partitions_def=partitions, kinds={"polars", "parquet"},
              ins={"graded_labels": dg.AssetIn(partition_mapping=BY_RELEASE)},
              description="One window of post-release traffic for one release, graded: per category the messages "
              "and flagged messages (counts from the batch file, or the batch grader's labels of its message ids).")
    def rollout_observations(context: dg.AssetExecutionContext, study: StudyResource, graded_labels: pl.LazyFrame) -> dg.Output[pl.DataFrame]:
        s = study.load()
        key = context.partition_key.keys_by_dimension  # type: ignore[attr-defined]
        release, window = key[RELEASE], key[WINDOW]
        files = window_files(batch_dir(s))
        if window not in files:
            raise FileNotFoundError(f"no batch file for window '{window}' in {batch_dir(s)}")
        grader = plan.batches.grader or (config.post_release.observed.grader if config.post_release.observed else None)
        labels = graded_labels.collect()
        if "grader_id" in labels.columns:
            labels = labels.filter(pl.col("grader_id") == grader)
        counts = window_counts(files[window], release, labels).with_columns(release=pl.lit(release), window=pl.lit(window))
        return dg.Output(counts, metadata={"messages": int(counts["n"].max() or 0), "flagged": int(counts["flagged"].sum()),
                                           "counts": table_md(counts.drop("release", "window"))})

    @dg.asset(group_name=GROUP, partitions_def=partitions, kinds={"polars", "parquet"},
              ins={"rollout_observations": dg.AssetIn(partition_mapping=RELEASE_WINDOWS),
                   "observed_production_rates": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
              deps=[dg.AssetDep("release_comparison", partition_mapping=BY_RELEASE)],
              check_specs=[dg.AssetCheckSpec("stage_gates", asset="rollout_decisions", blocking=True,
                                             description="Fails when the stage decision is roll back: stops promotion in this run.")],
              description="The staged-rollout decision at this window (advance, hold, roll back, with the reason) from "
              "always-valid tests on the release's observations up to this window against its forecast of record "
              "(prediction interval) and its incumbent's observed rate; opens incidents in the append-only log.")
    def rollout_decisions(context: dg.AssetExecutionContext, study: StudyResource, rollout_observations: pl.LazyFrame,
                          observed_production_rates: pl.LazyFrame):  # noqa: ANN202 - yields an output and a check result
        s = study.load()
        key = context.partition_key.keys_by_dimension  # type: ignore[attr-defined]
        release, window = key[RELEASE], key[WINDOW]
        earlier = [w for w in context.instance.get_dynamic_partitions(windows.name) if w <= window]
        obs = rollout_observations.collect()
        obs = obs.filter(pl.col("window") <= window) if "window" in obs.columns else obs
        missing = sorted(set(earlier) - set(obs["window"].to_list() if "window" in obs.columns else []))
        if missing:
            raise ValueError(f"'{release}': observations of windows {missing} are not materialized: materialize rollout_observations "
                             f"for them first (a decision reads every earlier window)")
        evidence, decisions = evaluate(obs, references(s, release, observed_production_rates.collect()), plan)
        evidence = evidence.join(decisions.select("window", "share", "decision", "next_stage", "reason"), on="window").with_columns(release=pl.lit(release))
        opened = open_new(incidents_path(s), triggers(evidence, plan), s.config_hash)
        last = decisions.row(-1, named=True)
        latest = evidence.filter(pl.col("window") == window)
        yield dg.Output(evidence, metadata={
            "stage": last["stage"], "decision": last["decision"], "next_stage": last["next_stage"], "reason": last["reason"],
            "incidents_opened": opened, "decisions": table_md(decisions, first=("window", "stage", "decision", "next_stage")),
            "evidence": table_md(latest.drop("release", "decision", "reason"), first=("category", "test", "status")),
            "observed_vs_forecast": rollout_plot(evidence, release)})
        yield dg.AssetCheckResult(check_name="stage_gates", passed=last["decision"] != ROLL_BACK,
                                  metadata={"decision": last["decision"], "reason": last["reason"]})

    @dg.asset(group_name=GROUP, partitions_def=partitions, kinds={"polars", "parquet"},
              ins={"rollout_decisions": dg.AssetIn()},
              description="The traffic share the release may serve after this window. Refuses to run on a rolled-back "
              "release, also in a run started later (the blocking check only stops its own run).")
    def stage_promotion(context: dg.AssetExecutionContext, rollout_decisions: pl.DataFrame) -> dg.Output[pl.DataFrame]:
        window = context.partition_key.keys_by_dimension[WINDOW]  # type: ignore[attr-defined]
        now = rollout_decisions.filter(pl.col("window") == window)
        if now.is_empty() or now["decision"][0] == ROLL_BACK:
            reason = now["reason"][0] if len(now) else "no decision for this window"
            raise ValueError(f"stage gate failed at window {window}: {reason}; the release stays rolled back")
        row = now.select("stage", "share", "decision", "next_stage", "reason").head(1)
        shares = {s.name: s.share for s in plan.stages} | {"complete": 1.0, "pre-release": 0.0}
        nxt = str(row["next_stage"][0])
        out = row.with_columns(window=pl.lit(window), next_share=pl.lit(shares.get(nxt, float(row["share"][0]))))
        return dg.Output(out, metadata={"stage": str(row["stage"][0]), "decision": str(row["decision"][0]), "next_stage": nxt,
                                        "next_share": float(out["next_share"][0])})

    @dg.asset(group_name=GROUP, kinds={"polars", "parquet"},
              deps=[dg.AssetDep("rollout_decisions", partition_mapping=dg.AllPartitionMapping())],
              description="Every incident of the study (trigger, severity, release, category, the playbook's recommended "
              "correction) and where its lifecycle is (opened, action_taken, recovered, reviewed), from the append-only "
              "incident log. `depsim incident ID EVENT` records the next lifecycle event.")
    def incidents(study: StudyResource) -> dg.Output[pl.DataFrame]:
        table = current(incidents_path(study.load()))
        return dg.Output(table, metadata={"open": int((table["status"] != "reviewed").sum()) if len(table) else 0,
                                          "incidents": table_md(table, first=("incident_id", "release", "category", "severity", "status"))})

    return [rollout_observations, rollout_decisions, stage_promotion, incidents]


def next_runs(study: Study, instance: dg.DagsterInstance, windows: dg.DynamicPartitionsDefinition) -> tuple[list[str], list[dg.RunRequest]]:
    """The next batch to evaluate: windows go one at a time (a decision reads every earlier window, so a window
    waits until each release's decision on the previous ones is stored), and the incident table is refreshed
    once the decisions are newer than it."""
    releases = [r.name for r in study.config.releases]
    known = instance.get_dynamic_partitions(windows.name)
    decided = instance.get_materialized_partitions(asset_key(study, "rollout_decisions"))
    waiting = [w for w in known for r in releases if str(dg.MultiPartitionKey({RELEASE: r, WINDOW: w})) not in decided]
    if waiting:
        return [], []
    new = [w for w in window_files(batch_dir(study)) if w not in set(known)][:1]
    if new:
        return new, [dg.RunRequest(run_key=f"{r}|{new[0]}", partition_key=dg.MultiPartitionKey({RELEASE: r, WINDOW: new[0]}),
                                   asset_selection=[asset_key(study, n) for n in ("rollout_observations", "rollout_decisions", "stage_promotion")])
                     for r in releases]
    last_decision = instance.get_latest_materialization_event(asset_key(study, "rollout_decisions"))
    last_table = instance.get_latest_materialization_event(asset_key(study, "incidents"))
    if last_decision is not None and (last_table is None or last_table.timestamp < last_decision.timestamp):
        return [], [dg.RunRequest(run_key=f"incidents@{last_decision.timestamp}", asset_selection=[asset_key(study, "incidents")])]
    return [], []


def batch_sensor(study: Study) -> dg.SensorDefinition:
    windows = windows_of(study.config)

    @dg.sensor(name="rollout_batch_sensor", minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED,
               asset_selection=[asset_key(study, n) for n in ("rollout_observations", "rollout_decisions", "stage_promotion", "incidents")],
               description="Adds a window partition for the next batch file and evaluates it for every release, one "
                           "window at a time; then refreshes the incident table.")
    def rollout_batch_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        new, runs = next_runs(study, context.instance, windows)
        return dg.SensorResult(run_requests=runs, dynamic_partitions_requests=[windows.build_add_request(new)] if new else [])

    return rollout_batch_sensor
