"""Data-quality checks that read the warehouse directly."""


import dagster as dg

from depsim_assets.metadata import md_table
from depsim_assets.core.ingest import count_source_records, reconcile
from depsim_resources.study import StudyResource
from depsim_resources.warehouse import read_frame


@dg.asset_check(
    asset="raw_traffic",
    additional_deps=["traffic_quarantine"],
    blocking=True,
    description="Records in (recounted from the source files) = records normalized + records quarantined.",
)
def traffic_reconciles(study: StudyResource) -> dg.AssetCheckResult:
    s = study.load()
    records_in = count_source_records(s.config.sources, s.root)
    with study.connect() as con:
        table = reconcile(records_in, read_frame(con, "raw_traffic"), read_frame(con, "traffic_quarantine"))
    bad = table.filter(~table["balanced"])
    return dg.AssetCheckResult(
        passed=bad.is_empty(),
        metadata={"per_source": md_table(table),
                  "unbalanced_sources": bad["source"].to_list()},
    )
