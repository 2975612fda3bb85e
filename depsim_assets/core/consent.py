"""Consent policy: which normalized conversations may be used for model-improvement work."""

from __future__ import annotations

import polars as pl

from depsim_assets.core.config import SourceConfig


# The unit kept or excluded whole: an hh-rlhf pair (its two sides share one prefix), else a conversation.
UNIT_ID = pl.coalesce("pair_id", "conversation_id")


def consent_mask(conversations: pl.DataFrame, sources: list[SourceConfig]) -> pl.Expr:
    """True where the record's source is public, or its consent field holds an allowed value."""
    clauses = []
    for s in sources:
        allowed = [v.lower() for v in s.consent_values]
        ok = pl.lit(True) if s.consent == "public" else pl.col("consent").str.to_lowercase().str.strip_chars().is_in(allowed).fill_null(False)
        clauses.append(pl.when(pl.col("source") == s.name).then(ok))
    return pl.coalesce([*clauses, pl.lit(False)]) if clauses else pl.lit(False)


def tag_exclusions(conversations: pl.DataFrame, sources: list[SourceConfig]) -> pl.DataFrame:
    """The conversations with `exclusion`: why each is excluded (`no_consent`, `multimodal`) or null. An
    hh-rlhf pair is kept or excluded as a whole, since its two sides share one prefix."""
    return conversations.with_columns(
        exclusion=pl.when(~consent_mask(conversations, sources))
        .then(pl.lit("no_consent"))
        .when(pl.col("multimodal"))
        .then(pl.lit("multimodal"))
        .otherwise(None)
    ).with_columns(
        exclusion=pl.col("exclusion").drop_nulls().first().over(UNIT_ID)
    )


def split_consent(tagged: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(kept conversations, exclusion counts by source and reason) of a tagged frame."""
    kept = tagged.filter(pl.col("exclusion").is_null()).drop("exclusion")
    excluded = (
        tagged.filter(pl.col("exclusion").is_not_null())
        .group_by("source", "exclusion")
        .agg(pl.len().cast(pl.Int64).alias("conversations"))
        .rename({"exclusion": "reason"})
        .sort("source", "reason")
    )
    return kept, excluded


def apply_consent(conversations: pl.DataFrame, sources: list[SourceConfig]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(kept conversations, exclusion counts by source and reason)."""
    return split_consent(tag_exclusions(conversations, sources))
