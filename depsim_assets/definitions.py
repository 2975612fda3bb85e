"""The one Definitions object of the depsim code location."""


import dagster as dg

from depsim_assets import (
    checks,
    forecasting,
    grading,
    post_release,
    privacy,
    simulation,
    traffic,
)
from depsim_assets.partitions import release_partition_sensor
from depsim_resources.completion_store import CompletionStoreResource
from depsim_resources.model_endpoint import ModelEndpointResource
from depsim_resources.privacy import PrivacyKeyResource
from depsim_resources.study import StudyResource
from depsim_resources.warehouse import WarehouseIOManager

ASSETS = [traffic.raw_traffic, traffic.consented_traffic, privacy.deidentified_conversations, simulation.replay_prefixes,
          simulation.regenerated_completions, grading.graded_labels, grading.grader_calibration,
          forecasting.rate_forecasts, forecasting.release_comparison, post_release.observed_production_rates,
          post_release.forecast_scorecard]
# Per-release assets that read other releases' partitions from the warehouse (leave-one-release-out):
# after a multi-release run, they are refreshed once every release's inputs exist.
CROSS_RELEASE = [grading.grader_calibration, forecasting.rate_forecasts, forecasting.release_comparison]
# Unpartitioned assets that read every release: run last.
FINAL = [post_release.forecast_scorecard]
CHECKS = [checks.traffic_reconciles, checks.deidentified_passes_expectations]


def build_resources(config_path: str = "") -> dict[str, object]:
    study = StudyResource(config_path=config_path)
    return {
        "study": study,
        "io_manager": WarehouseIOManager(study=study),
        "privacy_key": PrivacyKeyResource(hmac_key=dg.EnvVar("DEPSIM_PRIVACY_KEY")),
        "model_endpoint": ModelEndpointResource(),
        "completion_store": CompletionStoreResource(),
    }


defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=CHECKS,
    sensors=[release_partition_sensor],
    resources=build_resources(),
)
