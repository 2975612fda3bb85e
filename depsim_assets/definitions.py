"""The Definitions of a depsim code location: one study, its config validated when the location loads.

`dagster dev` / `dagster definitions validate` call `defs()` (the study named by $DEPSIM_CONFIG, else
./depsim.yaml). A config that cannot be used fails the load with every problem listed, in the same
words as the CLI, so the UI's Deployment page shows it instead of a green location whose runs fail.
"""

from __future__ import annotations

import os

import dagster as dg

from depsim_assets import (
    agentic_realism,
    checks,
    discovery,
    forecasting,
    grading,
    post_release,
    realism,
    rollouts,
    sharding,
    simulation,
    staged_rollout,
    traffic,
    trajectories,
)
from depsim_assets.core.config import Study, has_conversations, has_trajectories, load_study
from depsim_assets.executors import deployment_executor
from depsim_assets.partitions import bind_to_study
from depsim_resources.completion_store import CompletionStoreResource
from depsim_resources.model_endpoint import ModelEndpointResource
from depsim_resources.privacy_key import PrivacyKeyResource
from depsim_resources.study import StudyResource
from depsim_resources.warehouse import WarehouseIOManager

# Declared once against a placeholder partition set; `study_assets` binds them to a study's releases.
ASSETS = [traffic.deidentified_conversations, simulation.replay_prefixes,
          simulation.regenerated_completions, grading.graded_labels, grading.review_queue, grading.grader_calibration,
          forecasting.rate_forecasts, forecasting.release_comparison, post_release.observed_production_rates,
          post_release.forecast_scorecard]
# Only in studies with `kind: trajectory` sources, so a chat study's UI shows no empty agentic group (and a
# trajectory-only study shows no conversation pipeline).
AGENTIC_ASSETS = [trajectories.agentic_trajectories, trajectories.agentic_prefixes, trajectories.tool_call_records,
                  rollouts.agentic_rollouts, rollouts.agentic_labels, rollouts.agentic_forecasts]
CHECKS = [checks.traffic_reconciles, checks.deidentified_passes_expectations]
AGENTIC_CHECKS = [checks.agentic_trajectories_pass_expectations]


def build_resources(config_path: str = "") -> dict[str, object]:
    study = StudyResource(config_path=config_path)
    return {
        "study": study,
        "io_manager": WarehouseIOManager(study=study),
        "privacy_key": PrivacyKeyResource(hmac_key=dg.EnvVar("DEPSIM_PRIVACY_KEY")),
        "model_endpoint": ModelEndpointResource(),
        "completion_store": CompletionStoreResource(),
    }


def study_assets(study: Study) -> list[dg.AssetsDefinition]:
    sharded = has_conversations(study.config) and study.config.dispatch.shards > 1
    # With shards, dispatch and grading run per (release, shard) and these two gather their shards.
    unsharded = {simulation.regenerated_completions, grading.graded_labels} if sharded else set()
    chosen = ([a for a in ASSETS if a not in unsharded] if has_conversations(study.config) else []) \
        + (AGENTIC_ASSETS if has_trajectories(study.config) else [])
    if has_conversations(study.config):
        chosen += [realism.eval_awareness] * bool(study.config.awareness) + [realism.realism_report] * bool(study.config.realism)
        chosen += [discovery.behaviour_discovery] * bool(study.config.discovery)
    if has_trajectories(study.config):
        chosen += [realism.tool_realism, agentic_realism.trajectory_realism] * bool(study.config.realism)
        chosen += [agentic_realism.agentic_awareness] * bool(study.config.awareness)
    rollout = staged_rollout.rollout_assets(study) if study.config.staged_rollout else []
    return bind_to_study(chosen, study.config) + (sharding.shard_assets(study) if sharded else []) + rollout


def study_checks(study: Study) -> list[dg.AssetChecksDefinition]:
    return (CHECKS if has_conversations(study.config) else []) + (AGENTIC_CHECKS if has_trajectories(study.config) else [])


def study_definitions(study: Study) -> tuple[list[dg.AssetsDefinition], list[dg.AssetChecksDefinition], list[dg.SensorDefinition]]:
    """The study's assets and checks under its own key prefix (`xstest/graded_labels`), and its sensors.

    Code locations alone do not keep studies apart: asset history lives in the instance, keyed by asset
    key. With the prefix, two studies in one DAGSTER_HOME (the UI, the CLI) never share a key or a history.
    """
    assets, checks = study_assets(study), study_checks(study)
    keys = {k for a in assets for k in (*a.keys, *a.dependency_keys)}
    renamed = {k: k.with_prefix(study.config.study) for k in keys}
    sensors = [staged_rollout.batch_sensor(study)] if study.config.staged_rollout else []
    return ([a.with_attributes(asset_key_replacements=renamed) for a in assets],
            [c.with_attributes(asset_key_replacements=renamed) for c in checks], sensors)


def build_definitions(config: str | os.PathLike[str] | None = None) -> dg.Definitions:
    study = load_study(config)  # ConfigError: the location fails to load with every problem listed
    assets, checks, sensors = study_definitions(study)
    return dg.Definitions(assets=assets, asset_checks=checks, sensors=sensors, resources=build_resources(str(study.path)),
                          executor=deployment_executor())


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
