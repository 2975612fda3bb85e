"""Run a study's lineage for some releases, in process, in an order the declared dependencies allow.

The lineage is declared to Dagster (a UI backfill orders it by itself); this runner is the CLI's way
to drive the same assets without a daemon. One `materialize` call covers one partition scheme, so a
run is a few calls: study-wide upstream assets (skipped when their inputs did not change), then per
release completions and labels (never-graded incumbents first), the cross-release calibration,
per-release forecasts, the comparisons, and the scorecard.
"""

from __future__ import annotations

import hashlib
import re
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import orjson

from depsim.rollout_run import replay_observed, roll_out
from depsim_assets.core.config import Study, has_conversations, has_trajectories, load_study
from depsim_assets.core.ingest import expand_paths
from depsim_assets.core.privacy.rules import FILTER_VERSION
from depsim_assets.definitions import build_resources, study_definitions
from depsim_assets.sharding import RELEASE, SHARD, shard_keys
from depsim_assets.staged_rollout import asset_key

REPO_ROOT = Path(__file__).resolve().parent.parent
LLM_POOL = "llm"
USER_ERRORS = ("ConfigError", "ValueError", "KeyError", "MissingTableError", "FileNotFoundError", "PrivacyGateError", "BatchError")


def console_config(debug: bool = False) -> dict[str, object]:
    """Dagster's console log level for CLI runs: its event lines (and a failed step's traceback) would drown
    the CLI's own progress and its one-line error; the instance keeps the full event log for the UI."""
    level = "INFO" if debug else os.environ.get("DEPSIM_LOG_LEVEL", "CRITICAL")
    return {"loggers": {"console": {"config": {"log_level": level}}}}
DEFAULT_LLM_POOL_LIMIT = 4

UPSTREAM = ["deidentified_conversations", "privacy_report", "traffic_manifest", "traffic_quarantine", "replay_prefixes"]
AGENTIC = ["agentic_trajectories", "trajectory_quarantine", "agentic_prefixes", "tool_call_records"]
PER_RELEASE_GRADING = ["regenerated_completions", "graded_labels", "review_queue"]
PER_RELEASE_FORECAST = ["rate_forecasts", "observed_production_rates"]


class RunFailed(Exception):
    """A step or a blocking check failed; `str()` is the one line to show, `details` the step's traceback."""

    def __init__(self, line: str, details: str = "") -> None:
        super().__init__(line)
        self.details = details


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME, defaulting to ./.dagster_home with the project's dagster.yaml copied in."""
    home = Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    target = home / "dagster.yaml"
    if not target.exists() and (REPO_ROOT / "dagster.yaml").exists():
        shutil.copy(REPO_ROOT / "dagster.yaml", target)
    return home


def get_instance() -> dg.DagsterInstance:
    ensure_dagster_home()
    instance = dg.DagsterInstance.get()
    # dagster.yaml only holds a default pool limit; the llm pool gets its own (same as
    # `dagster instance concurrency set llm N`).
    storage = instance.event_log_storage
    if LLM_POOL not in storage.get_concurrency_keys():
        storage.set_concurrency_slots(LLM_POOL, int(os.environ.get("DEPSIM_LLM_POOL_LIMIT", DEFAULT_LLM_POOL_LIMIT)))
    return instance


@dataclass
class StepSummary:
    asset: str
    partition: str | None
    metadata: dict[str, object] = field(default_factory=dict)


@dataclass
class RunSummary:
    study: Study
    releases: list[str]
    steps: list[StepSummary] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    rollout: list[dict[str, object]] = field(default_factory=list)


