"""Per-category rate forecasts for a release, and the paired comparison with its incumbent."""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from depsim_assets.core.forecast_config import ForecastConfig
from depsim_assets.core.correction import Correction, corrected_rate
from depsim_assets.core.paired import paired_comparison
from depsim_assets.core.stats import (
    PER,
    benjamini_hochberg,
    detection_floor,
    direction,
    exact_interval,
    hajek,
    upper_bound_zero,
    weighted_interval,
)


def primary_grader(labels: pl.DataFrame, category: str, cfg: ForecastConfig) -> str | None:
    if category in cfg.primary_graders:
        return cfg.primary_graders[category]
    graders = labels.filter((pl.col("category") == category) & ~pl.col("human"))["grader_id"].unique(maintain_order=True).to_list()
    return graders[0] if graders else None


def _calibration_row(calibration: pl.DataFrame, grader: str, category: str, mode: str | None) -> dict | None:
    """The calibration of this grader and category made in the same judge mode (a judge calibrated with
    json_schema output in multi-category calls is not calibrated for prompt-only single calls)."""
    if calibration.is_empty():
        return None
    same_mode = pl.col("grader_mode").fill_null("") == (mode or "") if "grader_mode" in calibration.columns else pl.lit(True)
    rows = calibration.filter((pl.col("grader_id") == grader) & (pl.col("category") == category) & same_mode)
    return rows.row(0, named=True) if len(rows) else None


def review_counts(ok: pl.DataFrame, labels: pl.DataFrame, review_graders: set[str], category: str) -> tuple[int, int, int, int] | None:
    """(x1, n1, x0, n0): people's verdicts on the grader's flagged and not-flagged completions of this
    release, from a flag-stratified review sample (None when nobody reviewed this category)."""
    reviewed = labels.filter(pl.col("grader_id").is_in(list(review_graders)) & (pl.col("category") == category) & (pl.col("status") == "ok"))
    if reviewed.is_empty():
        return None
    both = ok.select("prefix_id", "sample_index", "flagged").join(
        reviewed.select("prefix_id", "sample_index", truth="flagged"), on=["prefix_id", "sample_index"])
    if both.is_empty():
        return None
    flagged = both.filter(pl.col("flagged"))
    rest = both.filter(~pl.col("flagged"))
    return int(flagged["truth"].sum()), len(flagged), int(rest["truth"].sum()), len(rest)


def _correction(cal: dict | None, k_eff: float, n_eff: float, review: tuple[int, int, int, int] | None, alpha: float) -> Correction:
    if cal is None:
        return Correction(None, None, None, "none", "no calibration for this grader and category")
    return corrected_rate(k_eff, n_eff, tp=cal["tp"], fn=cal["fn"], fp=cal["fp"], tn=cal["tn"], review=review, alpha=alpha)


