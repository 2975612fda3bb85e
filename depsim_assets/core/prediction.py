"""Prediction intervals for the rate a release will show in production, not only for the simulation.

The observed rate moves with more than the simulation's sampling error: traffic shifts between the
replayed prefixes and next month's traffic, graders err differently on new completions, releases differ in
ways the simulation misses. An empirical error model learns how far observed rates landed from earlier
forecasts of the same study (the "noise funnel"): per category group, the residuals
r = log(observed / forecast) of scored earlier releases, with

    log(observed) ~ log(forecast) + mu + e,   e ~ N(0, tau^2 + v_forecast + v_observed)

A conjugate normal / scaled-inverse-chi^2 model gives closed forms: mu is shrunk to 0 with weight kappa0,
tau^2 combines the prior (sd `prior_sd` worth `prior_strength` observations) with the residual spread
beyond the sampling variances already in it, and the interval uses Student's t with the posterior degrees
of freedom. With no history the prior alone sets the width: prior_sd = 0.6 on the log scale is a median
multiplicative error of 1.5x (the published figure), worth 4 observations.

Zeros are moved to half the detection floor before taking logs, so a category with nothing flagged still
has a (wide) interval whose lower end is near 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.stats import norm
from scipy.stats import t as student_t

from depsim_assets.core.stats import PER

KAPPA0 = 2.0  # prior weight of mu = 0, in observations

HISTORY_SCHEMA = pl.Schema({"release": pl.String, "category": pl.String, "residual": pl.Float64, "variance": pl.Float64})


@dataclass(frozen=True)
class ErrorModel:
    group: str
    history: int  # residuals it learned from
    mu: float
    tau: float
    df: float
    observed_variance: float  # mean observed-side sampling variance in the history (0 without history)
    source: str


def log_rate(rate, floor):
    """log of a rate, zeros moved to half the detection floor; NaN where neither is usable. Scalars or
    arrays (vectorised for simulation studies)."""
    r = np.asarray(rate if rate is not None else np.nan, dtype=float)
    f = np.asarray(floor if floor is not None else np.nan, dtype=float)
    f = np.where((f > 0) & np.isfinite(f), f, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(r > 0, np.log(np.where(r > 0, r, 1.0)), np.log(f / 2))
    out = np.where(np.isnan(r), np.nan, out)
    return float(out) if out.ndim == 0 else out


def log_variance(lo, hi, floor, alpha: float):
    """Sampling variance on the log scale implied by an interval (zeros moved to half the floor)."""
    a, b = np.asarray(log_rate(lo, floor)), np.asarray(log_rate(hi, floor))
    out = ((b - a) / (2 * norm.ppf(1 - alpha / 2))) ** 2
    return float(out) if out.ndim == 0 else out


def fit(residuals: np.ndarray, variances: np.ndarray, observed_variances: np.ndarray, group: str,
        prior_sd: float, prior_strength: float) -> ErrorModel:
    """The error model of one category group from its scored history (possibly empty)."""
    keep = np.isfinite(residuals) & np.isfinite(variances)
    r, v = residuals[keep], variances[keep]
    m = len(r)
    if m == 0:
        return ErrorModel(group, 0, 0.0, prior_sd, prior_strength, 0.0, f"prior only (sd {prior_sd} on log scale, no scored history)")
    mu = float(r.sum() / (m + KAPPA0))
    excess = max(0.0, float(np.sum((r - r.mean()) ** 2)) - float(v.sum()) * (m - 1) / m) if m > 1 else 0.0
    df = prior_strength + max(m - 1, 0)
    tau = math.sqrt((prior_strength * prior_sd**2 + excess) / df)
    w = observed_variances[np.isfinite(observed_variances)]
    return ErrorModel(group, m, mu, tau, df, float(w.mean()) if len(w) else 0.0,
                      f"{m} scored forecasts of earlier releases, prior sd {prior_sd} worth {prior_strength}")


def interval(model: ErrorModel, rate: float | None, lo: float | None, hi: float | None, floor: float | None,
             alpha: float) -> tuple[float | None, float | None, float | None]:
    """(centre, lo, hi) of the prediction interval for the observed rate, in the forecast's units."""
    centre = log_rate(rate, floor)
    v = log_variance(lo, hi, floor, alpha)
    if math.isnan(centre):
        return None, None, None
    v = 0.0 if math.isnan(v) else v
    sd = math.sqrt(v + model.observed_variance + model.tau**2 * (1 + 1 / (model.history + KAPPA0)))
    q = float(student_t.ppf(1 - alpha / 2, model.df))
    c = centre + model.mu
    return math.exp(c), math.exp(c - q * sd), math.exp(c + q * sd)


