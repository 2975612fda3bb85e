"""The one Definitions object of the depsim code location."""


import dagster as dg

from depsim_assets import checks, traffic
from depsim_assets.partitions import release_partition_sensor
from depsim_resources.study import StudyResource
from depsim_resources.warehouse import WarehouseIOManager

ASSETS = [traffic.raw_traffic, traffic.consented_traffic]
CHECKS = [checks.traffic_reconciles]


def build_resources(config_path: str = "") -> dict[str, object]:
    study = StudyResource(config_path=config_path)
    return {"study": study, "io_manager": WarehouseIOManager(study=study)}


defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=CHECKS,
    sensors=[release_partition_sensor],
    resources=build_resources(),
)
