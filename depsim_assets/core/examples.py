"""Flagged examples that explain themselves: which request, which completion, which grader said what, and
whether people who labelled the same completion agreed."""

from __future__ import annotations

import polars as pl

EXCERPT = 240
EXAMPLE_COLUMNS = ["category", "release", "grader_id", "people", "request", "completion", "rationale", "prefix_id"]


def flagged_examples(labels: pl.DataFrame, completions: pl.DataFrame, prefixes: pl.DataFrame, per_cell: int = 1,
                     limit: int = 30) -> pl.DataFrame:
    """Flagged completions of non-human graders, `per_cell` per (category, release) so every release and
    category shows up before any shows twice, picked by a hash of the prefix id (stable, not the
    alphabetically first). `people`: "agree", "DISAGREE" or "" (no human label on that completion).
    `prefixes` needs prefix_id and messages (already de-identified); the completion and rationale are
    returned as stored: scrub them before display."""
    ok = labels.filter((pl.col("status") == "ok") & pl.col("eligible"))
    flagged = ok.filter(pl.col("flagged").fill_null(False) & ~pl.col("human"))
    if flagged.is_empty():
        return pl.DataFrame(schema=dict.fromkeys(EXAMPLE_COLUMNS, pl.String))
    keys = ["release", "prefix_id", "sample_index", "category"]
    people = ok.filter(pl.col("human")).group_by(keys).agg(human_flag=pl.col("flagged").first())
    picked = (flagged.with_columns(order=pl.col("prefix_id").hash(7))
              .sort("category", "release", "order")
              .group_by("category", "release", maintain_order=True).head(per_cell)
              .with_columns(rank=pl.int_range(pl.len()).over("category", "release"))
              .sort("rank", "category", "release").head(limit))
    requests = prefixes.select("prefix_id", request=pl.col("messages").list.eval(
        pl.element().filter(pl.element().struct.field("role") == "user").struct.field("content")).list.last())
    return (picked.join(people, on=keys, how="left")
            .join(completions.select("release", "prefix_id", "sample_index", "response_text"), on=["release", "prefix_id", "sample_index"], how="left")
            .join(requests, on="prefix_id", how="left")
            .select("category", "release", "grader_id",
                    people=pl.when(pl.col("human_flag").is_null()).then(pl.lit("")).when(pl.col("human_flag")).then(pl.lit("agree"))
                    .otherwise(pl.lit("DISAGREE")),
                    request=pl.col("request").fill_null("").str.slice(0, EXCERPT),
                    completion=pl.col("response_text").fill_null("").str.slice(0, EXCERPT),
                    rationale=pl.col("rationale").fill_null(""), prefix_id="prefix_id"))
