"""Traffic stage: raw files -> normalized conversations (+ quarantine) -> consented traffic."""


from collections.abc import Iterator

import dagster as dg
import polars as pl

from depsim_assets.core.consent import UNIT_ID, apply_consent
from depsim_assets.core.ingest import CONVERSATION_SCHEMA, IngestTally, ingest_batches
from depsim_assets.core.storage import Spooled, aligned, row_batches
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
    tally = IngestTally()
    # Streamed: conversations go to storage batch by batch, never all in memory.
    spooled = s.warehouse.spool(ingest_batches(s.config.sources, s.root, s.config.ingest, tally), empty=CONVERSATION_SCHEMA)
    quarantine = tally.quarantined()
    by_reason = quarantine.group_by("reason").len().sort("reason")
    context.log.info(f"ingested {spooled.rows} conversations, quarantined {len(quarantine)} records")
    yield dg.Output(
        spooled,
        output_name="raw_traffic",
        metadata={
            "records_in": dg.MetadataValue.json(tally.records_in),
            "conversations": spooled.rows,
            "by_source": md_table(pl.DataFrame({"source": list(tally.conversations), "len": list(tally.conversations.values())},
                                               schema={"source": pl.String, "len": pl.Int64}).sort("source")),
        },
    )
    yield dg.Output(
        quarantine,
        output_name="traffic_quarantine",
        metadata={"quarantined": len(quarantine), "by_reason": md_table(by_reason, 50)},
    )


@dg.asset(
    group_name=GROUP,
    kinds={"polars", "parquet"},
    description="Conversations whose consent allows model-improvement use (or whose source is a published "
    "dataset); multimodal conversations are excluded with a counted reason. hh-rlhf pairs stay whole.",
)
def consented_traffic(context: dg.AssetExecutionContext, study: StudyResource, raw_traffic: pl.LazyFrame) -> dg.Output[Spooled]:
    sources = study.load().config.sources
    excluded: list[pl.DataFrame] = []

    def kept() -> Iterator[pl.DataFrame]:
        for batch in aligned(row_batches(raw_traffic), UNIT_ID):
            keep, out = apply_consent(batch, sources)
            excluded.append(out)
            yield keep

    spooled = study.load().warehouse.spool(kept(), empty=CONVERSATION_SCHEMA)
    counts = pl.concat(excluded).group_by("source", "reason").agg(pl.col("conversations").sum()).sort("source", "reason") if excluded else pl.DataFrame()
    return dg.Output(
        spooled,
        metadata={
            "conversations": spooled.rows,
            "excluded": int(counts["conversations"].sum()) if len(counts) else 0,
            "excluded_by_reason": md_table(counts, 50),
        },
    )
