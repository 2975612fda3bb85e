"""Scoring forecasts against what was observed after release: a direction confusion table, false alarms,
multiplicative error (censored apart) and interval coverage, on the same category set for every method."""

from __future__ import annotations

import math

import numpy as np
import polars as pl

CLASSES = ("up", "down", "none")
METHODS = ("depsim", "previous_production_rate", "challenging_prompts")
UNAVAILABLE = {"challenging_prompts": "unavailable: no release has completions on a challenging-prompt set"}


def observed_direction(ratio: float | None, lo: float | None, hi: float | None, fold: float) -> str | None:
    """'up' / 'down': changed at least `fold` with an interval excluding 1; 'none': no change of `fold`
    (a significant 1.2x is 'none' here); 'unclear': at least `fold` but the interval includes 1 (not
    scored for direction); None: no observed comparison."""
    if ratio is None or lo is None or hi is None or math.isnan(ratio):
        return None
    big = ratio >= fold or ratio <= 1 / fold
    if not big:
        return "none"
    if not (lo > 1 or hi < 1):
        return "unclear"
    return "up" if ratio >= fold else "down"


def multiplicative_error(forecast: float, observed: float, floor: float) -> tuple[float | None, bool]:
    """exp|ln(forecast/observed)| when both are positive. With a zero on one side the true value lies in
    [0, floor]: the error is censored and only its lower bound is returned (max(1, other/floor)), so a zero
    never scores better or worse than what the floor allows. Both zero: no error at all (None, censored)."""
    if forecast > 0 and observed > 0:
        return math.exp(abs(math.log(forecast / observed))), False
    other = max(forecast, observed)
    if other <= 0:
        return None, True
    return max(1.0, other / floor) if floor and floor > 0 else None, True


def confusion(rows: pl.DataFrame) -> dict[str, int]:
    """Counts of predicted x observed direction, keys like 'up->none' (predicted up, observed none)."""
    out = {f"{p}->{o}": 0 for p in (*CLASSES, "missing") for o in CLASSES}
    for p, o in rows.select("predicted_class", "observed_direction").iter_rows():
        if o in CLASSES:
            out[f"{p}->{o}"] += 1
    return out


def confusion_frame(cards: list[dict[str, object]]) -> pl.DataFrame:
    """The confusion counts of every scored method as rows (method, predicted, observed, count), non-zero only."""
    rows = [{"method": c["method"], "predicted": key.split("->")[0], "observed": key.split("->")[1], "count": n}
            for c in cards for key, n in dict(c.get("confusion", {})).items() if n]
    return pl.DataFrame(rows, schema={"method": pl.String, "predicted": pl.String, "observed": pl.String, "count": pl.Int64})


def _errors(rows: pl.DataFrame) -> dict[str, float | int | None]:
    exact, bounds, both_zero = [], [], 0
    for f, o, floor in rows.select("forecast_rate", "observed_rate", "floor").iter_rows():
        if f is None or o is None:
            continue
        e, censored = multiplicative_error(f, o, floor)
        if not censored:
            exact.append(e)
        elif e is None:
            both_zero += 1
        else:
            bounds.append(e)
    return {
        "median_error": float(np.median(exact)) if exact else None, "p90_error": float(np.quantile(exact, 0.9)) if exact else None,
        "max_error": float(max(exact)) if exact else None, "scored": len(exact),
        "censored": len(bounds), "censored_error_lower_bound_median": float(np.median(bounds)) if bounds else None, "both_zero": both_zero,
    }


def _coverage(rows: pl.DataFrame, lo: str, hi: str) -> float | None:
    if lo not in rows.columns:
        return None
    inside = rows.filter(pl.col("observed_rate").is_not_null() & pl.col(lo).is_not_null() & pl.col(hi).is_not_null())
    if inside.is_empty():
        return None
    return float(((inside["observed_rate"] >= inside[lo]) & (inside["observed_rate"] <= inside[hi])).mean())


def classify(rows: pl.DataFrame, fold: float) -> pl.DataFrame:
    return rows.with_columns(
        # up / down / none (no detectable change) / missing (the method forecast nothing)
        predicted_class=pl.when(pl.col("predicted_direction").is_null()).then(pl.lit("missing"))
        .when(pl.col("predicted_direction").is_in(["up", "down"])).then(pl.col("predicted_direction"))
        .otherwise(pl.lit("none")),
        observed_direction=pl.struct("obs_ratio", "obs_ratio_lo", "obs_ratio_hi").map_elements(
            lambda r: observed_direction(r["obs_ratio"], r["obs_ratio_lo"], r["obs_ratio_hi"], fold), return_dtype=pl.String),
    )


def score(rows: pl.DataFrame, fold: float = 1.5) -> dict[str, object]:
    """rows: one per (release, category) of one method, every category observed for the release (a
    category the method did not forecast has predicted_direction null: a miss)."""
    rows = classify(rows, fold)
    table = confusion(rows)
    changed = rows.filter(pl.col("observed_direction").is_in(["up", "down"]))
    unchanged = rows.filter(pl.col("observed_direction") == "none")
    hits = int((changed["predicted_class"] == changed["observed_direction"]).sum())
    alarms = int(unchanged["predicted_class"].is_in(["up", "down"]).sum())
    return {
        "changed_categories": len(changed), "unchanged_categories": len(unchanged),
        "unclear_categories": int((rows["observed_direction"] == "unclear").sum()),
        "directional_accuracy": hits / len(changed) if len(changed) else None,
        "abstention_rate": float((changed["predicted_class"] == "none").mean()) if len(changed) else None,
        "missing_forecasts": int((rows["predicted_class"] == "missing").sum()),
        "false_alarm_rate": alarms / len(unchanged) if len(unchanged) else None,
        **_errors(rows),
        "interval_coverage": _coverage(rows, "forecast_lo", "forecast_hi"),
        "sampling_interval_coverage": _coverage(rows, "sampling_lo", "sampling_hi"),
        "confusion": table,
    }


def complete(rows: pl.DataFrame, observed: pl.DataFrame) -> pl.DataFrame:
    """Every method on the same (release, category) set: the observed one. A method's missing row becomes a
    row with no forecast (a miss for direction, nothing for error or coverage). `observed`: release,
    category, observed_rate and the observed change columns."""
    present = [m for m in METHODS if "method" in rows.columns and m in set(rows["method"].to_list())]
    grid = observed.join(pl.DataFrame({"method": present}, schema={"method": pl.String}), how="cross")
    own = rows.drop([c for c in observed.columns if c not in ("release", "category")], strict=False)
    return grid.join(own, on=["release", "category", "method"], how="left").sort("method", "release", "category")


def summarize(rows: pl.DataFrame, fold: float = 1.5) -> list[dict[str, object]]:
    """The scorecard: one entry per method, or a note saying why a method has nothing to score."""
    out: list[dict[str, object]] = []
    for method in METHODS:
        part = rows.filter(pl.col("method") == method) if "method" in rows.columns else rows.head(0)
        out.append({"method": method, **score(part, fold)} if len(part) else {"method": method, "note": UNAVAILABLE.get(method, "no rows")})
    return out