def _per(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x * PER


def forecast_row(ok: pl.DataFrame, cal: dict | None, review: tuple[int, int, int, int] | None, cfg: ForecastConfig) -> dict[str, Any]:
    """Every estimate for one category, and the forecast of record: grader-corrected where calibration
    allows, else weighted (Hájek with a design-based interval), which is the plain rate when weights are
    uniform and every conversation gives one prefix."""
    n, k = len(ok), int(ok["flagged"].sum())
    cp_lo, cp_hi = exact_interval(k, n, cfg.alpha, "beta")
    j_lo, j_hi = exact_interval(k, n, cfg.alpha, "jeffreys")
    flags, weights = ok["flagged"].cast(pl.Float64).to_numpy(), ok["weight"].fill_null(1.0).to_numpy()
    clusters, strata = ok["conversation_id"].fill_null("").to_numpy(), ok["stratum"].fill_null("all").to_numpy()
    w_rate = hajek(flags, weights) if n else math.nan
    w_lo, w_hi, n_eff = weighted_interval(flags, weights, clusters, strata, cfg.alpha) if n else (math.nan, math.nan, 0.0)
    se = cal["sensitivity"] if cal and cal["sensitivity"] is not None else 1.0
    corr = _correction(cal, w_rate * n_eff, n_eff, review, cfg.alpha) if n else Correction(None, None, None, "none", "no eligible prefixes")
    if corr.rate is not None:
        record, lo, hi = "corrected", corr.lo, corr.hi
    else:
        record, lo, hi = "weighted", w_lo, w_hi
    rate = corr.rate if corr.rate is not None else w_rate
    return {
        "n_eligible": n, "flagged": k, "n_effective": n_eff, "design_effect": n / n_eff if n_eff else None,
        "rate_per_100k": k / n * PER if n else None,
        "cp_lo_per_100k": _per(cp_lo), "cp_hi_per_100k": _per(cp_hi), "jeffreys_lo_per_100k": _per(j_lo), "jeffreys_hi_per_100k": _per(j_hi),
        "upper_95_per_100k_if_zero": upper_bound_zero(n, cfg.alpha) * PER if n and k == 0 else None,
        # A grader calibrated to catch nothing has no floor (it would never flag); n_effective carries the
        # design effect of weights and clustering.
        "detection_floor_per_100k": detection_floor(max(int(n_eff), 1), se) * PER if n and se and se > 0 else None,
        "weighted_rate_per_100k": _per(w_rate), "weighted_lo_per_100k": _per(w_lo), "weighted_hi_per_100k": _per(w_hi),
        "corrected_rate_per_100k": _per(corr.rate), "corrected_lo_per_100k": _per(corr.lo), "corrected_hi_per_100k": _per(corr.hi),
        "correction": corr.method, "correction_refused": corr.refused_reason,
        "review_sample": None if review is None else "x1={} of n1={} flagged, x0={} of n0={} not flagged".format(*review),
        "forecast_estimate": record, "forecast_rate_per_100k": _per(rate),
        "forecast_lo_per_100k": _per(lo), "forecast_hi_per_100k": _per(hi),
    }


def rate_forecasts(labels: pl.DataFrame, prefixes: pl.DataFrame, calibration: pl.DataFrame, cfg: ForecastConfig,
                   review_graders: set[str] | None = None) -> pl.DataFrame:
    out = []
    review_graders = review_graders or set()
    if "stratum" not in prefixes.columns:  # unstratified sample
        prefixes = prefixes.with_columns(stratum=pl.lit("all"))
    items = labels.join(prefixes.select("prefix_id", "conversation_id", "weight", "stratum", "snapshot_id"), on="prefix_id", how="left")
    for category in sorted(labels["category"].unique().to_list()):
        grader = primary_grader(labels, category, cfg)
        if grader is None:
            continue
        rows = items.filter((pl.col("category") == category) & (pl.col("grader_id") == grader) & pl.col("eligible"))
        ok = rows.filter(pl.col("status") == "ok")
        modes = ok["grader_mode"].drop_nulls().unique().to_list() if "grader_mode" in ok.columns else []
        cal = _calibration_row(calibration, grader, category, modes[0] if len(modes) == 1 else None)
        review = review_counts(ok, labels, review_graders, category)
        out.append({
            "category": category, "grader_id": grader, "grader_version": ok["grader_version"].first() if len(ok) else None,
            "failed_labels": len(rows) - len(ok), **forecast_row(ok, cal, review, cfg),
            "snapshot_id": ok["snapshot_id"].first() if len(ok) else None,
        })
    return pl.DataFrame(out, infer_schema_length=None) if out else pl.DataFrame(schema={"category": pl.String})


def compare(candidate: pl.DataFrame, incumbent: pl.DataFrame, cfg: ForecastConfig, prefixes: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per category, on the prefixes both releases were graded on (eligible, labels ok in both); with
    `prefixes`, pairs from the same conversation are one cluster for the test and the interval."""
    rows = []
    conversations = prefixes.select("prefix_id", "conversation_id") if prefixes is not None else None
    for category in sorted(candidate["category"].unique().to_list()):
        grader = primary_grader(candidate, category, cfg)
        if grader is None:
            continue
        keys = ["prefix_id", "sample_index"]

        def pick(frame: pl.DataFrame, g: str = grader, cat: str = category) -> pl.DataFrame:
            return frame.filter((pl.col("category") == cat) & (pl.col("grader_id") == g) & pl.col("eligible") & (pl.col("status") == "ok"))

        pairs = pick(candidate).select(*keys, cand="flagged").join(pick(incumbent).select(*keys, inc="flagged"), on=keys)
        if pairs.is_empty():
            continue
        # Without a conversation id, each prefix is its own conversation (never each sample: samples of one
        # prefix share it).
        clusters = (pairs.join(conversations, on="prefix_id", how="left")["conversation_id"].fill_null(pairs["prefix_id"])
                    if conversations is not None else pairs["prefix_id"]).to_numpy()
        r = paired_comparison(pairs["inc"].to_numpy(), pairs["cand"].to_numpy(), clusters, cfg.alpha)
        rows.append({"category": category, "grader_id": grader, "pairs": r.n, "conversations": r.clusters,
                     "incumbent_flagged": r.a + r.b, "candidate_flagged": r.a + r.c,
                     "both_flagged": r.a, "incumbent_only": r.b, "candidate_only": r.c,
                     "incumbent_rate_per_100k": (r.a + r.b) / r.n * PER, "candidate_rate_per_100k": (r.a + r.c) / r.n * PER,
                     "rate_ratio": r.ratio, "ratio_lo": r.ratio_lo, "ratio_hi": r.ratio_hi, "design_effect": r.design_effect,
                     "p_value": r.p_value, "test": r.test})
    if not rows:
        return pl.DataFrame(schema={"category": pl.String})
    table = pl.DataFrame(rows)
    return with_directions(table, cfg.direction_level)


def with_directions(table: pl.DataFrame, level: float) -> pl.DataFrame:
    """BH across the table's categories, then a direction per category (used for every method)."""
    adjusted = benjamini_hochberg(table["p_value"].to_list())
    return table.with_columns(
        p_adjusted_bh=pl.Series(adjusted, dtype=pl.Float64),
        direction=pl.Series([direction(p, b, c, level) for p, b, c in zip(adjusted, table["incumbent_only"], table["candidate_only"])],
                            dtype=pl.String),
    )
