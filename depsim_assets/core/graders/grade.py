"""Grade one release: run every configured grader over its completions and attach eligibility."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

from depsim_assets.core.config import Study
from depsim_assets.core.graders.base import (
    LABEL_SCHEMA,
    Grader,
    RecordedGrader,
    ReviewGrader,
    RulesGrader,
)
from depsim_assets.core.graders.judge import JudgeGrader
from depsim_assets.core.graders.taxonomy import (
    Category,
    load_taxonomy,
    request_eligibility,
)


ITEM_COMPLETION_COLUMNS = ["prefix_id", "sample_index", "response_text", "tool_calls", "reasoning", "status"]
ITEM_PREFIX_COLUMNS = ["prefix_id", "conversation_id", "attributes", "messages"]


def grade_release(study: Study, release: str, prefixes: pl.DataFrame, completions: pl.DataFrame, store: Any,
                  endpoint: Any, log: Callable[[str], None] = lambda _: None) -> pl.DataFrame:
    """One label row per (completion, category, grader), with each category's eligibility."""
    if "reasoning" not in completions.columns:  # recorded completions from a file carry no reasoning
        completions = completions.with_columns(reasoning=pl.lit(None, pl.String))
    items = completions.select(ITEM_COMPLETION_COLUMNS).join(prefixes.select(ITEM_PREFIX_COLUMNS), on="prefix_id", how="left")
    return grade_items(study, release, items, store, endpoint, log)


def grade_items(study: Study, release: str, items: pl.DataFrame, store: Any, endpoint: Any,
                log: Callable[[str], None] = lambda _: None) -> pl.DataFrame:
    """Grade items (ITEM_COMPLETION_COLUMNS + ITEM_PREFIX_COLUMNS): completions, or rendered agentic rollouts."""
    taxonomy = load_taxonomy(study.config.taxonomy)
    eligible = {c.id: c.eligibility.mask(items) for c in taxonomy.categories}
    out = []
    for cfg in study.config.graders:
        grader: Grader
        if cfg.kind == "rules":
            grader = RulesGrader(cfg)
        elif cfg.kind == "recorded":
            grader = RecordedGrader(cfg, study.root)
        elif cfg.kind == "review":
            grader = ReviewGrader(cfg, study.root)
        else:
            grader = JudgeGrader(cfg, study.config.dispatch, store, endpoint, log)
        categories: list[Category] = (
            [taxonomy.get(cid) for cid in cfg.categories] if cfg.categories
            else list(taxonomy.categories) if cfg.kind == "review" else [c for c in taxonomy.categories if cfg.kind in c.graders]
        )
        ok_items = items.filter(pl.col("status") == "ok")
        labels = grader.grade(ok_items, categories, release) if len(ok_items) else LABEL_SCHEMA.to_frame()
        if cfg.kind == "recorded" and len(ok_items) and labels.is_empty():  # said, not silently dropped
            log(f"grader {cfg.id}: no recorded labels for release '{release}' (no file at {cfg.path}): it grades nothing here")
        failed = items.filter(pl.col("status") != "ok")
        if len(failed) and cfg.kind != "review":  # people reviewed completions that exist
            # A completion that failed cannot be graded: its labels are failed rows, not missing ones.
            version = labels["grader_version"].first() if len(labels) else ""
            labels = pl.concat([labels, pl.DataFrame(
                [{"prefix_id": p, "sample_index": s, "category": c.id, "grader_id": cfg.id, "grader_version": version, "human": cfg.human,
                  "flagged": None, "severity": None, "rationale": None, "status": "failed", "failure_reason": "completion_failed"}
                 for p, s in failed.select("prefix_id", "sample_index").iter_rows() for c in categories], schema=LABEL_SCHEMA)])
        out.append(labels)
    labels = pl.concat(out) if out else LABEL_SCHEMA.to_frame()
    for c in taxonomy.categories:
        if c.eligibility.request is not None:
            eligible[c.id] = eligible[c.id] & request_eligibility(labels, items, c.eligibility.request)
    flags = items.select("prefix_id", "sample_index", **{cid: m for cid, m in eligible.items()}).unpivot(
        index=["prefix_id", "sample_index"], variable_name="category", value_name="eligible"
    )
    return labels.join(flags, on=["prefix_id", "sample_index", "category"], how="left").with_columns(pl.col("eligible").fill_null(False))


def label_summary(labels: pl.DataFrame) -> pl.DataFrame:
    return (
        labels.group_by("grader_id", "category")
        .agg(
            eligible=pl.col("eligible").sum(),
            flagged=(pl.col("flagged").fill_null(False) & pl.col("eligible")).sum(),
            failed=(pl.col("status") != "ok").sum(),
        )
        .sort("category", "grader_id")
    )
