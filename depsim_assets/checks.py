"""Data-quality checks that read the warehouse directly."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd
import polars as pl

from depsim_assets.core.agentic.scrubbing import stored_texts
from depsim_assets.core.agentic.tables import trajectories_of
from depsim_assets.core.config import Study
from depsim_assets.core.ingest import count_source_records, reconcile
from depsim_assets.core.privacy.deidentify import canary_strings
from depsim_assets.core.privacy.expectations import deidentified_expectations, run_suite
from depsim_assets.core.privacy.gate import canary_values
from depsim_assets.metadata import md_table
from depsim_resources.privacy_key import PrivacyKeyResource
from depsim_resources.study import StudyResource


def _canaries(s: Study, privacy_key: PrivacyKeyResource) -> list[str]:
    """The planted canary values the stored tables must not contain (none when canaries are off)."""
    if not s.config.privacy.canaries.enabled:
        return []
    return canary_strings([canary_values(privacy_key.key(), i) for i in range(s.config.privacy.canaries.count)])


def _suite_result(outcomes: list, **metadata: object) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=all(o.success for o in outcomes), metadata={**metadata, **{
        o.name: dg.MetadataValue.text(f"{'passed' if o.success else 'FAILED'} ({o.unexpected_count} unexpected)") for o in outcomes}})


@dg.asset_check(
    asset="traffic_manifest",
    additional_deps=["traffic_quarantine"],
    blocking=True,
    description="Records in (recounted from the source files) = records normalized + records quarantined.",
)
def traffic_reconciles(study: StudyResource) -> dg.AssetCheckResult:
    s = study.load()
    records_in = count_source_records(s.config.sources, s.root)
    wh = s.warehouse
    table = reconcile(records_in, wh.read("traffic_manifest"), wh.read("traffic_quarantine"))
    bad = table.filter(~table["balanced"])
    return dg.AssetCheckResult(
        passed=bad.is_empty(),
        metadata={"per_source": md_table(table),
                  "unbalanced_sources": bad["source"].to_list()},
    )


@dg.asset_check(
    asset="deidentified_conversations",
    blocking=True,
    description="Great Expectations: no residual identifiers outside the allow-listed surrogates, only consented "
    "rows, no message emptied by scrubbing, canary rows and canary values gone. (The gate inside the asset "
    "is what stops a leak from being stored; this check re-verifies what was stored.)",
)
def deidentified_passes_expectations(study: StudyResource, privacy_key: PrivacyKeyResource) -> dg.AssetCheckResult:
    s = study.load()
    canaries = _canaries(s, privacy_key)

    def messages() -> Iterator[pd.DataFrame]:
        # One row per message, batch by batch; the conversation-level flags are repeated on each message.
        for frame in s.warehouse.row_groups("deidentified_conversations"):
            yield (frame.select("source", "consent_ok", "emptied_by_scrub", "messages").explode("messages")
                   .select("source", "consent_ok", "emptied_by_scrub", content=pl.col("messages").struct.field("content").fill_null(""))
                   .to_pandas())

    return _suite_result(run_suite(messages(), deidentified_expectations(canaries)))


@dg.asset_check(
    asset="agentic_trajectories",
    blocking=True,
    description="Great Expectations over every stored trajectory string (messages, tool calls, recorded tool outputs, "
    "tool descriptions): no residual identifiers outside the allow-listed surrogates, no canary trajectory, no canary "
    "value. Interface syntax shielded from the scrubber (line numbers, window headers) is shielded here too.",
)
def agentic_trajectories_pass_expectations(study: StudyResource, privacy_key: PrivacyKeyResource) -> dg.AssetCheckResult:
    s = study.load()
    canaries = _canaries(s, privacy_key)
    texts = stored_texts(trajectories_of(s.warehouse.read("agentic_trajectories")))
    wanted = {"no_residual_identifiers", "no_canary_rows", "canary_values_removed"}
    return _suite_result(run_suite([texts.to_pandas()], [c for c in deidentified_expectations(canaries) if c[0] in wanted]),
                         texts=len(texts))
