"""Rate estimates that hold at rare rates: exact intervals, the detection floor, the weighted (Hájek)
rate with a design-based interval, and Benjamini-Hochberg. Estimators come from scipy/statsmodels; the
few lines of arithmetic here only combine them. Paired comparisons live in `paired.py`, the grader
correction in `correction.py`.
"""

from __future__ import annotations

import math
import numpy as np
from scipy.stats import beta, norm
from scipy.stats import t as student_t
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


def _cp_fractional(k: float, n: float, alpha: float) -> tuple[float, float]:
    """Clopper-Pearson bounds from the beta quantiles, defined for non-integer (effective) counts."""
    lo = float(beta.ppf(alpha / 2, k, n - k + 1)) if k > 0 else 0.0
    hi = float(beta.ppf(1 - alpha / 2, k + 1, n - k)) if k < n else 1.0
    return lo, hi


def weighted_interval(flags: np.ndarray, weights: np.ndarray, clusters: np.ndarray, strata: np.ndarray | None = None,
                      alpha: float = 0.05) -> tuple[float, float, float]:
    """Korn-Graubard (1998) interval for the Hájek rate under stratified, weighted, clustered sampling:
    the design variance (Taylor linearisation, conversations as units within strata) turned into an
    effective sample size n* = p(1-p)/var, then Clopper-Pearson on (p n*, n*), with n* scaled by the
    degrees of freedom (conversations - strata). A percentile bootstrap by conversation covers 0.81-0.90
    with 4-7 expected events; this holds at those counts. With nothing flagged the variance is 0, so
    n* falls back to Kish's effective number of conversations and the lower bound is 0.

    Returns (lo, hi, n_effective)."""
    if not len(flags):
        return math.nan, math.nan, 0.0
    strata = np.zeros(len(flags), dtype=int) if strata is None else strata
    p = hajek(flags, weights)
    s_codes, c_codes = np.unique(strata, return_inverse=True)[1], np.unique(clusters, return_inverse=True)[1]
    ids, first, inverse = np.unique(s_codes * (int(c_codes.max()) + 1) + c_codes, return_index=True, return_inverse=True)
    z = np.bincount(inverse, weights=weights * (flags - p)) / weights.sum()
    w_c = np.bincount(inverse, weights=weights)
    s_ids, s_inv = np.unique(strata[first], return_inverse=True)
    m_h = np.bincount(s_inv)
    zbar = np.bincount(s_inv, weights=z) / m_h
    scale = np.where(m_h > 1, m_h / np.maximum(m_h - 1, 1), 0.0)
    var = float(np.sum(scale[s_inv] * (z - zbar[s_inv]) ** 2))
    df = max(len(ids) - len(s_ids), 1)
    kish = float(w_c.sum() ** 2 / np.sum(w_c**2))
    n_eff = min(p * (1 - p) / var, float(len(flags))) if var > 0 and 0 < p < 1 else kish
    z_crit = float(norm.ppf(1 - alpha / 2))
    n_eff *= (z_crit / float(student_t.ppf(1 - alpha / 2, df))) ** 2
    lo, hi = _cp_fractional(p * n_eff, n_eff, alpha)
    return lo, hi, n_eff


def benjamini_hochberg(p_values: list[float]) -> list[float]:
    if not p_values:
        return []
    return [float(x) for x in multipletests(p_values, method="fdr_bh")[1]]


def direction(adjusted_p: float, b: int, c: int, level: float = 0.1) -> str:
    if adjusted_p < level and b != c:
        return "up" if c > b else "down"
    return "no detectable change"
