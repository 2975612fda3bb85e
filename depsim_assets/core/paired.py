"""Candidate vs incumbent on the same prefixes, robust to clustering.

A conversation may contribute several prefixes (`every_assistant_turn`) and a prefix several samples;
those pairs are not independent, and exact McNemar on them rejects far too often under no change. The
unit of inference here is the conversation (the cluster):

- test: a sign-flip randomisation test of sum(candidate - incumbent) over clusters. Under no change the
  two releases are exchangeable within a conversation, so each cluster's difference is symmetric about 0.
  With singleton clusters it is exactly McNemar's test (a binomial test on the discordant pairs), which we
  then call through scipy.
- interval for the rate ratio: Bonett & Price's (2006) adjusted log interval for paired proportions,
  unconditional (it does not hold the concordant count fixed), widened by the cluster design effect of the
  discordance when clusters are not singletons.
No maintained Python library ships a paired rate-ratio interval (R's ratesci does); the formula is 4 lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product

import numpy as np
from scipy.stats import binomtest, norm, t

EXACT_FLIPS = 14  # up to 2^14 sign patterns enumerated; above, Monte Carlo
MC_FLIPS = 4000


@dataclass
class Paired:
    a: int  # flagged in both
    b: int  # incumbent only
    c: int  # candidate only
    n: int  # pairs
    clusters: int
    ratio: float
    ratio_lo: float
    ratio_hi: float
    p_value: float
    design_effect: float
    test: str


def sign_flip_p(diffs: np.ndarray, reps: int = MC_FLIPS, seed: int = 0) -> float:
    """Two-sided p-value of |sum(d)| under independent sign flips of the per-cluster differences d."""
    d = diffs[diffs != 0].astype(float)
    if not len(d):
        return 1.0
    observed = abs(d.sum())
    if len(d) <= EXACT_FLIPS:
        signs = np.array(list(product((-1.0, 1.0), repeat=len(d))))
        return float(np.mean(np.abs(signs @ d) >= observed - 1e-9))
    rng = np.random.default_rng(seed)
    signs = rng.choice((-1.0, 1.0), size=(reps, len(d)))
    # (1 + hits) / (1 + reps): a valid p-value for a Monte Carlo test (never 0).
    return float((1 + np.sum(np.abs(signs @ d) >= observed - 1e-9)) / (1 + reps))


def _total_variance(values: np.ndarray) -> float:
    """Estimated variance of a sum of independent units (m / (m - 1) times the sum of squared deviations)."""
    m = len(values)
    return float(m / (m - 1) * np.sum((values - values.mean()) ** 2)) if m > 1 else math.nan


def cluster_design_effect(cand: np.ndarray, inc: np.ndarray, clusters: np.ndarray) -> float:
    """How much conversations inflate the variance of the discordance sum(candidate - incumbent), which
    drives both the test and the ratio's variance: per-conversation totals over per-pair values (>= 1).
    Defined when only one release flags anything, where a log-ratio linearisation is not."""
    ids, inverse = np.unique(clusters, return_inverse=True)
    if len(ids) == len(clusters):
        return 1.0
    d = cand - inc
    v_cluster, v_iid = _total_variance(np.bincount(inverse, weights=d)), _total_variance(d)
    if not (v_cluster > 0 and v_iid > 0):
        return 1.0
    return max(1.0, v_cluster / v_iid)


def bonett_price(a: int, b: int, c: int, n: int, alpha: float = 0.05, deff: float = 1.0, df: int | None = None) -> tuple[float, float]:
    """Interval for (a + c) / (a + b): candidate rate over incumbent rate, adjusted log-Wald. With
    clusters, the variance is scaled by the design effect and the quantile taken from Student's t with
    df = (conversations with a flag) - 1: few clusters carry the information when flags concentrate."""
    if n <= 0:
        return math.nan, math.nan
    p_cand, p_inc = (a + c + 1) / (n + 2), (a + b + 1) / (n + 2)
    se = math.sqrt(deff * (b + c + 2) / ((a + b + 1) * (a + c + 1)))
    z = float(norm.ppf(1 - alpha / 2) if df is None else t.ppf(1 - alpha / 2, max(df, 1)))
    centre = math.log(p_cand / p_inc)
    return math.exp(centre - z * se), math.exp(centre + z * se)


def paired_comparison(incumbent: np.ndarray, candidate: np.ndarray, clusters: np.ndarray | None = None,
                      alpha: float = 0.05, seed: int = 0) -> Paired:
    """Candidate vs incumbent flags on the same (prefix, sample) pairs; `clusters` names each pair's
    conversation (None: every pair its own conversation)."""
    inc, cand = incumbent.astype(bool), candidate.astype(bool)
    a, b, c = int((inc & cand).sum()), int((inc & ~cand).sum()), int((~inc & cand).sum())
    n = len(inc)
    ratio = (a + c) / (a + b) if a + b else (math.inf if a + c else math.nan)
    if clusters is None or len(np.unique(clusters)) == n:
        p_value = float(binomtest(c, b + c, 0.5).pvalue) if b + c else 1.0
        lo, hi = bonett_price(a, b, c, n, alpha)
        return Paired(a, b, c, n, n, ratio, lo, hi, p_value, 1.0, "exact McNemar (one pair per conversation)")
    ids, inverse = np.unique(clusters, return_inverse=True)
    diffs = np.bincount(inverse, weights=cand.astype(float) - inc.astype(float))
    deff = cluster_design_effect(cand.astype(float), inc.astype(float), clusters)
    flagged_clusters = int(np.count_nonzero(np.bincount(inverse, weights=(cand | inc).astype(float))))
    lo, hi = bonett_price(a, b, c, n, alpha, deff, df=flagged_clusters - 1)
    return Paired(a, b, c, n, len(ids), ratio, lo, hi, sign_flip_p(diffs, seed=seed), deff,
                  "sign-flip randomisation over conversations")
