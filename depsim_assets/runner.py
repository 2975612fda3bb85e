"""Run the whole lineage of one study for one release, in order, in process.

One `materialize` call cannot cover two partition schemes, so the unpartitioned upstream assets run
first, then the release's partition. The in-process executor is used because DuckDB allows one
writing process.
"""

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from depsim_assets.core.config import Study, load_study
from depsim_assets.definitions import (
    ASSETS,
    CHECKS,
    CROSS_RELEASE,
    FINAL,
    build_resources,
)
from depsim_assets.partitions import sync_releases

REPO_ROOT = Path(__file__).resolve().parent.parent
LLM_POOL = "llm"
# Dagster's per-event DEBUG lines drown the CLI's own progress; the UI keeps the full event log.
QUIET = {"loggers": {"console": {"config": {"log_level": os.environ.get("DEPSIM_LOG_LEVEL", "WARNING")}}}}
DEFAULT_LLM_POOL_LIMIT = 4


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


def _collect(result: dg.ExecuteInProcessResult, summary: RunSummary, partition: str | None) -> None:
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization  # type: ignore[union-attr]
        if mat is None:
            continue
        meta = {k: v.value for k, v in mat.metadata.items() if isinstance(v.value, (int, float)) and not k.startswith("dagster/")}
        summary.steps.append(StepSummary(mat.asset_key.to_user_string(), partition, meta))
    for ev in result.get_asset_check_evaluations():
        summary.checks[f"{ev.asset_key.to_user_string()}:{ev.check_name}"] = ev.passed


def run_study(
    config: str | os.PathLike[str] | None,
    releases: Sequence[str] = (),
    instance: dg.DagsterInstance | None = None,
    progress: Callable[[str], None] = print,
) -> RunSummary:
    """Unpartitioned assets once, then each named release's partition, in the order given."""
    study = load_study(config)
    for name in releases:
        rel = study.config.release(name)
        if rel.incumbent is not None:
            study.config.release(rel.incumbent)  # raises with a clear message if undeclared
    instance = instance or get_instance()
    resources = build_resources(str(study.path))
    summary = RunSummary(study, list(releases))

    unpartitioned = [a for a in ASSETS if a.partitions_def is None and a not in FINAL]
    partitioned = [a for a in ASSETS if a.partitions_def is not None]

    def materialize(selection: list, partition: str | None) -> None:
        result = dg.materialize([*ASSETS, *CHECKS], instance=instance, resources=resources, run_config=QUIET,
                                partition_key=partition, selection=dg.AssetSelection.assets(*selection))
        _collect(result, summary, partition)

    progress(f"[{study.config.study}] materializing {sum(len(a.keys) for a in unpartitioned)} unpartitioned assets")
    materialize(unpartitioned, None)
    if not releases or not partitioned:
        return summary
    sync_releases(instance, study.config)
    # Assets that read other releases' partitions (leave-one-release-out calibration, the comparison with
    # the incumbent) run once, after every release of the run is graded: running them inside each
    # release's pass would compute them twice and append every forecast to the ledger twice.
    deferred = CROSS_RELEASE if len(releases) > 1 else []
    for release in releases:
        progress(f"[{study.config.study}] materializing release partition '{release}'")
        materialize([a for a in partitioned if a not in deferred], release)
    for release in releases if deferred else ():
        progress(f"[{study.config.study}] cross-release assets for '{release}'")
        materialize(deferred, release)
    progress(f"[{study.config.study}] scoring forecasts across releases")
    materialize(FINAL, None)
    return summary


def format_summary(summary: RunSummary) -> str:
    lines = [f"study {summary.study.config.study} ({summary.study.path})"]
    for step in summary.steps:
        part = f" [{step.partition}]" if step.partition else ""
        shown = ", ".join(f"{k}={v}" for k, v in step.metadata.items() if k != "table")
        lines.append(f"  {step.asset}{part}: {shown}")
    for name, passed in summary.checks.items():
        lines.append(f"  check {name}: {'passed' if passed else 'FAILED'}")
    return "\n".join(lines)
