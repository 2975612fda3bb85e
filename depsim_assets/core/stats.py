"""Rate estimates and paired release comparisons that hold at rare rates. Estimators come from
scipy/statsmodels; the few lines of arithmetic here only combine them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

PER = 100_000


def exact_interval(k: int, n: int, alpha: float = 0.05, method: str = "beta") -> tuple[float, float]:
    """Clopper-Pearson (`beta`) or Jeffreys interval for k of n.

    statsmodels' Jeffreys interval does not pin the bound at 0 when k = 0 (it returns a small positive
    lower bound), nor at 1 when k = n; the Brown-Cai-DasGupta convention does, and so do we.
    """
    if n <= 0:
        return math.nan, math.nan
    lo, hi = proportion_confint(k, n, alpha=alpha, method=method)
    if k == 0:
        lo = 0.0
    if k == n:
        hi = 1.0
    return float(lo), float(hi)


def upper_bound_zero(n: int, alpha: float = 0.05) -> float:
    """One-sided (1 - alpha) upper bound when nothing was flagged in n: 1 - alpha^(1/n), from the
    Clopper-Pearson interval with 2*alpha."""
    return float(proportion_confint(0, n, alpha=2 * alpha, method="beta")[1])


def detection_floor(n: int, sensitivity: float = 1.0, probability: float = 0.95) -> float:
    """The rate that would be flagged at least once with the given probability in n messages."""
    return (1 - (1 - probability) ** (1 / n)) / sensitivity if n > 0 else math.inf


def hajek(flags: np.ndarray, weights: np.ndarray) -> float:
    return float(np.sum(weights * flags) / np.sum(weights)) if len(flags) else math.nan


def cluster_bootstrap(flags: np.ndarray, weights: np.ndarray, clusters: np.ndarray, reps: int = 2000, alpha: float = 0.05,
                      seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the Hájek rate, resampling whole conversations (clusters)."""
    ids, inverse = np.unique(clusters, return_inverse=True)
    wy = np.bincount(inverse, weights=weights * flags)
    w = np.bincount(inverse, weights=weights)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(ids), size=(reps, len(ids)))
    est = wy[draws].sum(axis=1) / w[draws].sum(axis=1)
    return float(np.quantile(est, alpha / 2)), float(np.quantile(est, 1 - alpha / 2))


@dataclass
class Correction:
    rate: float | None
    lo: float | None
    hi: float | None
    method: str
    refused_reason: str | None = None


MIN_CALIBRATION = 10


def corrected_rate(k: int, n: int, tp: int, fp: int, fn: int, reps: int = 4000, alpha: float = 0.05, seed: int = 0) -> Correction:
    """True rate ~ (flagged rate x precision) / sensitivity, with the uncertainty of all three carried
    into the interval by Monte Carlo from their Jeffreys posteriors (Beta(x + 1/2, n - x + 1/2)).

    Rogan-Gladen's (p + Sp - 1)/(Se + Sp - 1) is not used: at rare rates the false-positive term dominates
    and the estimate goes negative. Refused, with the reason, when calibration has fewer than
    MIN_CALIBRATION human-labelled positives for sensitivity or flagged items for precision.
    """
    method = "precision/sensitivity, Jeffreys-posterior Monte Carlo"
    if tp + fn < MIN_CALIBRATION or tp + fp < MIN_CALIBRATION:
        return Correction(None, None, None, method,
                          f"calibration too thin: {tp + fn} human-labelled positives, {tp + fp} grader-flagged items (need {MIN_CALIBRATION} each)")
    if n == 0:
        return Correction(None, None, None, method, "no eligible prefixes")
    rng = np.random.default_rng(seed)
    p = rng.beta(k + 0.5, n - k + 0.5, reps)
    ppv = rng.beta(tp + 0.5, fp + 0.5, reps)
    se = rng.beta(tp + 0.5, fn + 0.5, reps)
    draws = np.clip(p * ppv / se, 0, 1)
    point = min(1.0, (k / n) * (tp / (tp + fp)) / (tp / (tp + fn))) if tp else 0.0
    lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return Correction(point, float(lo) if k else 0.0, float(hi), method)


@dataclass
class Paired:
    a: int  # flagged in both
    b: int  # incumbent only
    c: int  # candidate only
    n: int  # pairs
    ratio: float
    ratio_lo: float
    ratio_hi: float
    p_value: float


def paired_comparison(incumbent: np.ndarray, candidate: np.ndarray, alpha: float = 0.05) -> Paired:
    """Candidate vs incumbent on the same prefixes: exact McNemar (a binomial test of c among the b + c
    discordant pairs) and the rate ratio (a + c)/(a + b), with its interval from the Clopper-Pearson
    interval of c/(b + c), holding the concordant count a fixed. Defined with zero cells."""
    inc, cand = incumbent.astype(bool), candidate.astype(bool)
    a, b, c = int((inc & cand).sum()), int((inc & ~cand).sum()), int((~inc & cand).sum())
    d = b + c
    p_value = float(binomtest(c, d, 0.5).pvalue) if d else 1.0
    ratio = (a + c) / (a + b) if a + b else (math.inf if a + c else math.nan)
    if not d:
        # No discordant pair: conditioning on b + c = 0 would give the zero-width interval [1, 1]. Bound the
        # discordant count instead (exact upper bound of 0 in n), each way: a rate could have moved that much.
        n = len(inc)
        d_hi = n * (1 - (alpha / 2) ** (1 / n)) if n else math.inf
        lo, hi = (a / (a + d_hi), (a + d_hi) / a) if a else (0.0, math.inf)
        return Paired(a, b, c, n, ratio, lo, hi, p_value)
    lo_pi, hi_pi = proportion_confint(c, d, alpha=alpha, method="beta")

    def f(pi: float) -> float:
        den = a + d * (1 - pi)
        return (a + d * pi) / den if den > 0 else math.inf

    return Paired(a, b, c, len(inc), ratio, f(lo_pi), f(hi_pi), p_value)


def benjamini_hochberg(p_values: list[float]) -> list[float]:
    if not p_values:
        return []
    return [float(x) for x in multipletests(p_values, method="fdr_bh")[1]]


def direction(adjusted_p: float, b: int, c: int, level: float = 0.1) -> str:
    if adjusted_p < level and b != c:
        return "up" if c > b else "down"
    return "no detectable change"
