"""The human review loop: a flag-stratified sample of a release's completions for people to label, and
the import of their labels as a human grader.

Per category, the eligible completions a (non-human) grader labelled are split into two strata —
flagged and not flagged — and up to `per_stratum` are drawn from each by a SHA-256 ranking (stable
across library versions). Each row carries its stratum and inclusion probability n_h / N_h, so an
estimator can weight the labels back to the traffic's own prevalence: precision and sensitivity
measured on this sample hold where the grader runs, unlike on an enriched benchmark set.

Shared schema (export and import): prefix_id, sample_index, release, category, grader_id, stratum,
inclusion_prob, request, completion, grader_flagged, label, labeller.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from depsim_assets.core.config import ReviewConfig
from depsim_assets.core.prefixes import sha256_hex

REVIEW_SCHEMA = pl.Schema({
    "prefix_id": pl.String, "sample_index": pl.Int64, "release": pl.String, "category": pl.String, "grader_id": pl.String,
    "stratum": pl.String, "inclusion_prob": pl.Float64, "request": pl.String, "completion": pl.String,
    "grader_flagged": pl.Boolean, "label": pl.Boolean, "labeller": pl.String,
})
IMPORT_COLUMNS = ("prefix_id", "sample_index", "release", "category", "stratum", "inclusion_prob", "label", "labeller")
TRUE, FALSE = {"true", "1", "yes", "y", "flagged"}, {"false", "0", "no", "n", "not_flagged"}


def review_sample(labels: pl.DataFrame, completions: pl.DataFrame, prefixes: pl.DataFrame, release: str, cfg: ReviewConfig) -> pl.DataFrame:
    """The sample to label, texts not yet scrubbed (the caller scrubs before anything is stored)."""
    graded = labels.filter(~pl.col("human") & pl.col("eligible") & (pl.col("status") == "ok"))
    if cfg.categories is not None:
        graded = graded.filter(pl.col("category").is_in(cfg.categories))
    # One grader per category: the first non-human grader that labelled it (the forecast's default).
    first = graded.group_by("category", maintain_order=True).agg(pl.col("grader_id").first())
    graded = graded.join(first, on=["category", "grader_id"], how="semi")
    if graded.is_empty():
        return REVIEW_SCHEMA.to_frame()
    keyed = graded.with_columns(stratum=pl.when(pl.col("flagged")).then(pl.lit("flagged")).otherwise(pl.lit("not_flagged")))
    keyed = keyed.with_columns(draw=sha256_hex(keyed.select(pl.format("{}\x1f{}|{}|{}", pl.lit(cfg.seed), "category", "prefix_id",
                                                                     "sample_index")).to_series()))
    sized = keyed.with_columns(N=pl.len().over("category", "stratum"), r=pl.col("draw").rank("ordinal").over("category", "stratum"))
    sample = sized.filter(pl.col("r") <= cfg.per_stratum).with_columns(
        inclusion_prob=pl.min_horizontal(pl.lit(cfg.per_stratum), pl.col("N")) / pl.col("N"))
    request = prefixes.select("prefix_id", request=pl.col("messages").list.eval(
        pl.element().filter(pl.element().struct.field("role") == "user").struct.field("content")).list.last())
    texts = completions.select("prefix_id", "sample_index", completion="response_text")
    return (sample.join(request, on="prefix_id", how="left").join(texts, on=["prefix_id", "sample_index"], how="left")
            .select("prefix_id", "sample_index", release=pl.lit(release), category="category", grader_id="grader_id", stratum="stratum",
                    inclusion_prob="inclusion_prob", request="request", completion="completion", grader_flagged="flagged",
                    label=pl.lit(None, pl.Boolean), labeller=pl.lit(None, pl.String))
            .sort("category", "stratum", "prefix_id", "sample_index"))


def export(frame: pl.DataFrame, folder: Path, release: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    csv, jsonl = folder / f"{release}.csv", folder / f"{release}.jsonl"
    frame.write_csv(csv)
    frame.write_ndjson(jsonl)
    return [csv, jsonl]


def _as_bool(values: pl.Series) -> pl.Series:
    text = values.cast(pl.String).str.to_lowercase().str.strip_chars()
    return pl.select(pl.when(text.is_in(list(TRUE))).then(True).when(text.is_in(list(FALSE))).then(False).otherwise(None)).to_series()


def read_reviews(path: Path) -> tuple[pl.DataFrame, dict[str, int]]:
    """Labelled rows of an exported file (CSV or JSONL) with their counts; rows without a label are not
    labels yet. Raises ValueError naming the missing columns of a file in the wrong shape."""
    frame = pl.read_csv(path, infer_schema_length=0) if path.suffix.lower() == ".csv" else pl.read_ndjson(path)
    missing = [c for c in IMPORT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: not a review file, missing columns {missing} (expected the columns `review_queue` exports)")
    label = _as_bool(frame["label"])
    unreadable = int((label.is_null() & frame["label"].is_not_null() & (frame["label"].cast(pl.String).str.strip_chars() != "")).sum())
    rows = frame.with_columns(label=label, sample_index=pl.col("sample_index").cast(pl.Int64),
                              inclusion_prob=pl.col("inclusion_prob").cast(pl.Float64)).filter(pl.col("label").is_not_null())
    return rows.select(IMPORT_COLUMNS), {"rows": len(frame), "labelled": len(rows), "unreadable_label": unreadable}
