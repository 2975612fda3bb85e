"""The CLI's staged rollout: what `rollout_batch_sensor` does in the daemon, window after window, in process.

A roll back is a decision, not an error: the blocking `stage_gates` check fails and stops the release's
promotion in that run, and the CLI reports it and goes on with the next release and window.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import dagster as dg

from depsim_assets.core.config import Study
from depsim_assets.core.observed import filter_prefix_ids
from depsim_assets.core.prefixes import THIN_PREFIX_COLUMNS
from depsim_assets.core.rollout_batches import replay_windows, window_files
from depsim_assets.staged_rollout import RELEASE, WINDOW, batch_dir, windows_of

ROLLOUT_STEPS = ["rollout_observations", "rollout_decisions", "stage_promotion"]


def replay_observed(study: Study) -> int:
    """Offline: the study's observed prefixes as ordered batch files (kept if already there)."""
    plan, obs = study.config.staged_rollout, study.config.post_release.observed
    if plan is None or not plan.batches.replay_observed or obs is None:
        return 0
    prefixes = study.warehouse.read("replay_prefixes").select(THIN_PREFIX_COLUMNS)
    ids = filter_prefix_ids(prefixes, obs.prefix_filter).to_list()
    return len(replay_windows(ids, plan.batches.replay_observed, batch_dir(study)))


def roll_out(study: Study, releases: Sequence[str], instance: dg.DagsterInstance,
             materialize: Callable[..., dg.ExecuteInProcessResult], progress: Callable[[str], None]) -> list[dict[str, object]]:
    """Every batch window in order, for each release; returns one row per (window, release) decision."""
    windows = windows_of(study.config)
    names = list(window_files(batch_dir(study)))
    instance.add_dynamic_partitions(windows.name, [w for w in names if not instance.has_dynamic_partition(windows.name, w)])
    rows = []
    for window in names:
        for release in releases:
            key = dg.MultiPartitionKey({RELEASE: release, WINDOW: window})
            result = materialize(ROLLOUT_STEPS, key, tolerated={"stage_gates"})
            decision = _decision(result)
            rows.append({"window": window, "release": release, **decision})
        progress(f"[{study.config.study}] window {window}: " + ", ".join(f"{r['release']} {r['decision']}" for r in rows if r["window"] == window))
    return rows


def _decision(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization  # type: ignore[union-attr]
        if mat.asset_key.path[-1] == "rollout_decisions":
            meta = {k: v.value for k, v in mat.metadata.items()}
            return {k: meta.get(k) for k in ("stage", "decision", "next_stage", "reason", "incidents_opened")}
    return {"decision": "not evaluated"}
