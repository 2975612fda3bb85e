"""Scoring forecasts against what was observed after release: direction, multiplicative error, coverage."""

from __future__ import annotations

import math

import numpy as np
import polars as pl


def multiplicative_error(forecast: float, observed: float, floor: float) -> tuple[float, bool]:
    """exp|ln(forecast/observed)|, with a zero on either side floored at the detection limit (and the
    result marked censored, since the true error may be smaller or larger)."""
    censored = forecast <= 0 or observed <= 0
    f = forecast if forecast > 0 else floor
    o = observed if observed > 0 else floor
    return math.exp(abs(math.log(f / o))), censored


def observed_direction(ratio: float, lo: float, hi: float, fold: float) -> str | None:
    """'up' / 'down' when the observed change is at least `fold` and its interval excludes 1; else None."""
    if not (lo > 1 or hi < 1):
        return None
    if ratio >= fold:
        return "up"
    if ratio <= 1 / fold:
        return "down"
    return None


def score(rows: pl.DataFrame, fold: float = 1.5) -> dict[str, float | int | None]:
    """rows: one per (release, category) with predicted_direction, forecast/observed rates, the forecast
    interval, the detection floor, and the observed change vs the incumbent (ratio with interval)."""
    changed = rows.with_columns(
        observed_direction=pl.struct("obs_ratio", "obs_ratio_lo", "obs_ratio_hi").map_elements(
            lambda r: observed_direction(r["obs_ratio"], r["obs_ratio_lo"], r["obs_ratio_hi"], fold)
            if r["obs_ratio"] is not None and not math.isnan(r["obs_ratio"]) else None, return_dtype=pl.String)
    ).filter(pl.col("observed_direction").is_not_null())
    hits = int((changed["predicted_direction"] == changed["observed_direction"]).sum())
    abstained = int((changed["predicted_direction"] == "no detectable change").sum())
    errors, censored = [], 0
    for f, o, floor in rows.select("forecast_rate", "observed_rate", "floor").iter_rows():
        if f is None or o is None:
            continue
        e, c = multiplicative_error(f, o, floor)
        errors.append(e)
        censored += c
    inside = rows.filter(pl.col("observed_rate").is_not_null() & pl.col("forecast_lo").is_not_null())
    covered = int(((inside["observed_rate"] >= inside["forecast_lo"]) & (inside["observed_rate"] <= inside["forecast_hi"])).sum())
    return {
        "changed_categories": len(changed),
        "directional_accuracy": hits / len(changed) if len(changed) else None,
        "abstention_rate": abstained / len(changed) if len(changed) else None,
        "median_error": float(np.median(errors)) if errors else None,
        "p90_error": float(np.quantile(errors, 0.9)) if errors else None,
        "max_error": float(max(errors)) if errors else None,
        "censored": censored,
        "interval_coverage": covered / len(inside) if len(inside) else None,
        "scored": len(errors),
    }


METHODS = ("depsim", "previous_production_rate", "challenging_prompts")
UNAVAILABLE = {"challenging_prompts": "unavailable: no release has completions on a challenging-prompt set"}


def summarize(rows: pl.DataFrame, fold: float = 1.5) -> list[dict[str, object]]:
    """The scorecard: one entry per method, or a note saying why a method has nothing to score."""
    out: list[dict[str, object]] = []
    for method in METHODS:
        part = rows.filter(pl.col("method") == method) if "method" in rows.columns else rows.head(0)
        out.append({"method": method, **score(part, fold)} if len(part) else {"method": method, "note": UNAVAILABLE.get(method, "no rows")})
    return out
