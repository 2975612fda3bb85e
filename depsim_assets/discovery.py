"""Discovery stage: clusters of completions no taxonomy category describes, and which grew versus the incumbent."""

from collections.abc import Callable

import dagster as dg
import polars as pl

from depsim_assets.core.config import ReleaseConfig, Study
from depsim_assets.core.behaviours.auditor import audit_body, audited_frame
from depsim_assets.core.behaviours.items import audit_candidates, discovery_items
from depsim_assets.core.behaviours.run import discover
from depsim_assets.core.privacy.scrub import study_scrubber
from depsim_assets.metadata import cluster_plot
from depsim_assets.metadata import table as table_md
from depsim_assets.partitions import WITH_INCUMBENT, release_partitions
from depsim_assets.realism import ask_structured
from depsim_resources.completion_store import CompletionStoreResource
from depsim_resources.model_endpoint import ModelEndpointResource
from depsim_resources.privacy_key import PrivacyKeyResource
from depsim_resources.study import StudyResource

GROUP = "discovery"


def _audit(s: Study, context: dg.AssetExecutionContext, completion_store: CompletionStoreResource, endpoint: ModelEndpointResource,
           completions: pl.DataFrame, labels: pl.DataFrame, prefixes: pl.DataFrame,
           scrub: Callable[[pl.Series], pl.Series]) -> pl.DataFrame | None:
    """The auditor's verdicts on a sample of unflagged completions of both releases (None: no auditor configured)."""
    cfg = s.config.discovery
    a = cfg.auditor if cfg else None
    if a is None:
        return None
    shown = audit_candidates(completions, discovery_items(completions, labels), cfg.auditor_sample, cfg.seed)
    shown = shown.join(prefixes.select("prefix_id", "messages"), on="prefix_id", how="left")
    # The completion is model output stored as written; the auditor sees it de-identified, like the prefix.
    replies = scrub(shown["response_text"].fill_null(""))
    rows = [([{"role": m["role"], "content": m.get("content") or ""} for m in msgs or []], reply, calls)
            for msgs, reply, calls in zip(shown["messages"].to_list(), replies.to_list(), shown["tool_calls"].to_list(), strict=True)]
    auditor = ReleaseConfig(name=f"auditor.{context.partition_key}", backend="openai", model=a.model, base_url=a.base_url, api_key_env=a.api_key_env)
    answers = ask_structured(s, completion_store, endpoint, auditor, s.config.dispatch.model_copy(update={"timeout_s": a.timeout_s}),
                             lambda mode: [audit_body(a.model, *row, a.max_tokens, mode) for row in rows],
                             shown["prefix_id"].to_list(), a.output, context.log.info)
    return audited_frame(shown, answers, scrub)


@dg.asset(
    group_name=GROUP,
    partitions_def=release_partitions,
    pool="llm",
    ins={name: dg.AssetIn(partition_mapping=WITH_INCUMBENT) for name in ("graded_labels", "regenerated_completions")},
    kinds={"polars", "parquet", "scikit-learn"},
    description="Behaviours no category names: completions of the release and its incumbent (same conversations) that a "
    "machine grader flagged, that a seed pattern matches (a search tool used as a calculator), or that the "
    "`discovery.auditor` judge calls unusual, clustered on embeddings from `discovery.embeddings` (OpenAI-compatible "
    "/v1/embeddings) or offline on TF-IDF + LSA. A cluster is shown only with `k_anonymity` distinct conversations; "
    "its name is made of terms from at least that many, its examples de-identified. Clusters that appeared or grew "
    "(paired ratio interval on conversations above 1, BH-adjusted, fold >= `fold`) come first.",
)
def behaviour_discovery(
    context: dg.AssetExecutionContext, study: StudyResource, model_endpoint: ModelEndpointResource, privacy_key: PrivacyKeyResource,
    completion_store: CompletionStoreResource, graded_labels: pl.LazyFrame, regenerated_completions: pl.LazyFrame,
    replay_prefixes: pl.LazyFrame,
) -> dg.Output[pl.DataFrame]:
    s = study.load()
    cfg = s.config.discovery
    assert cfg is not None
    release = s.config.release(context.partition_key)
    # Lazy inputs keep the `release` column for one partition too (a release without incumbent), as the comparison's do.
    labels, completions = graded_labels.collect(), regenerated_completions.collect()
    scrubber = study_scrubber(privacy_key.key(), s.config.privacy)

    def scrub(texts: pl.Series) -> pl.Series:
        return scrubber.scrub(texts)[0]

    prefixes = replay_prefixes.select("prefix_id", "messages").collect() if cfg.auditor else pl.DataFrame()
    audited = _audit(s, context, completion_store, model_endpoint, completions, labels, prefixes, scrub)
    e = cfg.embeddings
    target = e and ReleaseConfig(name="discovery.embeddings", backend="openai", model=e.model, base_url=e.base_url, api_key_env=e.api_key_env)

    def embed(texts: list[str]) -> tuple[list[list[float]] | None, str | None]:
        # What leaves for the embeddings endpoint is de-identified like every other request.
        return model_endpoint.embed(target, scrub(pl.Series(texts)).to_list(), e.batch_size, e.timeout_s)  # type: ignore[arg-type, union-attr]

    found = discover(completions, labels, release.name, release.incumbent, cfg, s.config.forecasting.alpha,
                     scrub, audited, embed if e is not None else None)
    if "failed" in found.representation:
        context.log.warning(f"{release.name}: {found.representation}")
    shown = found.clusters.select("change", "name", "candidate_conversations", "incumbent_conversations", "rate_ratio", "ratio_lo",
                                  "ratio_hi", "p_adjusted_bh", "categories", example=pl.col("examples").list.first())
    metadata = {
        "incumbent": release.incumbent or "none",
        "representation": found.representation,
        "clusters_shown": len(found.clusters),
        "clusters_below_floor": dg.MetadataValue.int(found.below_floor),
        "k_anonymity": cfg.k_anonymity,
        "items": found.items,
        "conversations_compared": found.conversations,
        "subsampled": found.subsampled,
        "grew_or_appeared": int(found.clusters["change"].is_in(["appeared", "grew"]).sum()),
        "clusters": table_md(shown),
        "cluster_sizes": cluster_plot(found.clusters, release.name, release.incumbent) if len(found.clusters)
        else dg.MetadataValue.md(f"_no cluster spans {cfg.k_anonymity} conversations_"),
    }
    if audited is not None:
        metadata |= {"audited": len(audited), "audited_unusual": int(audited["unusual"].fill_null(False).sum()),
                     "auditor_failed": int(audited["failure_reason"].is_not_null().sum())}
    return dg.Output(found.clusters.with_columns(release=pl.lit(release.name), incumbent=pl.lit(release.incumbent, pl.String)), metadata=metadata)
