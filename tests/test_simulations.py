"""Simulation studies of depsim's estimators in the regimes users hit: clustered prefixes, rare counts,
grader error with a flag-stratified review, stratified weights, traffic shift between simulated and
observed. The data-generating code is in tests/sim/regimes.py, apart from the estimators. >= 1,000
repetitions per cell (DEPSIM_SIM_REPS raises it); `pytest -s` prints the tables."""

from __future__ import annotations

import numpy as np
import polars as pl
from statsmodels.stats.proportion import proportion_confint

from depsim_assets.core.correction import posterior_review
from depsim_assets.core.paired import paired_comparison
from depsim_assets.core.power import sample_size_precision
from depsim_assets.core.prediction import fit, interval, log_rate, log_variance
from depsim_assets.core.stats import detection_floor, weighted_interval
from tests.sim.regimes import (
    REPS,
    clustered_pairs,
    mcse,
    population_ratio,
    release_history,
    reviewed_traffic,
    stratified_sample,
)


def show(title: str, rows: list[dict]) -> pl.DataFrame:
    table = pl.DataFrame(rows)
    with pl.Config(tbl_rows=60, tbl_width_chars=160, float_precision=3):
        print(f"\n{title} ({REPS} repetitions per cell)\n{table}")
    return table


def test_paired_test_size_under_no_change_with_clustered_prefixes() -> None:
    """No change, 2,000 prefixes at a 1% rate, 4 or 10 per conversation, intra-conversation correlation
    0-0.5, with and without conversations where the releases lean opposite ways (log-tilt sd 1): the
    sign-flip test rejects at most alpha + 2 MCSE; exact McNemar on the same pairs as if independent is
    shown for contrast."""
    rows = []
    for per in (4, 10):
        for icc, tilt in ((0.0, 0.0), (0.2, 0.0), (0.5, 0.0), (0.2, 1.0), (0.5, 1.0)):
            rng = np.random.default_rng(100 + per * 10 + int(icc * 10) + int(tilt))
            p_robust, p_naive = np.empty(REPS), np.empty(REPS)
            for i in range(REPS):
                inc, cand, clusters = clustered_pairs(rng, 2000 // per, per, 0.01, icc, tilt_sd=tilt)
                p_robust[i] = paired_comparison(inc, cand, clusters, seed=i).p_value
                p_naive[i] = paired_comparison(inc, cand).p_value
            for alpha in (0.05, 0.1):
                rows.append({"per_conversation": per, "icc": icc, "tilt_sd": tilt, "alpha": alpha, "sign_flip": float(np.mean(p_robust < alpha)),
                             "naive_mcnemar": float(np.mean(p_naive < alpha)), "bound": alpha + 2 * mcse(alpha)})
    table = show("paired test: rejection rate under no change", rows)
    assert (table["sign_flip"] <= table["bound"]).all(), table


def test_paired_ratio_interval_coverage_at_high_overlap() -> None:
    """The candidate flags 90% of what the incumbent flags and the rate really changed 1.5x or 3x: the
    Bonett-Price interval (design-effect widened with clusters) covers 0.93-0.99."""
    rows = []
    for per, icc in ((1, 0.0), (4, 0.3)):
        for fold in (1.5, 3.0):
            for rate, pairs in ((0.002, 20_000), (0.01, 4_000)):
                truth = population_ratio(rate, icc, fold, 0.9)
                rng = np.random.default_rng(int(fold * 10) + per)
                hits = 0
                for i in range(REPS):
                    inc, cand, clusters = clustered_pairs(rng, pairs // per, per, rate, icc, fold=fold, overlap=0.9)
                    r = paired_comparison(inc, cand, clusters if per > 1 else None, seed=i)
                    hits += r.ratio_lo <= truth <= r.ratio_hi
                rows.append({"per_conversation": per, "icc": icc, "fold": fold, "rate": f"{rate:g}", "expected_incumbent_flags": rate * pairs,
                             "true_ratio": truth, "coverage": hits / REPS})
    table = show("paired ratio interval coverage, overlap 0.9", rows)
    assert table["coverage"].is_between(0.93, 0.99).all(), table


def test_corrected_rate_coverage_with_a_flag_stratified_review() -> None:
    """A grader with sensitivity 0.5-0.9 and precision 0.3-0.9 on traffic with true rates 1e-5..1e-2 (n
    sized for ~20 true events), 50 reviewed per stratum, sensitivity from 60 calibration positives."""
    rows = []
    for rate in (1e-5, 1e-4, 1e-3, 1e-2):
        n = int(max(20 / rate, 20_000))
        for se in (0.5, 0.9):
            for ppv in (0.3, 0.9):
                d = reviewed_traffic(np.random.default_rng(int(-np.log10(rate)) * 100 + int(se * 10) + int(ppv * 100)), REPS, rate, se, ppv, n)
                lo, hi = np.empty(REPS), np.empty(REPS)
                for s in range(0, REPS, 250):  # chunks keep the grid x draws arrays small
                    part = {k: v[s:s + 250] for k, v in d.items()}
                    _, lo[s:s + 250], hi[s:s + 250] = posterior_review(*(part[k] for k in ("k", "n", "x1", "n1", "x0", "n0", "tp", "fn")), seed=s)
                rows.append({"rate": f"{rate:g}", "n": n, "sensitivity": se, "precision": ppv, "coverage": float(np.mean((lo <= rate) & (rate <= hi))),
                             "median_hi_over_lo": float(np.median(hi / lo))})
    table = show("grader-corrected rate coverage", rows)
    assert table["coverage"].is_between(0.93, 0.99).all(), table


def test_weighted_interval_coverage_with_few_events() -> None:
    """Two strata weighted 4:1, one or four prefixes per conversation (icc 0.3), 0.5-20 expected events.
    The bootstrap by conversation this replaces covered 0.81-0.90 at 4-7 events."""
    rows = []
    for events in (0.5, 4.0, 7.0, 20.0):
        for per, icc in ((1, 0.0), (4, 0.3)):
            rng = np.random.default_rng(int(events * 10) + per)
            hits = zeros = 0
            for _ in range(REPS):
                flags, weights, clusters, strata, truth = stratified_sample(rng, events, per, icc)
                lo, hi, _ = weighted_interval(flags, weights, clusters, strata)
                hits += lo <= truth <= hi
                zeros += flags.sum() == 0
            rows.append({"expected_events": events, "per_conversation": per, "icc": icc, "coverage": hits / REPS, "zero_count_share": zeros / REPS})
    table = show("weighted (Korn-Graubard) interval coverage", rows)
    assert (table["coverage"] >= 0.91).all(), table


def _prediction_coverage(rng: np.random.Generator, shift_sd: float, releases: int, **kw: float | bool) -> float:
    """Fit the error model on `releases` earlier releases (10 categories each) and predict the next."""
    n_sim, n_obs, cats = 20_000, 200_000, 10
    f_floor, o_floor = detection_floor(n_sim), detection_floor(n_obs)
    hits = total = 0
    for _ in range(REPS):
        d = release_history(rng, releases + 1, cats, shift_sd, n_sim, n_obs, **kw)
        f, o = d["k"] / n_sim, d["k_obs"] / n_obs
        f_lo, f_hi = proportion_confint(d["k"], n_sim, method="beta")
        o_lo, o_hi = proportion_confint(d["k_obs"], n_obs, method="beta")
        f_lo, o_lo = np.nan_to_num(f_lo), np.nan_to_num(o_lo)
        past = slice(0, releases)
        residuals = (log_rate(o[past], o_floor) - log_rate(f[past], f_floor)).ravel()
        variances = log_variance(f_lo[past], f_hi[past], f_floor, 0.05).ravel()
        obs_var = log_variance(o_lo[past], o_hi[past], o_floor, 0.05).ravel()
        model = fit(residuals, variances, obs_var, "all", 0.6, 4)
        for j in range(cats):
            _, lo, hi = interval(model, f[releases, j], f_lo[releases, j], f_hi[releases, j], f_floor, 0.05)
            hits += lo <= o[releases, j] <= hi
            total += 1
    return hits / total


def test_prediction_interval_coverage_of_the_observed_rate() -> None:
    """Forecasts from the raw flags of a grader with category-specific error (Se 0.5-0.9, precision
    0.3-0.9), production rates shifted from the simulated ones by log-sd 0.3-0.7, 3-10 earlier releases of
    history: the prediction interval covers the observed rate 0.90-0.98. Misspecified shifts (heavy
    tails, correlated across categories) are reported without a pass mark."""
    rows = []
    for shift in (0.3, 0.5, 0.7):
        for releases in (3, 10):
            rows.append({"shift_sd": shift, "history": releases, "shifts": "normal",
                         "coverage": _prediction_coverage(np.random.default_rng(int(shift * 100) + releases), shift, releases)})
    table = show("prediction interval coverage of the observed rate", rows)
    misspecified = [{"shift_sd": 0.5, "history": 5, "shifts": name,
                     "coverage": _prediction_coverage(np.random.default_rng(7), 0.5, 5, **kw)}
                    for name, kw in (("student-t(3)", {"heavy_tails": True}), ("correlated 0.5", {"correlated": 0.5}))]
    show("misspecified shifts (reported, no pass mark)", misspecified)
    assert table["coverage"].is_between(0.90, 0.98).all(), table


def test_precision_sample_size_with_assurance() -> None:
    """At n sized for the expected 29 events the realised exact interval meets x/÷1.5 about half the time;
    sized with assurance 0.9 it meets it in >= 90% - 2 MCSE of repetitions."""
    rows = []
    for rate in (1e-4, 1e-2):
        for assurance in (None, 0.9):
            n = sample_size_precision(rate, 1.5, assurance=assurance)
            k = np.random.default_rng(3).binomial(n, rate, REPS)
            lo, hi = proportion_confint(k, n, method="beta")
            est = k / n
            met = (k > 0) & (hi <= est * 1.5) & (lo >= est / 1.5)
            rows.append({"rate": f"{rate:g}", "assurance": assurance or "expected count", "n": n, "met": float(met.mean())})
    table = show("precision target met by the realised interval", rows)
    assured = table.filter(pl.col("assurance") != "expected count")
    assert (assured["met"] >= 0.9 - 2 * mcse(0.9)).all(), table
