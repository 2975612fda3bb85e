"""What discovery clusters: completions any (non-human) grader flagged, that a seed matches, or that the
auditor called unusual, for a release and its incumbent on the same conversations."""

from __future__ import annotations

import polars as pl

from depsim_assets.core.behaviours.seeds import SEEDS, Seed, seed_of
from depsim_assets.core.prefixes import sha256_hex

COMPLETION_COLUMNS = ["release", "prefix_id", "conversation_id", "sample_index", "response_text", "tool_calls"]
AUDIT_SCHEMA = pl.Schema({"release": pl.String, "prefix_id": pl.String, "sample_index": pl.Int64, "unusual": pl.Boolean,
                          "description": pl.String})


def seeded_order(values: pl.Series, seed: int) -> pl.Series:
    """A stable pseudo-random order key per value (SHA-256 of seed and value)."""
    return sha256_hex(pl.Series("order", [f"{seed}:{v}" for v in values.to_list()], dtype=pl.String))


def ok_completions(completions: pl.DataFrame) -> pl.DataFrame:
    frame = completions.filter(pl.col("status") == "ok")
    if "tool_calls" not in frame.columns:
        frame = frame.with_columns(tool_calls=pl.lit(None, pl.String))
    return frame.select(COMPLETION_COLUMNS)


def flagged_categories(labels: pl.DataFrame) -> pl.DataFrame:
    """(release, prefix_id, sample_index, categories): the categories machine graders flagged. Human labels are
    the calibration reference, not a finding, and exist for some releases only."""
    return (labels.filter(pl.col("flagged").fill_null(False) & (pl.col("status") == "ok") & ~pl.col("human").fill_null(False))
            .group_by("release", "prefix_id", "sample_index").agg(categories=pl.col("category").unique().sort()))


def discovery_items(completions: pl.DataFrame, labels: pl.DataFrame, audited: pl.DataFrame | None = None,
                    seeds: list[Seed] = SEEDS) -> pl.DataFrame:
    """One row per completion worth clustering, with why: `categories` flagged, `seed` matched, `unusual` (auditor)."""
    frame = ok_completions(completions)
    audited = audited if audited is not None else AUDIT_SCHEMA.to_frame()
    keys = ["release", "prefix_id", "sample_index"]
    frame = (frame.with_columns(seed=seed_of(frame, seeds))
             .join(flagged_categories(labels), on=keys, how="left")
             .join(audited.select(keys + ["unusual", "description"]), on=keys, how="left")
             .with_columns(categories=pl.col("categories").fill_null(pl.lit([], pl.List(pl.String))),
                           unusual=pl.col("unusual").fill_null(False)))
    return frame.filter((pl.col("categories").list.len() > 0) | pl.col("seed").is_not_null() | pl.col("unusual"))


def paired_conversations(completions: pl.DataFrame, releases: list[str]) -> pl.Series:
    """Conversations every one of `releases` completed: the population a paired comparison runs on."""
    ok = ok_completions(completions).filter(pl.col("release").is_in(releases))
    both = ok.group_by("conversation_id").agg(pl.col("release").n_unique().alias("n")).filter(pl.col("n") == len(releases))
    return both["conversation_id"].sort()


def bound(items: pl.DataFrame, conversations: pl.Series, max_items: int, seed: int) -> tuple[pl.DataFrame, pl.Series]:
    """(items, conversations) restricted to a seeded-hash sample of conversations holding at most `max_items`
    items. The sample is drawn over all conversations, with or without items, so the kept conversations are a
    random sample of the population and the comparison stays unbiased on it."""
    if len(items) <= max_items:
        return items, conversations
    counts = items.group_by("conversation_id").len()
    order = (pl.DataFrame({"conversation_id": conversations})
             .with_columns(order=seeded_order(conversations, seed))
             .sort("order").join(counts, on="conversation_id", how="left", maintain_order="left")
             .with_columns(total=pl.col("len").fill_null(0).cum_sum()))
    kept = order.filter(pl.col("total") <= max_items)["conversation_id"]
    return items.filter(pl.col("conversation_id").is_in(kept.implode())), kept.sort()


def audit_candidates(completions: pl.DataFrame, items: pl.DataFrame, per_release: int, seed: int) -> pl.DataFrame:
    """Completions the auditor is shown: per release, up to `per_release` not already flagged or seeded, by a
    seeded hash order (the same conversations for a release and its incumbent)."""
    frame = ok_completions(completions).filter(pl.col("sample_index") == 0).join(
        items.select("release", "prefix_id", "sample_index"), on=["release", "prefix_id", "sample_index"], how="anti")
    frame = frame.with_columns(order=seeded_order(frame["conversation_id"], seed))
    return frame.sort("order").group_by("release", maintain_order=True).head(per_release).drop("order")
