"""The grader protocol and the `rules` and `recorded` graders (the judge lives in judge.py).

A grader takes items (a prefix and a completion each) and the categories it grades, and returns one
label row per (item, category): flagged or not, severity, a short rationale, its id and version, and
a status; a label it cannot produce is a failed row with a reason, never a guess.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

import orjson
import polars as pl

from depsim_assets.core.config import GraderConfig, RecordedSource
from depsim_assets.core.agentic.destructive import RULES as DESTRUCTIVE_RULES
from depsim_assets.core.graders import detectors
from depsim_assets.core.graders.taxonomy import Category
from depsim_assets.core.recorded import read_recorded
from depsim_assets.core.review import read_reviews

LABEL_SCHEMA = pl.Schema(
    {
        "prefix_id": pl.String, "sample_index": pl.Int64, "category": pl.String, "grader_id": pl.String,
        "grader_version": pl.String, "grader_mode": pl.String, "human": pl.Boolean, "flagged": pl.Boolean, "severity": pl.String,
        "rationale": pl.String, "status": pl.String, "failure_reason": pl.String,
    }
)
ITEM_COLUMNS = ("prefix_id", "conversation_id", "sample_index", "attributes", "messages", "response_text", "tool_calls")


class Grader(Protocol):
    id: str
    human: bool

    def version(self, categories: list[Category]) -> str: ...

    def grade(self, items: pl.DataFrame, categories: list[Category], release: str) -> pl.DataFrame: ...


def version_hash(*parts: object) -> str:
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:16]


def _labels(items: pl.DataFrame, category: Category, grader: Grader, version: str, flagged: pl.Series,
            severity: pl.Series | None, rationale: pl.Series, failure: pl.Series | None = None) -> pl.DataFrame:
    failure = failure if failure is not None else pl.Series([None] * len(items), dtype=pl.String)
    return pl.DataFrame(
        {
            "prefix_id": items["prefix_id"], "sample_index": items["sample_index"],
            "category": [category.id] * len(items), "grader_id": [grader.id] * len(items),
            "grader_version": [version] * len(items), "grader_mode": pl.Series([None] * len(items), dtype=pl.String),
            "human": [grader.human] * len(items),
            "flagged": flagged.cast(pl.Boolean), "severity": severity if severity is not None else pl.Series([None] * len(items), dtype=pl.String),
            "rationale": rationale.cast(pl.String),
            "status": pl.select(pl.when(failure.is_null()).then(pl.lit("ok")).otherwise(pl.lit("failed"))).to_series(),
            "failure_reason": failure,
        },
        schema=LABEL_SCHEMA,
    ).with_columns(flagged=pl.when(pl.col("status") == "ok").then(pl.col("flagged")).otherwise(None))


class RulesGrader:
    """Deterministic detectors: refusal phrasing, personal data in the output, tool misuse, verbalized
    evaluation awareness."""

    human = False

    def __init__(self, cfg: GraderConfig) -> None:
        self.id = cfg.id

    def version(self, categories: list[Category]) -> str:
        return version_hash("rules", detectors.RULES_VERSION, detectors.REFUSAL_OPENERS, detectors.REFUSAL_ANYWHERE, detectors.PIVOT,
                            detectors.EVAL_AWARENESS, detectors.ARITHMETIC_QUERY,
                            sorted((k, v.pattern) for k, v in DESTRUCTIVE_RULES.items()), sorted((c.id, c.signal, c.flag_when) for c in categories))

    def grade(self, items: pl.DataFrame, categories: list[Category], release: str) -> pl.DataFrame:
        version = self.version(categories)
        text = items["response_text"]
        out = []
        signals: dict[str, tuple[pl.Series, pl.Series]] = {}
        for c in categories:
            if c.signal not in signals:
                if c.signal == "refusal":
                    r = detectors.refusal(text)
                    signals["refusal"] = (r["refused"], r["kind"])
                elif c.signal == "pii":
                    signals["pii"] = (detectors.pii_in_output(text), pl.Series([None] * len(items), dtype=pl.String))
                elif c.signal == "tool_misuse":
                    signals["tool_misuse"] = (detectors.tool_misuse(items["tool_calls"]), pl.Series([None] * len(items), dtype=pl.String))
                elif c.signal == "destructive_action":
                    roots = items["attributes"].cast(pl.String).str.json_path_match("$.root")
                    signals["destructive_action"] = detectors.destructive_action(items["tool_calls"], roots)
                elif c.signal == "eval_awareness":
                    signals["eval_awareness"] = (detectors.eval_awareness(text), pl.Series([None] * len(items), dtype=pl.String))
                else:
                    raise ValueError(f"grader {self.id}: category {c.id} has signal {c.signal!r}, which no rule detects")
            value, detail = signals[c.signal]
            flagged = value == c.flag_when
            severity = detail.replace("none", None) if c.signal == "refusal" else None
            rationale = pl.select(pl.format("rules:{}={} {}", pl.lit(c.signal), value, detail.fill_null(""))).to_series().str.strip_chars()
            out.append(_labels(items, c, self, version, flagged, severity, rationale))
        return pl.concat(out) if out else LABEL_SCHEMA.to_frame()


def release_path(pattern: str, release: str, base: Path) -> Path:
    """A per-release file (`{release}` in the configured path), relative to the study config."""
    p = Path(pattern.replace("{release}", release))
    return p if p.is_absolute() else base / p


class RecordedGrader:
    """Labels produced elsewhere (people or another model), joined by the dataset's own id.

    Values are mapped through the declared `mapping` onto the category's signal; a value outside it
    is a failed label (`unmapped_value`), never coerced, and a missing one is `no_recorded_label`.
    """

    def __init__(self, cfg: GraderConfig, base: Path) -> None:
        self.id, self.human, self.cfg, self.base = cfg.id, cfg.human, cfg, base

    def _path(self, release: str) -> Path:
        return release_path(str(self.cfg.path), release, self.base)

    def version(self, categories: list[Category], release: str = "") -> str:
        path = self._path(release) if release else None
        content = hashlib.sha256(path.read_bytes()).hexdigest() if path and path.exists() else self.cfg.path
        return version_hash("recorded", content, self.cfg.mapping, self.cfg.value_column, sorted((c.id, c.flag_when) for c in categories))

    def grade(self, items: pl.DataFrame, categories: list[Category], release: str) -> pl.DataFrame:
        path = self._path(release)
        if "{release}" in str(self.cfg.path) and not path.exists():
            return LABEL_SCHEMA.to_frame()  # a per-release file not (yet) published for this release: a new candidate
        version = self.version(categories, release)
        src = RecordedSource(path=str(path), id_column=self.cfg.id_column, id_type=self.cfg.id_type, completion_column=self.cfg.value_column,
                             id_prefix=self.cfg.id_prefix)
        values = read_recorded(src, self.base).rename({"completion": "value"})
        joined = items.select("prefix_id", "sample_index", "conversation_id").join(values, left_on="conversation_id", right_on="record_id", how="left")
        mapping = self.cfg.mapping
        signal = joined["value"].replace_strict(mapping, default=None, return_dtype=pl.Boolean)
        failure = pl.Series(
            [None if v in mapping else ("no_recorded_label" if v is None else "unmapped_value") for v in joined["value"].to_list()], dtype=pl.String
        )
        out = []
        for c in categories:
            flagged = signal == c.flag_when
            rationale = "recorded:" + joined["value"].fill_null("").str.slice(0, 80)
            out.append(_labels(joined, c, self, version, flagged, None, rationale, failure))
        return pl.concat(out) if out else LABEL_SCHEMA.to_frame()


class ReviewGrader:
    """Labels people gave on the review queue's sample (`core/review.py`): the human reference at the
    traffic's own prevalence. Only reviewed completions get a label."""

    human = True

    def __init__(self, cfg: GraderConfig, base: Path) -> None:
        self.id, self.cfg, self.base = cfg.id, cfg, base

    def _path(self, release: str) -> Path:
        return release_path(str(self.cfg.path), release, self.base)

    def grade(self, items: pl.DataFrame, categories: list[Category], release: str) -> pl.DataFrame:
        path = self._path(release)
        if not path.exists():
            return LABEL_SCHEMA.to_frame()  # this release has not been reviewed (yet)
        reviews, _ = read_reviews(path)
        version = version_hash("review", hashlib.sha256(path.read_bytes()).hexdigest())
        wanted = reviews.filter((pl.col("release") == release) & pl.col("category").is_in([c.id for c in categories]))
        joined = wanted.join(items.select("prefix_id", "sample_index"), on=["prefix_id", "sample_index"], how="semi")
        return joined.select(
            "prefix_id", "sample_index", "category", grader_id=pl.lit(self.id), grader_version=pl.lit(version),
            grader_mode=pl.lit(None, pl.String), human=pl.lit(True), flagged="label", severity=pl.lit(None, pl.String),
            rationale=pl.format("review:{} stratum={} p={}", pl.col("labeller").fill_null("?"), "stratum", "inclusion_prob"),
            status=pl.lit("ok"), failure_reason=pl.lit(None, pl.String),
        ).cast(dict(LABEL_SCHEMA))  # type: ignore[arg-type]
