"""De-identification: consented traffic -> scrubbed conversations behind a gate, and the privacy report."""

import dagster as dg
import polars as pl

from depsim_assets.core.privacy.deidentify import DEIDENTIFIED_SCHEMA, DeidentifyTally, deidentify_batches
from depsim_assets.core.privacy.rules import FILTER_VERSION
from depsim_assets.core.storage import row_batches
from depsim_assets.metadata import md_table
from depsim_resources.privacy_key import PrivacyKeyResource
from depsim_resources.study import StudyResource

GROUP = "traffic"


@dg.multi_asset(
    group_name=GROUP,
    outs={
        "deidentified_conversations": dg.AssetOut(
            description="Every message of every consented conversation scrubbed (emails, phones, cards, IBANs, SSNs, "
            "IPs, secrets, addresses, person names) into keyed-hash surrogates from reserved ranges. An independent "
            "detector scans the output with planted canaries inside this step and raises before anything is stored.",
            kinds={"polars", "parquet"},
        ),
        "privacy_report": dg.AssetOut(
            description="Replacements per entity type and source, canary results and the filter version.",
            kinds={"polars", "parquet"},
        ),
    },
)
def deidentified_conversations(
    context: dg.AssetExecutionContext, study: StudyResource, privacy_key: PrivacyKeyResource, consented_traffic: pl.LazyFrame
):
    s = study.load()
    tally = DeidentifyTally()
    # Streamed batch by batch; the gate runs on each batch before it is written, and a failure discards
    # the whole spool, so a leak leaves nothing stored.
    batches = deidentify_batches(row_batches(consented_traffic), s.config.sources, s.config.privacy, privacy_key.key(), tally)
    spooled = s.warehouse.spool(batches, empty=DEIDENTIFIED_SCHEMA)
    canaries = tally.canaries if tally.canaries is not None else pl.DataFrame(schema={"canary": pl.Int64, "entity": pl.String})
    context.log.info(f"scrubbed {tally.messages_scrubbed} messages; gate passed with {len(canaries)} canary values removed")
    counts = tally.counts()
    by_entity = counts.group_by("entity").agg(pl.col("count").sum()).sort("entity")
    yield dg.Output(
        spooled,
        output_name="deidentified_conversations",
        metadata={"conversations": spooled.rows, "messages": tally.messages_scrubbed, "filter_version": FILTER_VERSION},
    )
    report = counts.with_columns(filter_version=pl.lit(FILTER_VERSION))
    yield dg.Output(
        report,
        output_name="privacy_report",
        metadata={
            "replacements": int(report["count"].sum()) if len(report) else 0,
            "by_entity": md_table(by_entity),
            "by_source_and_rule": md_table(report, 100),
            "canaries_planted": canaries["canary"].n_unique() if len(canaries) else 0,
            "canary_values_removed": md_table(canaries, 100),
            "filter_version": FILTER_VERSION,
        },
    )