def _shown(value: object) -> object | None:
    """A metadata value short enough for one summary line, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    return value if not isinstance(value, str) or len(value) <= 80 else None


def _collect(result: dg.ExecuteInProcessResult, summary: RunSummary, partition: str | None) -> None:
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization  # type: ignore[union-attr]
        meta = {k: v.value for k, v in mat.metadata.items() if not k.startswith("dagster/") and _shown(v.value) is not None}
        summary.steps.append(StepSummary(mat.asset_key.path[-1], partition, meta))  # the study prefix goes without saying
    for ev in result.get_asset_check_evaluations():
        summary.checks[f"{ev.asset_key.path[-1]}:{ev.check_name}"] = ev.passed


def _innermost(error: object) -> object:
    while getattr(error, "cause", None) is not None:
        error = error.cause  # type: ignore[attr-defined]
    return error


def failure_details(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure:
            return event.step_failure_data.error.to_string()  # type: ignore[union-attr]
    return ""


def failure_line(result: dg.ExecuteInProcessResult) -> str:
    """The user's error of a failed run, one line: a failed blocking check, or which step failed and the
    innermost exception's message."""
    failed = [ev for ev in result.get_asset_check_evaluations() if not ev.passed]
    if failed:
        names = ", ".join(f"{ev.asset_key.path[-1]}:{ev.check_name}" for ev in failed)
        return f"blocking check failed: {names} (its metadata in the Dagster UI says what failed); downstream steps did not run"
    for event in result.all_events:
        if event.is_step_failure:
            err = _innermost(event.step_failure_data.error)  # type: ignore[union-attr]
            name = str(getattr(err, "cls_name", "") or "")
            message = " ".join(str(getattr(err, "message", err)).split())  # "Name: text", as Python prints it
            if name in USER_ERRORS:
                message = re.sub(rf"^(?:[\w.]+\.)?{name}: ", "", message)  # "pkg.module.BatchError: ..." too
            return f"{event.step_key}: {message}"
    return "the run failed (see the Dagster UI event log)"


