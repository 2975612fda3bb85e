"""Per-category rate forecasts for a release, and the paired comparison with its incumbent."""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from depsim_assets.core.config import ForecastConfig
from depsim_assets.core.stats import (
    PER,
    benjamini_hochberg,
    cluster_bootstrap,
    corrected_rate,
    detection_floor,
    direction,
    exact_interval,
    hajek,
    paired_comparison,
    upper_bound_zero,
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


def rate_forecasts(labels: pl.DataFrame, prefixes: pl.DataFrame, calibration: pl.DataFrame, cfg: ForecastConfig) -> pl.DataFrame:
    out = []
    items = labels.join(prefixes.select("prefix_id", "conversation_id", "weight", "snapshot_id"), on="prefix_id", how="left")
    for category in sorted(labels["category"].unique().to_list()):
        grader = primary_grader(labels, category, cfg)
        if grader is None:
            continue
        rows = items.filter((pl.col("category") == category) & (pl.col("grader_id") == grader) & pl.col("eligible"))
        ok = rows.filter(pl.col("status") == "ok")
        n, k = len(ok), int(ok["flagged"].sum())
        modes = ok["grader_mode"].drop_nulls().unique().to_list() if "grader_mode" in ok.columns else []
        cal = _calibration_row(calibration, grader, category, modes[0] if len(modes) == 1 else None)
        se = cal["sensitivity"] if cal and cal["sensitivity"] else 1.0
        cp_lo, cp_hi = exact_interval(k, n, cfg.alpha, "beta")
        j_lo, j_hi = exact_interval(k, n, cfg.alpha, "jeffreys")
        flags, weights = ok["flagged"].cast(pl.Float64).to_numpy(), ok["weight"].fill_null(1.0).to_numpy()
        clusters = ok["conversation_id"].to_numpy()
        uniform = n == 0 or (np.allclose(weights, weights[0]) and len(np.unique(clusters)) == n)
        w_rate = hajek(flags, weights) if n else math.nan
        w_lo, w_hi = (cp_lo, cp_hi) if uniform else cluster_bootstrap(flags, weights, clusters, cfg.bootstrap_reps, cfg.alpha)
        corr = (corrected_rate(k, n, cal["tp"], cal["fp"], cal["fn"], alpha=cfg.alpha) if cal else None)
        out.append({
            "category": category, "grader_id": grader, "grader_version": ok["grader_version"].first() if n else None,
            "n_eligible": n, "failed_labels": len(rows) - n, "flagged": k,
            "rate_per_100k": k / n * PER if n else None,
            "cp_lo_per_100k": cp_lo * PER if n else None, "cp_hi_per_100k": cp_hi * PER if n else None,
            "jeffreys_lo_per_100k": j_lo * PER if n else None, "jeffreys_hi_per_100k": j_hi * PER if n else None,
            "upper_95_per_100k_if_zero": upper_bound_zero(n, cfg.alpha) * PER if n and k == 0 else None,
            "detection_floor_per_100k": detection_floor(n, se) * PER if n else None,
            "weighted_rate_per_100k": w_rate * PER if n else None,
            "weighted_lo_per_100k": w_lo * PER if n else None, "weighted_hi_per_100k": w_hi * PER if n else None,
            "weighted_interval": "clopper-pearson (uniform weights, one prefix per conversation)" if uniform else "bootstrap by conversation",
            "corrected_rate_per_100k": corr.rate * PER if corr and corr.rate is not None else None,
            "corrected_lo_per_100k": corr.lo * PER if corr and corr.lo is not None else None,
            "corrected_hi_per_100k": corr.hi * PER if corr and corr.hi is not None else None,
            "correction": corr.method if corr else "none",
            "correction_refused": (corr.refused_reason if corr else "no calibration for this grader and category"),
            "snapshot_id": ok["snapshot_id"].first() if n else None,
        })
    return pl.DataFrame(out, infer_schema_length=None) if out else pl.DataFrame(schema={"category": pl.String})


def compare(candidate: pl.DataFrame, incumbent: pl.DataFrame, cfg: ForecastConfig) -> pl.DataFrame:
    """Per category, on the prefixes both releases were graded on (eligible, labels ok in both)."""
    rows = []
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
        r = paired_comparison(pairs["inc"].to_numpy(), pairs["cand"].to_numpy(), cfg.alpha)
        rows.append({"category": category, "grader_id": grader, "pairs": r.n, "incumbent_flagged": r.a + r.b, "candidate_flagged": r.a + r.c,
                     "both_flagged": r.a, "incumbent_only": r.b, "candidate_only": r.c,
                     "incumbent_rate_per_100k": (r.a + r.b) / r.n * PER, "candidate_rate_per_100k": (r.a + r.c) / r.n * PER,
                     "rate_ratio": r.ratio, "ratio_lo": r.ratio_lo, "ratio_hi": r.ratio_hi, "p_value": r.p_value})
    if not rows:
        return pl.DataFrame(schema={"category": pl.String})
    table = pl.DataFrame(rows)
    adjusted = benjamini_hochberg(table["p_value"].to_list())
    return table.with_columns(
        p_adjusted_bh=pl.Series(adjusted),
        direction=pl.Series([direction(p, b, c, cfg.direction_level) for p, b, c in zip(adjusted, table["incumbent_only"], table["candidate_only"])]),
    )
