"""The true rate behind a grader's flags, from quantities that transfer to this traffic.

Precision does not transfer: measured on a human-labelled set at another prevalence (any enriched set at
rare rates) it makes flagged-rate x precision / sensitivity 1.5-3x off. Two designs do transfer:

- `review` (preferred): a flag-stratified human review of this release's own traffic (the review queue).
  The flagged stratum measures precision where the grader runs, the not-flagged stratum its false-omission
  rate; sensitivity from the calibration set is the prior for Se (sensitivity is a property of the grader
  given a true positive, not of prevalence).
- `se_sp`: sensitivity and specificity from the calibration set, with the flagged rate
  f = theta Se + (1 - theta)(1 - Sp). Valid, but at rare rates 1 - Sp is rarely known well enough to
  separate theta from 0: the interval says so.

Both are the posterior of theta on a log grid (Jeffreys-type prior theta^-1/2, so theta stays in (0, 1]),
integrated over stratified quasi-random draws of the nuisance parameters from their Jeffreys posteriors:
closed-form likelihoods, vectorised, no MCMC. Functions take arrays so a simulation study can run
thousands of replicates at once; the scalar call is the same function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import xlog1py, xlogy
from scipy.stats import beta

MIN_CALIBRATION = 10
GRID = 200
DRAWS = 128


@dataclass
class Correction:
    rate: float | None
    lo: float | None
    hi: float | None
    method: str
    refused_reason: str | None = None


def _draws(a: np.ndarray, b: np.ndarray, seed: int) -> np.ndarray:
    """DRAWS stratified quantiles of Beta(a, b) per row, in a seeded random order (rows x DRAWS)."""
    u = (np.random.default_rng(seed).permutation(DRAWS) + 0.5) / DRAWS
    return beta.ppf(u[None, :], np.asarray(a, float)[:, None], np.asarray(b, float)[:, None])


def _summarise(grid: np.ndarray, log_post: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median and equal-tailed interval of a posterior given on a per-row log grid (rows x GRID)."""
    w = np.exp(log_post - log_post.max(axis=1, keepdims=True))
    cdf = np.cumsum(w, axis=1)
    cdf /= cdf[:, -1:]
    log_grid = np.log(grid)
    out = []
    for q in (0.5, alpha / 2, 1 - alpha / 2):
        # Interpolate the CDF on log theta between the grid points either side of q.
        hi = np.clip((cdf < q).sum(axis=1), 1, GRID - 1)[:, None]
        c0, c1 = np.take_along_axis(cdf, hi - 1, axis=1), np.take_along_axis(cdf, hi, axis=1)
        g0, g1 = np.take_along_axis(log_grid, hi - 1, axis=1), np.take_along_axis(log_grid, hi, axis=1)
        frac = np.clip((q - c0) / np.maximum(c1 - c0, 1e-300), 0, 1)
        out.append(np.exp(g0 + frac * (g1 - g0))[:, 0])
    return out[0], out[1], out[2]


def _grid(f_hi: np.ndarray, se_lo: np.ndarray) -> np.ndarray:
    top = np.minimum(1.0, f_hi / np.maximum(se_lo, 1e-6))
    bottom = np.maximum(top * 1e-7, 1e-12)
    return np.exp(np.linspace(np.log(bottom), np.log(top), GRID, axis=1))


def _log_mean_exp(ll: np.ndarray) -> np.ndarray:
    """log of the mean over draws (last axis), -inf where no draw reaches the grid point."""
    top = ll.max(axis=2, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(ll - top).mean(axis=2)) + top[:, :, 0]