def upstream_signature(study: Study) -> str:
    """What the study-wide upstream assets depend on: their config sections, the source files and the privacy
    filter's version (a new filter re-scrubs)."""
    cfg = study.config
    try:
        paths = expand_paths([p for src in cfg.sources for p in src.paths], study.root)
    except (FileNotFoundError, ValueError):
        paths = []  # the traffic asset reports a missing source in its own words
    files = sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths if p.is_file())
    body = orjson.dumps([cfg.sources, cfg.ingest, cfg.privacy, cfg.prefixes, cfg.agentic, str(study.root), files, FILTER_VERSION],
                        default=lambda o: o.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(body).hexdigest()


def run_study(
    config: str | os.PathLike[str] | None,
    releases: Sequence[str] = (),
    instance: dg.DagsterInstance | None = None,
    progress: Callable[[str], None] = print,
    refresh: bool = False,
    debug: bool = False,
) -> RunSummary:
    """Upstream once, then the named releases (and any incumbent never graded) through the scorecard.
    Raises `RunFailed` with one line when a step or a blocking check fails."""
    study = load_study(config)
    cfg = study.config
    names = list(dict.fromkeys(releases))
    for name in names:
        cfg.release(name)  # raises with the declared names if unknown
    instance = instance or get_instance()
    assets, checks, _ = study_definitions(study)
    resources = build_resources(str(study.path))
    summary = RunSummary(study, names)
    wh = study.warehouse
    tag = f"[{cfg.study}]"

    def materialize(selection: list[str], partition: str | None = None, tolerated: frozenset[str] = frozenset()) -> dg.ExecuteInProcessResult:
        """One run; a failed blocking check named in `tolerated` is an outcome (a roll back), not an error."""
        result = dg.materialize([*assets, *checks], instance=instance, resources=resources, run_config=console_config(debug),
                                partition_key=partition, selection=dg.AssetSelection.keys(*[asset_key(study, n) for n in selection]),
                                raise_on_error=False)
        _collect(result, summary, str(partition) if partition else None)
        evaluations = result.get_asset_check_evaluations()
        failed = {ev.check_name for ev in evaluations if not ev.passed and ev.check_name not in tolerated}
        steps_failed = {e.step_key for e in result.all_events if e.is_step_failure}
        rolled_back = {ev.asset_key.path[-1] for ev in evaluations if not ev.passed and ev.check_name in tolerated}
        outcome_only = bool(rolled_back) and steps_failed <= rolled_back
        if failed or not (result.success or outcome_only):
            raise RunFailed(failure_line(result), failure_details(result))
        return result

    signature = upstream_signature(study)
    marker = wh.root / "_runs" / "upstream.signature"
    chat, agentic = has_conversations(cfg), has_trajectories(cfg)
    upstream = (UPSTREAM if chat else []) + (AGENTIC if agentic else [])
    fresh = not refresh and all(wh.exists(t) for t in upstream) and marker.exists() and marker.read_text() == signature
    if fresh:
        summary.skipped = list(upstream)
        progress(f"{tag} upstream assets unchanged since their last run: reused ({', '.join(upstream)})")
    else:
        what = ["traffic, de-identification, prefixes"] * chat + ["trajectories, agentic prefixes, recorded tool calls"] * agentic
        progress(f"{tag} materializing {len(upstream)} study-wide assets ({'; '.join(what)})")
        materialize(upstream)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(signature)
    if not names:
        return summary
    incumbents = [r.incumbent for r in map(cfg.release, names) if r.incumbent and r.incumbent not in names]
    labelled = "graded_labels" if chat else "agentic_labels"
    first = [inc for inc in dict.fromkeys(incumbents) if not wh.exists(labelled, inc)]
    for name in first:
        progress(f"{tag} incumbent '{name}' was never graded: running it first")
    graded = first + names
    for name in graded:
        if agentic:
            how = f"up to {cfg.agentic.max_steps} steps per prefix" if cfg.release(name).backend == "openai" else "recorded"
            progress(f"{tag} agentic rollouts and their labels for '{name}' ({how})")
            materialize(["agentic_rollouts", "agentic_labels"], name)
    if agentic and cfg.realism is not None:
        progress(f"{tag} realism of the tool simulator (leave-one-out replay, discriminator)")
        materialize(["tool_realism"])
    agentic_realism = ["trajectory_realism"] * bool(cfg.realism) + ["agentic_awareness"] * bool(cfg.awareness)
    for name in names if agentic else []:
        incumbent = cfg.release(name).incumbent
        progress(f"{tag} agentic rates for '{name}'" + (f" against '{incumbent}'" if incumbent else ""))
        materialize(["agentic_forecasts"], name)
        if agentic_realism:
            progress(f"{tag} realism and evaluation awareness of '{name}' rollouts")
            materialize(agentic_realism, name)
    if not chat:
        return summary
    shards = shard_keys(cfg.dispatch.shards) if cfg.dispatch.shards > 1 else []
    for name in graded:
        progress(f"{tag} completions and labels for '{name}'" + (f" ({len(shards)} shards)" if shards else ""))
        for shard in shards:  # one run each, as a backfill over (release, shard) would launch them
            materialize(["completion_shards", "label_shards"], dg.MultiPartitionKey({RELEASE: name, SHARD: shard}))
        materialize(PER_RELEASE_GRADING, name)
    progress(f"{tag} grader calibration (leave-one-release-out, every graded release)")
    materialize(["grader_calibration"])
    for name in graded:
        progress(f"{tag} forecasts and observed rates for '{name}'")
        materialize(PER_RELEASE_FORECAST, name)
    for name in names:
        progress(f"{tag} comparison of '{name}' with its incumbent")
        materialize(["release_comparison"], name)
    realism = (["eval_awareness"] * bool(cfg.awareness) + ["realism_report"] * bool(cfg.realism)
               + ["behaviour_discovery"] * bool(cfg.discovery))
    for name in names if realism else []:
        progress(f"{tag} evaluation awareness, realism and discovery of '{name}'")
        materialize(realism, name)
    progress(f"{tag} scoring forecasts across releases")
    materialize(["forecast_scorecard"])
    if cfg.staged_rollout is not None:
        written = replay_observed(study)
        progress(f"{tag} staged rollout" + (f" (observed prefixes replayed as {written} ordered batches)" if written else ""))
        summary.rollout = roll_out(study, names, instance, materialize, progress)
        materialize(["incidents"])
    return summary


def format_summary(summary: RunSummary) -> str:
    lines = [f"study {summary.study.config.study} ({summary.study.path})"]
    for step in summary.steps:
        part = f" [{step.partition}]" if step.partition else ""
        shown = ", ".join(f"{k}={v}" for k, v in step.metadata.items())
        lines.append(f"  {step.asset}{part}: {shown}" if shown else f"  {step.asset}{part}")
    for name, passed in summary.checks.items():
        outcome = "passed" if passed else "roll back (a decision, see the rollout lines)" if name.endswith(":stage_gates") else "FAILED"
        lines.append(f"  check {name}: {outcome}")
    return "\n".join(lines)
