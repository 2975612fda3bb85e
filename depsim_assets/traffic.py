"""Traffic stage: raw files -> normalized conversations (+ quarantine) -> consented traffic."""


import dagster as dg
import polars as pl

from depsim_assets.core.consent import apply_consent
from depsim_assets.core.ingest import ingest
from depsim_assets.metadata import md_table
from depsim_resources.study import StudyResource

GROUP = "traffic"


@dg.multi_asset(
    group_name=GROUP,
    outs={
        "raw_traffic": dg.AssetOut(
            description="Every source record normalized to one conversation table (messages with role, "
            "content, tool calls); an hh-rlhf pair gives two conversations linked by `pair_id`.",
            kinds={"polars", "parquet"},
        ),
        "traffic_quarantine": dg.AssetOut(
            description="Records that could not be normalized: source file, line number, reason code, detail "
            "and a raw excerpt. Records in = conversations' records out + quarantined.",
            kinds={"polars", "parquet"},
        ),
    },
)
def raw_traffic(context: dg.AssetExecutionContext, study: StudyResource):
    s = study.load()
    result = ingest(s.config.sources, s.root, s.config.ingest)
    by_reason = result.quarantine.group_by("reason").len().sort("reason")
    context.log.info(f"ingested {len(result.conversations)} conversations, quarantined {len(result.quarantine)} records")
    yield dg.Output(
        result.conversations,
        output_name="raw_traffic",
        metadata={
            "records_in": dg.MetadataValue.json(result.records_in),
            "conversations": len(result.conversations),
            "by_source": md_table(result.conversations.group_by("source").len().sort("source")),
        },
    )
    yield dg.Output(
        result.quarantine,
        output_name="traffic_quarantine",
        metadata={"quarantined": len(result.quarantine), "by_reason": md_table(by_reason, 50)},
    )


@dg.asset(
    group_name=GROUP,
    kinds={"polars", "parquet"},
    description="Conversations whose consent allows model-improvement use (or whose source is a published "
    "dataset); multimodal conversations are excluded with a counted reason. hh-rlhf pairs stay whole.",
)
def consented_traffic(context: dg.AssetExecutionContext, study: StudyResource, raw_traffic: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    kept, excluded = apply_consent(raw_traffic, study.load().config.sources)
    return dg.Output(
        kept,
        metadata={
            "conversations": len(kept),
            "excluded": int(excluded["conversations"].sum()) if len(excluded) else 0,
            "excluded_by_reason": md_table(excluded, 50),
        },
    )
