"""Always-valid tests for a rate watched batch after batch: gamma-Poisson mixture e-processes.

Neither maintained library installs here: `confseq` 0.0.11 is a C++ sdist that does not build on Python
3.11 without Boost, and `expectation` >= 0.6 needs Python 3.12. So this is the closed form.

Flagged messages are counted against exposure (messages seen). For a limit `lam0` per message, the
likelihood ratio of a rate `lam` against `lam0` after `k` events in `t` messages is
(lam/lam0)^k * exp(-(lam - lam0) t). Mixed over a gamma prior on `lam` truncated to one side of `lam0`,
it has a closed form with the regularized incomplete gamma function, and it is a nonnegative
supermartingale under every rate on the other side of `lam0` (also for Bernoulli messages: 1 + p(x-1)
<= exp(p(x-1))). Ville's inequality then bounds the chance that it *ever* reaches 1/alpha by alpha, however
often it is looked at: a gate may be evaluated at every batch without inflating its error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, special

# The mixture is centred on a rate 1.5x the limit (or the limit / 1.5 on the "below" side): gates are set a
# little above what is expected, so the exceedances that matter are modest ones. The shape sets how
# concentrated the prior is (sd = mean / sqrt(shape)). Chosen once from a grid (shape 2-16, fold 1.5-2;
# power by look 5 against a limit 1.5x the expected rate when the rate doubles: 0.76-0.85), not per study.
ALTERNATIVE_FOLD = 1.5
PRIOR_SHAPE = 8.0
_FLOOR = -745.0  # log of the smallest positive double: no evidence at all


def log_mixture(k: ArrayLike, t: ArrayLike, lam0: float, mean: float, upper: bool) -> np.ndarray:
    """log of the gamma(shape PRIOR_SHAPE, mean `mean`) mixture of likelihood ratios against `lam0`, the prior
    truncated to [lam0, inf) when `upper` else to (0, lam0]; element-wise over counts `k` and exposures `t`."""
    k, t = np.asarray(k, dtype=float), np.asarray(t, dtype=float)
    a = PRIOR_SHAPE
    b = a / mean
    return (a * math.log(b) - special.gammaln(a) + special.gammaln(a + k) - (a + k) * np.log(b + t) - k * math.log(lam0)
            + lam0 * t + log_tail(a + k, (b + t) * lam0, upper) - log_tail(np.float64(a), np.float64(b * lam0), upper))


def log_tail(a: ArrayLike, x: ArrayLike, upper: bool) -> np.ndarray:
    """log of the regularized incomplete gamma Q(a, x) (`upper`) or P(a, x). scipy's value underflows to 0 in
    the far tail, where the mixture's other terms are huge; there the leading term of Temme's uniform
    expansion, -a(l - 1 - ln l) - ln(2 pi a)/2 - ln|l - 1| with l = x/a, replaces it (relative error O(1/a))."""
    a, x = np.asarray(a, dtype=float), np.asarray(x, dtype=float)
    direct = special.gammaincc(a, x) if upper else special.gammainc(a, x)
    ratio = np.maximum(x, 1e-300) / a
    far = -a * (ratio - 1 - np.log(ratio)) - 0.5 * np.log(2 * math.pi * a) - np.log(np.maximum(np.abs(ratio - 1), 1e-12))
    with np.errstate(divide="ignore"):
        return np.where(direct > 1e-280, np.log(np.maximum(direct, 1e-300)), np.minimum(far, math.log(1e-280)))


def log_e_above(k: float, t: float, limit: float) -> float:
    """Evidence that the rate is above `limit` (per message): large when it is. Valid (its chance of ever
    reaching 1/alpha is at most alpha) whenever the true rate is at most `limit`."""
    if limit <= 0:
        return math.inf if k > 0 else 0.0
    return float(log_mixture(k, t, limit, ALTERNATIVE_FOLD * limit, upper=True))


def log_e_below(k: float, t: float, limit: float) -> float:
    """Evidence that the rate is below `limit`: large when it is. Valid whenever the true rate is at least `limit`."""
    if limit <= 0:
        return _FLOOR  # nothing can show a rate below zero
    return float(log_mixture(k, t, limit, limit / ALTERNATIVE_FOLD, upper=False))


def confidence_sequence(k: float, t: float, alpha: float = 0.05) -> tuple[float, float]:
    """A time-uniform (1 - alpha) interval for the rate per message: the limits neither one-sided test (each
    at alpha/2) rejects. Used to draw the band over time; the gates use the tests themselves."""
    if t <= 0:
        return 0.0, 1.0
    level = math.log(2 / alpha)
    rate = max(k, 0.5) / t

    def root(f: object, lo: float, hi: float) -> float:
        return float(optimize.brentq(f, lo, hi, xtol=1e-12 * hi, rtol=1e-10))  # type: ignore[arg-type]

    # above-evidence falls as the candidate lower limit rises; below-evidence falls as the upper limit falls.
    lower = 0.0
    if k > 0 and log_e_above(k, t, 1e-12) >= level:
        lower = root(lambda x: log_e_above(k, t, x) - level, 1e-12, rate)
    hi = rate * 2
    while log_e_below(k, t, hi) < level and hi < 1.0:
        hi = min(hi * 2, 1.0)
    upper = root(lambda x: log_e_below(k, t, x) - level, rate / 4, hi) if log_e_below(k, t, hi) >= level else 1.0
    return lower, upper


@dataclass(frozen=True)
class Verdict:
    """One gate test at one look: `fail` (shown above the limit), `pass` (shown below), else `insufficient data`."""

    status: str
    log_e_above: float
    log_e_below: float


def judge(k: float, t: float, limit: float, alpha: float) -> Verdict:
    level = math.log(1 / alpha)
    up, down = log_e_above(k, t, limit), log_e_below(k, t, limit)
    status = "fail" if up >= level else "pass" if down >= level else "insufficient data"
    return Verdict(status, up, down)


def ever_fails(counts: np.ndarray, exposures: np.ndarray, limit: float, alpha: float) -> np.ndarray:
    """Per replicate (rows) the first look (column, 0-based) at which the cumulative test fails, -1 if never;
    vectorised for the simulations."""
    log_e = log_mixture(np.cumsum(counts, axis=1), np.cumsum(exposures, axis=1), limit, ALTERNATIVE_FOLD * limit, upper=True)
    hit = log_e >= math.log(1 / alpha)
    return np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
