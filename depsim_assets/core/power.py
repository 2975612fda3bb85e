"""How many prefixes a study needs, from a target stated in the study config."""

from __future__ import annotations

import math

from scipy.stats import binom
from statsmodels.stats.rates import confint_poisson

from depsim_assets.core.config import SampleTarget


def sample_size_detect(rate: float, sensitivity: float = 1.0, probability: float = 0.95) -> int:
    """Smallest n with P(at least one flagged event) >= probability, when each message shows the
    behaviour with `rate` and the grader catches it with `sensitivity`."""
    q = rate * sensitivity
    if not 0 < q < 1:
        raise ValueError(f"rate x sensitivity must be in (0, 1), got {q}")
    n = math.ceil(math.log1p(-probability) / math.log1p(-q))
    # The closed form can land one off through floating point; settle it on the binomial itself.
    while n > 1 and binom.sf(0, n - 1, q) >= probability:
        n -= 1
    while binom.sf(0, n, q) < probability:
        n += 1
    return n


def events_for_precision(fold: float = 1.5, alpha: float = 0.05) -> int:
    """Smallest event count k whose exact (Garwood) Poisson interval lies within k/fold .. k*fold."""
    k = 1
    while True:
        lo, hi = confint_poisson(k, 1, method="exact-c", alpha=alpha)
        if hi / k <= fold and k / lo <= fold:
            return k
        k += 1


def sample_size_precision(rate: float, fold: float = 1.5, alpha: float = 0.05) -> int:
    """Messages needed so the expected event count gives an exact 95% interval within x/÷ fold."""
    if not 0 < rate < 1:
        raise ValueError(f"rate must be in (0, 1), got {rate}")
    return math.ceil(events_for_precision(fold, alpha) / rate)


def sample_size(target: SampleTarget) -> int:
    if target.kind == "detect":
        return sample_size_detect(target.rate, target.sensitivity, target.probability)
    # Precision is driven by the events the grader flags: rate x sensitivity.
    return sample_size_precision(target.rate * target.sensitivity, target.fold)
