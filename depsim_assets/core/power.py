"""How many prefixes a study needs, from a target stated in the study config.

Three targets: `detect` (see a rate at least once), `precision` (the realised exact interval within
x/÷ fold with a stated assurance, not merely at the expected count: at the expected 29 events the
realised interval meets x/÷1.5 only about half the time), and `compare` (power of the paired test to
call a `fold` change after Benjamini-Hochberg across the categories). Every size is multiplied by the
design effect of weights and clustering.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import binom, gamma
from statsmodels.stats.rates import confint_poisson

from depsim_assets.core.config import SampleTarget


def design_effect(prefixes_per_conversation: float = 1.0, icc: float = 0.0, weight_cv: float = 0.0) -> float:
    """Kish's weighting effect (1 + cv^2) times the clustering effect (1 + (m - 1) icc)."""
    return (1 + weight_cv**2) * (1 + (prefixes_per_conversation - 1) * icc)


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


def sample_size_precision(rate: float, fold: float = 1.5, alpha: float = 0.05, assurance: float | None = None) -> int:
    """Messages needed so the exact interval is within x/÷ fold: at the expected count (assurance None),
    or with probability `assurance` over the realised count. The interval narrows as the count grows, so
    it meets the target exactly when K >= k*; P(K >= k*) for K ~ Poisson(lambda) is the Gamma(k*) CDF."""
    if not 0 < rate < 1:
        raise ValueError(f"rate must be in (0, 1), got {rate}")
    k_star = events_for_precision(fold, alpha)
    expected = float(gamma.ppf(assurance, k_star)) if assurance is not None else float(k_star)
    return math.ceil(expected / rate)


def paired_power(rate: float, fold: float, n: int, overlap: float = 0.5, categories: int = 20, level: float = 0.1,
                 deff: float = 1.0, reps: int = 4000, seed: int = 0) -> float:
    """Power of the paired test to call one category's `fold` change in the right direction after BH
    across `categories` (the others unchanged), with n pairs at the incumbent's `rate`, the candidate
    flagging `overlap` of the incumbent's flagged prefixes. Clustering enters as n / deff effective pairs.
    Vectorised Monte Carlo of the discordant counts; null categories' p-values are uniform."""
    rng = np.random.default_rng(seed)
    n_eff = max(int(n / deff), 1)
    p_inc_only = rate * (1 - overlap)
    p_cand_only = max(rate * (fold - overlap), 0.0)
    b = rng.binomial(n_eff, p_inc_only, reps)
    c = rng.binomial(n_eff, p_cand_only, reps)
    d = b + c
    tail = np.minimum(binom.cdf(c, d, 0.5), binom.sf(c - 1, d, 0.5))
    p = np.where(d > 0, np.minimum(1.0, 2 * tail), 1.0)
    nulls = rng.random((reps, categories - 1))
    allp = np.sort(np.column_stack([p, nulls]), axis=1)
    ranks = np.arange(1, categories + 1)
    passed = allp <= level * ranks / categories
    # BH rejects every p-value up to the largest rank that passes.
    cutoff = np.where(passed.any(axis=1), allp[np.arange(reps), categories - 1 - np.argmax(passed[:, ::-1], axis=1)], -1.0)
    return float(np.mean((p <= cutoff) & (c > b)))


def sample_size_compare(target: SampleTarget, deff: float = 1.0) -> int:
    """Smallest n (to 2%) with paired_power >= target.probability."""
    args = {"rate": target.rate * target.sensitivity, "fold": target.fold, "overlap": target.overlap, "categories": target.categories,
            "level": target.level, "deff": deff}
    hi = max(int(10 / (target.rate * target.sensitivity)), 10)
    while paired_power(n=hi, **args) < target.probability:
        hi *= 2
        if hi > 10**12:
            raise ValueError("no sample size reaches the requested power")
    lo = hi // 2
    while hi - lo > max(1, hi // 50):
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if paired_power(n=mid, **args) >= target.probability else (mid, hi)
    return hi


def sample_size(target: SampleTarget) -> int:
    deff = design_effect(target.prefixes_per_conversation, target.icc, target.weight_cv)
    if target.kind == "detect":
        return math.ceil(sample_size_detect(target.rate, target.sensitivity, target.probability) * deff)
    if target.kind == "compare":
        return sample_size_compare(target, deff)
    # Precision is driven by the events the grader flags: rate x sensitivity.
    return math.ceil(sample_size_precision(target.rate * target.sensitivity, target.fold, assurance=target.probability) * deff)