def residuals(forecasts: pl.DataFrame, observed: pl.DataFrame, alpha: float) -> pl.DataFrame:
    """History rows: per (release, category) scored earlier, log(observed/forecast) and the sampling
    variances on each side. `forecasts` has the forecast-of-record columns, `observed` the observed rates."""
    joined = forecasts.join(observed, on=["release", "category"], how="inner")
    rows = []
    for f in joined.iter_rows(named=True):
        floor = f.get("detection_floor_per_100k")
        obs_floor = f.get("floor_per_100k") or floor
        r = log_rate(f["rate_per_100k_obs"], obs_floor) - log_rate(f["forecast_rate_per_100k"], floor)
        rows.append({"release": f["release"], "category": f["category"], "residual": r,
                     "variance": log_variance(f["forecast_lo_per_100k"], f["forecast_hi_per_100k"], floor, alpha),
                     "observed_variance": log_variance(f["lo_per_100k"], f["hi_per_100k"], obs_floor, alpha)})
    return pl.DataFrame(rows, schema={**HISTORY_SCHEMA, "observed_variance": pl.Float64})


def predict(forecasts: pl.DataFrame, history: pl.DataFrame, groups: dict[str, str], alpha: float,
            prior_sd: float, prior_strength: float) -> pl.DataFrame:
    """The forecast table with the prediction interval columns added (pi_lo/pi_hi per 100k, the error
    model it came from). `history`: residual rows of releases whose observation windows had closed."""
    group_of = pl.col("category").replace_strict(groups, default="all") if groups else pl.lit("all")
    history = history.with_columns(group=group_of)
    models: dict[str, ErrorModel] = {}
    out = []
    for row in forecasts.with_columns(group=group_of).iter_rows(named=True):
        g = row["group"]
        if g not in models:
            h = history.filter(pl.col("group") == g)
            models[g] = fit(h["residual"].to_numpy(), h["variance"].to_numpy(), h["observed_variance"].to_numpy(), g, prior_sd, prior_strength)
        m = models[g]
        centre, lo, hi = interval(m, row.get("forecast_rate_per_100k"), row.get("forecast_lo_per_100k"), row.get("forecast_hi_per_100k"),
                                  row.get("detection_floor_per_100k"), alpha)
        hi = min(hi, PER) if hi is not None else None  # a log-scale interval can pass 100%: no rate can
        out.append({"category": row["category"], "error_group": g, "pi_centre_per_100k": centre, "pi_lo_per_100k": lo, "pi_hi_per_100k": hi,
                    "error_model": m.source, "error_history": m.history, "error_mu": m.mu, "error_tau": m.tau})
    extra = pl.DataFrame(out, schema={"category": pl.String, "error_group": pl.String, "pi_centre_per_100k": pl.Float64,
                                      "pi_lo_per_100k": pl.Float64, "pi_hi_per_100k": pl.Float64, "error_model": pl.String,
                                      "error_history": pl.Int64, "error_mu": pl.Float64, "error_tau": pl.Float64})
    return forecasts.join(extra, on="category", how="left")


def history(forecasts: pl.DataFrame, observed: pl.DataFrame, releases: list[str], closed: set[str], alpha: float) -> pl.DataFrame:
    """Residuals of the forecasts of record of `releases` (earlier ones whose observation windows closed,
    listed in `closed`) against their observed rates. `forecasts`: rate_forecasts rows with a release column
    (partitions written before the forecast of record existed fall back to the plain rate); `observed`:
    observed_production_rates with a release column."""
    use = [r for r in releases if r in closed]
    if not use or forecasts.is_empty() or observed.is_empty() or "rate_per_100k" not in observed.columns:
        return pl.DataFrame(schema={**HISTORY_SCHEMA, "observed_variance": pl.Float64})
    f = forecasts.filter(pl.col("release").is_in(use))
    for name, fallback in (("forecast_rate_per_100k", "rate_per_100k"), ("forecast_lo_per_100k", "cp_lo_per_100k"),
                           ("forecast_hi_per_100k", "cp_hi_per_100k")):
        if name not in f.columns:
            f = f.with_columns(pl.col(fallback).alias(name))
    f = f.select("release", "category", "forecast_rate_per_100k", "forecast_lo_per_100k", "forecast_hi_per_100k", "detection_floor_per_100k")
    o = observed.select("release", "category", pl.col("rate_per_100k").alias("rate_per_100k_obs"), "lo_per_100k", "hi_per_100k", "floor_per_100k")
    return residuals(f, o, alpha)