def _posterior(marginal: Callable[[np.ndarray], np.ndarray], grid: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two passes: a wide log grid finds where the posterior lives, a fine one over that range resolves it
    (a single wide grid is ~8% per step, as wide as a well-measured posterior)."""
    log_post = marginal(grid) + 0.5 * np.log(grid)  # prior theta^-1/2: theta^1/2 of mass per log-grid point
    w = np.exp(log_post - log_post.max(axis=1, keepdims=True))
    cdf = np.cumsum(w, axis=1) / w.sum(axis=1, keepdims=True)
    first = np.clip((cdf < 1e-6).sum(axis=1) - 1, 0, GRID - 1)
    last = np.clip((cdf < 1 - 1e-6).sum(axis=1) + 1, 0, GRID - 1)
    lo, hi = np.take_along_axis(grid, first[:, None], 1), np.take_along_axis(grid, last[:, None], 1)
    fine = np.exp(np.linspace(np.log(lo[:, 0]), np.log(hi[:, 0]), GRID, axis=1))
    return _summarise(fine, marginal(fine) + 0.5 * np.log(fine), alpha)


def posterior_review(k, n, x1, n1, x0, n0, tp, fn, alpha: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """theta from: k of n flagged in traffic; x1 of n1 reviewed flagged items truly positive; x0 of n0
    reviewed not-flagged items truly positive; tp of tp + fn calibration positives flagged."""
    k, n, x1, n1, x0, n0, tp, fn = (np.atleast_1d(np.asarray(v, float)) for v in (k, n, x1, n1, x0, n0, tp, fn))
    f = _draws(k + 0.5, n - k + 0.5, seed)[:, None, :]
    se = _draws(tp + 0.5, fn + 0.5, seed + 1)[:, None, :]

    def marginal(grid: np.ndarray) -> np.ndarray:
        theta = grid[:, :, None]
        ppv, fo_rate = theta * se / f, theta * (1 - se) / (1 - f)
        ok = (ppv <= 1) & (fo_rate <= 1)
        ppv, fo_rate = np.minimum(ppv, 1), np.minimum(fo_rate, 1)
        ll = (xlogy(x1[:, None, None], ppv) + xlog1py((n1 - x1)[:, None, None], -ppv)
              + xlogy(x0[:, None, None], fo_rate) + xlog1py((n0 - x0)[:, None, None], -fo_rate))
        return _log_mean_exp(np.where(ok, ll, -np.inf))

    return _posterior(marginal, _grid(beta.ppf(0.99999, k + 0.5, n - k + 0.5), beta.ppf(1e-5, tp + 0.5, fn + 0.5)), alpha)


def posterior_se_sp(k, n, tp, fn, tn, fp, alpha: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """theta from k of n flagged and calibration sensitivity (tp, fn) and specificity (tn, fp)."""
    k, n, tp, fn, tn, fp = (np.atleast_1d(np.asarray(v, float)) for v in (k, n, tp, fn, tn, fp))
    se = _draws(tp + 0.5, fn + 0.5, seed)[:, None, :]
    fpr = _draws(fp + 0.5, tn + 0.5, seed + 1)[:, None, :]

    def marginal(grid: np.ndarray) -> np.ndarray:
        theta = grid[:, :, None]
        f = np.clip(theta * se + (1 - theta) * fpr, 1e-300, 1 - 1e-16)
        return _log_mean_exp(xlogy(k[:, None, None], f) + xlog1py((n - k)[:, None, None], -f))

    return _posterior(marginal, _grid(beta.ppf(0.99999, k + 0.5, n - k + 0.5), beta.ppf(1e-5, tp + 0.5, fn + 0.5)), alpha)


def refusal(tp: int, fn: int, negatives: int | None = None, k: int = 0, reviewed_flagged: int | None = None) -> str | None:
    """Why the data cannot support a correction (None when it can)."""
    if tp + fn < MIN_CALIBRATION:
        return f"calibration too thin: {tp + fn} human-labelled positives (need {MIN_CALIBRATION})"
    if tp == 0:
        return "sensitivity not estimable: the grader caught none of the calibration positives (tp = 0)"
    if reviewed_flagged is not None:
        if k > 0 and reviewed_flagged == 0:
            return "the review sample has no flagged item of this release: precision at this traffic is unknown"
        return None
    if negatives is not None and negatives < MIN_CALIBRATION:
        return f"calibration too thin: {negatives} human-labelled negatives for specificity (need {MIN_CALIBRATION})"
    return None


def corrected_rate(k: int, n: int, *, tp: int, fn: int, fp: int = 0, tn: int = 0, review: tuple[int, int, int, int] | None = None,
                   alpha: float = 0.05, seed: int = 0) -> Correction:
    """The corrected rate for one category: `review` = (x1, n1, x0, n0) from this release's flag-stratified
    review sample when it exists, else sensitivity and specificity from the calibration set."""
    if n <= 0:
        return Correction(None, None, None, "none", "no eligible prefixes")
    if review is not None:
        method = "review: precision at this traffic (flag-stratified sample), sensitivity from calibration; grid posterior"
        reason = refusal(tp, fn, k=k, reviewed_flagged=review[1])
        if reason:
            return Correction(None, None, None, method, reason)
        mid, lo, hi = posterior_review(k, n, *review, tp, fn, alpha=alpha, seed=seed)
    else:
        method = "se_sp: sensitivity and specificity from calibration; grid posterior"
        reason = refusal(tp, fn, negatives=tn + fp)
        if reason:
            return Correction(None, None, None, method, reason)
        mid, lo, hi = posterior_se_sp(k, n, tp, fn, tn, fp, alpha=alpha, seed=seed)
    return Correction(float(mid[0]), float(lo[0]), float(hi[0]), method)
