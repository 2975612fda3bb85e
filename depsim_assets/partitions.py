"""The `release` partition: one per release declared in the study config."""


import dagster as dg

from depsim_assets.core.config import StudyConfig
from depsim_resources.study import StudyResource

RELEASE_PARTITIONS = "release"
release_partitions = dg.DynamicPartitionsDefinition(name=RELEASE_PARTITIONS)


def missing_releases(config: StudyConfig, existing: set[str]) -> list[str]:
    return [r.name for r in config.releases if r.name not in existing]


def sync_releases(instance: dg.DagsterInstance, config: StudyConfig) -> list[str]:
    """Add every declared release that is not yet a partition; returns the names added."""
    new = missing_releases(config, set(instance.get_dynamic_partitions(RELEASE_PARTITIONS)))
    if new:
        instance.add_dynamic_partitions(RELEASE_PARTITIONS, new)
    return new


@dg.sensor(
    name="release_partition_sensor",
    description="Adds each release declared in the study config as a `release` partition.",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def release_partition_sensor(context: dg.SensorEvaluationContext, study: StudyResource) -> dg.SensorResult:
    config = study.load().config
    new = missing_releases(config, set(context.instance.get_dynamic_partitions(RELEASE_PARTITIONS)))
    if not new:
        return dg.SensorResult(skip_reason="every declared release is already a partition")
    context.log.info(f"adding release partitions: {new}")
    return dg.SensorResult(dynamic_partitions_requests=[release_partitions.build_add_request(new)])
