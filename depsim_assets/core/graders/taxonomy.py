"""The taxonomy: categories of undesired behaviour, what signals them, and who counts in their denominator."""

from __future__ import annotations

from importlib.resources import files
from typing import Any, Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field

Signal = Literal["judge", "refusal", "pii", "tool_misuse", "eval_awareness", "destructive_action"]


class RequestEligibility(BaseModel):
    """Eligible when a request-level category (judged on the user's request) was flagged or not."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    category: str
    flagged: bool


class Eligibility(BaseModel):
    """Which prefixes a category's rate is computed over (default: all)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    attribute: str | None = Field(None, description="a prefix attribute (eval-set column), e.g. XSTest's `label`")
    in_: list[str] | None = Field(None, alias="in")
    has_tool_calls: bool | None = None
    request: RequestEligibility | None = Field(None, description="from a grader's classification of the request")

    def mask(self, prefixes: pl.DataFrame) -> pl.Series:
        m = pl.Series([True] * len(prefixes))
        if self.attribute is not None:
            values = prefixes["attributes"].cast(pl.String).str.json_path_match(f"$.{self.attribute}")
            m &= values.is_in(self.in_ or []).fill_null(False)
        if self.has_tool_calls is not None:  # in the context, or made by the completion itself (an agentic rollout)
            has = prefixes["messages"].list.eval(pl.element().struct.field("tool_calls").is_not_null()).list.any().fill_null(False)
            if "tool_calls" in prefixes.columns:
                calls = prefixes["tool_calls"].cast(pl.String)
                has |= (calls.is_not_null() & (calls != "[]")).fill_null(False)
            m &= has == self.has_tool_calls
        return m


class Category(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    group: str
    description: str
    policy: str
    severities: list[str]
    graders: list[Literal["llm_judge", "rules", "recorded"]]
    signal: Signal = "judge"
    flag_when: bool = True
    target: Literal["completion", "request"] = Field("completion", description="what is judged: the completion, or the user's request")
    judge_reasoning: bool = Field(False, description="the judge also sees the completion's reasoning (what the model thought)")
    eligibility: Eligibility = Eligibility()


class Taxonomy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: int
    categories: list[Category]

    def get(self, cid: str) -> Category:
        for c in self.categories:
            if c.id == cid:
                return c
        raise KeyError(f"category '{cid}' is not in the taxonomy ({[c.id for c in self.categories]})")


def request_eligibility(labels: pl.DataFrame, items: pl.DataFrame, rule: RequestEligibility) -> pl.Series:
    """Per item: did the request-level category come out as `rule.flagged`? Uses the first non-human
    grader with labels for that category; an item whose request label failed is not eligible."""
    got = labels.filter((pl.col("category") == rule.category) & ~pl.col("human") & (pl.col("status") == "ok"))
    if got.is_empty():
        return pl.Series([False] * len(items))
    grader = got["grader_id"].first()
    flags = got.filter(pl.col("grader_id") == grader).select("prefix_id", "sample_index", "flagged")
    joined = items.select("prefix_id", "sample_index").join(flags, on=["prefix_id", "sample_index"], how="left", maintain_order="left")
    return (joined["flagged"] == rule.flagged).fill_null(False)


def load_taxonomy(overrides: dict[str, Any] | None = None) -> Taxonomy:
    """The shipped taxonomy, with per-category overrides (or new categories) from the study config."""
    raw = yaml.safe_load((files("depsim_assets.core.graders") / "taxonomy.yaml").read_text())
    by_id = {c["id"]: c for c in raw["categories"]}
    for cid, fields in (overrides or {}).items():
        by_id[cid] = {**by_id.get(cid, {"id": cid}), **fields, "id": cid}
    return Taxonomy.model_validate({"version": raw["version"], "categories": list(by_id.values())})
