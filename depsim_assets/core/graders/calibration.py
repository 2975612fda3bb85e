"""Grader calibration against human labels: sensitivity, specificity, precision, kappa, confusion matrix.

Leave-one-release-out: the calibration used for a release is computed only from *other* releases'
labelled completions, so it is never measured on the completions it will later correct.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from statsmodels.stats.inter_rater import cohens_kappa
from statsmodels.stats.proportion import proportion_confint

KEYS = ["release", "prefix_id", "sample_index", "category"]
# The label columns calibration reads (graded_labels of every release, with its `release`).
CALIBRATION_INPUT = pl.Schema({"release": pl.String, "prefix_id": pl.String, "sample_index": pl.Int64, "category": pl.String,
                               "grader_id": pl.String, "grader_mode": pl.String, "human": pl.Boolean, "flagged": pl.Boolean,
                               "eligible": pl.Boolean,
                               "status": pl.String})


def _rate(k: int, n: int) -> tuple[float | None, float | None, float | None]:
    if n == 0:
        return None, None, None
    lo, hi = proportion_confint(k, n, alpha=0.05, method="beta")
    return k / n, float(lo), float(hi)


def _kappa(tp: int, fn: int, fp: int, tn: int) -> float | None:
    table = np.array([[tp, fn], [fp, tn]], dtype=float)
    if table.sum() == 0:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):  # degenerate tables: statsmodels' z-test divides by 0
        k = float(cohens_kappa(table).kappa)
    return None if math.isnan(k) else k


def confusion(labels: pl.DataFrame, exclude_release: str | None = None) -> pl.DataFrame:
    """Per (grader, category): tp, fn, fp, tn against the human reference, over eligible, ok labels."""
    usable = labels.filter((pl.col("status") == "ok") & pl.col("eligible"))
    if exclude_release is not None:
        usable = usable.filter(pl.col("release") != exclude_release)
    truth = usable.filter(pl.col("human")).group_by(KEYS).agg(truth=pl.col("flagged").first())
    mode = pl.col("grader_mode").fill_null("") if "grader_mode" in usable.columns else pl.lit("")
    pred = usable.filter(~pl.col("human")).select(*KEYS, "grader_id", "flagged", grader_mode=mode)
    joined = pred.join(truth, on=KEYS, how="inner")
    return (
        joined.group_by("grader_id", "grader_mode", "category")
        .agg(
            tp=(pl.col("flagged") & pl.col("truth")).sum(),
            fn=(~pl.col("flagged") & pl.col("truth")).sum(),
            fp=(pl.col("flagged") & ~pl.col("truth")).sum(),
            tn=(~pl.col("flagged") & ~pl.col("truth")).sum(),
            releases=pl.col("release").n_unique(),
        )
        .sort("grader_id", "grader_mode", "category")
    )


def calibrate(labels: pl.DataFrame, exclude_release: str | None = None) -> pl.DataFrame:
    rows = []
    for r in confusion(labels, exclude_release).iter_rows(named=True):
        tp, fn, fp, tn = (int(r[k]) for k in ("tp", "fn", "fp", "tn"))
        sens, sens_lo, sens_hi = _rate(tp, tp + fn)
        spec, spec_lo, spec_hi = _rate(tn, tn + fp)
        ppv, ppv_lo, ppv_hi = _rate(tp, tp + fp)
        rows.append({
            "grader_id": r["grader_id"], "grader_mode": r["grader_mode"] or None, "category": r["category"], "n": tp + fn + fp + tn, "tp": tp, "fn": fn, "fp": fp, "tn": tn,
            "sensitivity": sens, "sensitivity_lo": sens_lo, "sensitivity_hi": sens_hi,
            "specificity": spec, "specificity_lo": spec_lo, "specificity_hi": spec_hi,
            "precision": ppv, "precision_lo": ppv_lo, "precision_hi": ppv_hi,
            "kappa": _kappa(tp, fn, fp, tn), "releases_used": int(r["releases"]), "excluded_release": exclude_release,
        })
    schema = {"grader_id": pl.String, "grader_mode": pl.String, "category": pl.String, "n": pl.Int64, "tp": pl.Int64, "fn": pl.Int64, "fp": pl.Int64, "tn": pl.Int64,
              **{f"{m}{s}": pl.Float64 for m in ("sensitivity", "specificity", "precision") for s in ("", "_lo", "_hi")},
              "kappa": pl.Float64, "releases_used": pl.Int64, "excluded_release": pl.String}
    return pl.DataFrame(rows, schema=schema)
