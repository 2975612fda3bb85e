"""Traffic stage: source files -> de-identified conversations, in one streamed pass; nothing raw is stored.

Raw traffic stays where it came from (the source files). Each batch is parsed, checked for consent,
de-identified and passed through the privacy gate before it is written, so the first stored table
with message text is already scrubbed; a leak in any batch stops the run and leaves nothing stored.
What is kept besides: a manifest of metadata only (pseudonymous ids, positions, counts, consent) that
the reconciliation check recounts against, and the quarantine with scrubbed excerpts.
"""

from collections.abc import Iterator

import dagster as dg
import polars as pl

from depsim_assets.core.consent import UNIT_ID, split_consent, tag_exclusions
from depsim_assets.core.ingest import IngestTally, ingest_batches
from depsim_assets.core.privacy.deidentify import (
    DEIDENTIFIED_SCHEMA,
    DeidentifyTally,
    deidentify_batches,
    pseudonymous_ids,
    user_map,
)
from depsim_assets.core.withdrawal import exclude_withdrawn, withdrawn
from depsim_assets.core.privacy.rules import FILTER_VERSION
from depsim_assets.core.privacy.scrub import Scrubber
from depsim_assets.core.storage import aligned
from depsim_assets.metadata import md_table
from depsim_resources.privacy_key import PrivacyKeyResource
from depsim_resources.study import StudyResource

GROUP = "traffic"
MANIFEST_SCHEMA = pl.Schema({"conversation_id": pl.String, "source": pl.String, "kind": pl.String, "source_file": pl.String,
                             "line_no": pl.Int64, "messages": pl.UInt32, "exclusion": pl.String})


def _manifest(tagged: pl.DataFrame, key: bytes) -> pl.DataFrame:
    return tagged.select("source", "kind", "source_file", "line_no", "exclusion", messages=pl.col("messages").list.len()).with_columns(
        conversation_id=pseudonymous_ids(tagged, key)["conversation_id"]).select(MANIFEST_SCHEMA.names())


@dg.multi_asset(
    group_name=GROUP,
    outs={
        "deidentified_conversations": dg.AssetOut(
            description="Every consented conversation, streamed from the source files and de-identified batch by batch: "
            "identifiers in message text, tool calls, `name` fields and attributes replaced by keyed-hash surrogates "
            "from reserved ranges, traffic conversation ids replaced by keyed hashes. An independent detector scans "
            "each batch, with planted canaries, before it is written; a finding stops the run with nothing stored.",
            kinds={"polars", "parquet"},
        ),
        "privacy_report": dg.AssetOut(description="Replacements per entity type and source, canary results and the filter version.",
                                      kinds={"polars", "parquet"}),
        "traffic_manifest": dg.AssetOut(
            description="Metadata only, one row per ingested conversation: pseudonymous id, source file and line, message "
            "count, and why it was excluded (no consent, multimodal, consent withdrawn) if it was. No text.", kinds={"polars", "parquet"}),
        "traffic_quarantine": dg.AssetOut(
            description="Records that could not be normalized: source file, position, reason code, detail and a scrubbed "
            "excerpt. Records in = conversations' records out + quarantined.", kinds={"polars", "parquet"}),
    },
)
def deidentified_conversations(context: dg.AssetExecutionContext, study: StudyResource, privacy_key: PrivacyKeyResource):
    s = study.load()
    key = privacy_key.key()
    ingested, deid = IngestTally(), DeidentifyTally()
    manifests: list[pl.DataFrame] = []
    excluded: list[pl.DataFrame] = []

    gone = withdrawn(s.warehouse_dir)

    def consented() -> Iterator[pl.DataFrame]:
        for batch in aligned(ingest_batches(s.config.sources, s.root, s.config.ingest, ingested), UNIT_ID):
            tagged = tag_exclusions(batch, s.config.sources)
            if any(gone):  # keyed ids only when something was withdrawn: one HMAC per distinct user, not per row
                ids = pseudonymous_ids(tagged, key).with_columns(
                    user_id=tagged["user_id"].replace_strict(user_map(tagged["user_id"], key), default=None, return_dtype=pl.String))
                tagged = exclude_withdrawn(tagged, ids, *gone)
            kept, out = split_consent(tagged)
            manifests.append(_manifest(tagged, key))
            excluded.append(out)
            yield kept

    spooled = s.warehouse.spool(deidentify_batches(consented(), s.config.sources, s.config.privacy, key, deid), empty=DEIDENTIFIED_SCHEMA)
    quarantine = ingested.quarantined()
    excerpt, _ = Scrubber(key=key).scrub(quarantine["raw"])
    quarantine = quarantine.with_columns(raw=excerpt, conversation_id=pseudonymous_ids(
        quarantine.with_columns(kind=pl.lit("traffic"), pair_id=pl.lit(None, pl.String)), key)["conversation_id"])
    counts = deid.counts()
    exclusions = (pl.concat(excluded).group_by("source", "reason").agg(pl.col("conversations").sum()).sort("source", "reason")
                  if excluded else pl.DataFrame())
    canaries = deid.canaries if deid.canaries is not None else pl.DataFrame(schema={"canary": pl.Int64, "entity": pl.String})
    context.log.info(f"ingested {sum(ingested.conversations.values())} conversations, quarantined {len(quarantine)} records; "
                     f"scrubbed {deid.messages_scrubbed} messages; gate passed")
    yield dg.Output(spooled, output_name="deidentified_conversations", metadata={
        "conversations": spooled.rows, "messages": deid.messages_scrubbed, "filter_version": FILTER_VERSION,
        "deidentify_seconds": round(deid.seconds, 1),
        "records_in": dg.MetadataValue.json(ingested.records_in),
        "excluded": int(exclusions["conversations"].sum()) if len(exclusions) else 0,
        "excluded_by_reason": md_table(exclusions, 50)})
    report = counts.with_columns(filter_version=pl.lit(FILTER_VERSION))
    yield dg.Output(report, output_name="privacy_report", metadata={
        "replacements": int(report["count"].sum()) if len(report) else 0,
        "by_entity": md_table(counts.group_by("entity").agg(pl.col("count").sum()).sort("entity")),
        "canaries_planted": canaries["canary"].n_unique() if len(canaries) else 0,
        "canary_values_removed": md_table(canaries, 100), "filter_version": FILTER_VERSION})
    manifest = pl.concat(manifests) if manifests else MANIFEST_SCHEMA.to_frame()
    yield dg.Output(manifest, output_name="traffic_manifest", metadata={
        "conversations": len(manifest), "by_source": md_table(manifest.group_by("source").len().sort("source"))})
    yield dg.Output(quarantine, output_name="traffic_quarantine", metadata={
        "quarantined": len(quarantine), "by_reason": md_table(quarantine.group_by("reason").len().sort("reason"), 50)})
