"""Data-generating processes for the simulation studies, written apart from the estimators they check:
clustered prefixes, correlated paired flags, grader error, traffic shift. Vectorised, seeded."""

from __future__ import annotations

import os

import numpy as np

# CI runs the stated minimum; DEPSIM_SIM_REPS raises it for a closer look.
REPS = max(1000, int(os.environ.get("DEPSIM_SIM_REPS", "1000")))


def mcse(p: float, reps: int = REPS) -> float:
    return float(np.sqrt(p * (1 - p) / reps))


def clustered_pairs(rng: np.random.Generator, conversations: int, per_conversation: int, rate: float, icc: float,
                    fold: float = 1.0, overlap: float | None = None, tilt_sd: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Incumbent and candidate flags on the same prefixes, `per_conversation` prefixes per conversation.

    Each conversation has a propensity drawn from a Beta with mean `rate` and intra-class correlation `icc`
    (icc 0: every prefix independent). The incumbent flags Bernoulli(propensity). Under no change (fold 1,
    overlap None) the candidate is an independent draw from the same propensity. With `overlap`, the
    candidate flags a fraction `overlap` of the incumbent's flagged prefixes, plus fresh ones so that its
    rate is `fold` x the incumbent's. `tilt_sd` adds conversation-level disagreement under no change: in
    each conversation the candidate's propensity is p e^d and the incumbent's p e^-d, d ~ N(0, tilt_sd^2),
    so the discordant pairs of a conversation lean the same way (equal rates on average)."""
    if icc > 0:
        s = 1 / icc - 1
        p = rng.beta(rate * s, (1 - rate) * s, size=conversations)
    else:
        p = np.full(conversations, rate)
    p = np.repeat(p, per_conversation)
    clusters = np.repeat(np.arange(conversations), per_conversation)
    inc = rng.random(p.shape) < p
    if overlap is None:
        tilt = np.repeat(np.exp(tilt_sd * rng.standard_normal(conversations)), per_conversation) if tilt_sd else 1.0
        inc = rng.random(p.shape) < np.minimum(1, p / tilt)
        cand = rng.random(p.shape) < np.minimum(1, p * fold * tilt)
    else:
        fresh = np.clip(p * (fold - overlap) / np.maximum(1 - p, 1e-12), 0, 1)
        cand = np.where(inc, rng.random(p.shape) < overlap, rng.random(p.shape) < fresh)
    return inc, cand, clusters


def population_ratio(rate: float, icc: float, fold: float, overlap: float, draws: int = 2_000_000) -> float:
    """The candidate/incumbent rate ratio clustered_pairs really generates (the fresh-flag probability is
    clipped at 1 for high-propensity conversations, so it can fall short of `fold`)."""
    rng = np.random.default_rng(12345)
    s = 1 / icc - 1 if icc > 0 else None
    p = rng.beta(rate * s, (1 - rate) * s, size=draws) if s else np.full(draws, rate)
    fresh = np.clip(p * (fold - overlap) / np.maximum(1 - p, 1e-12), 0, 1)
    return float(np.mean(p * overlap + (1 - p) * fresh) / np.mean(p))


def reviewed_traffic(rng: np.random.Generator, reps: int, rate: float, sensitivity: float, precision: float, n: int,
                     per_stratum: int = 50, calibration_positives: int = 60) -> dict[str, np.ndarray]:
    """A grader with the given sensitivity and precision run on n messages of traffic with true `rate`, a
    flag-stratified review of up to `per_stratum` flagged and not-flagged messages (drawn without
    replacement), and a calibration set of human-labelled positives. Counts per replicate."""
    positives = rng.binomial(n, rate, reps)
    fpr = rate * sensitivity * (1 - precision) / (precision * (1 - rate))
    tp = rng.binomial(positives, sensitivity)
    k = tp + rng.binomial(n - positives, fpr)
    n1 = np.minimum(k, per_stratum)
    x1 = np.where(n1 > 0, rng.hypergeometric(np.maximum(tp, 0), np.maximum(k - tp, 0) + (k == 0), np.maximum(n1, 1)), 0)
    x1 = np.where(n1 > 0, x1, 0)
    missed = positives - tp
    n0 = np.full(reps, per_stratum)
    x0 = rng.hypergeometric(missed, n - k - missed, n0)
    cal_tp = rng.binomial(calibration_positives, sensitivity, reps)
    return {"k": k, "n": np.full(reps, n), "x1": x1, "n1": n1, "x0": x0, "n0": n0, "tp": cal_tp,
            "fn": calibration_positives - cal_tp}


def stratified_sample(rng: np.random.Generator, expected_events: float, per_conversation: int, icc: float,
                      conversations: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """A prefix sample from two traffic strata sampled 1:4 (weights 4 and 1: stratum 0 is under-sampled)
    with a 3x higher rate in stratum 0, clustered by conversation. Returns flags, weights, clusters, strata
    and the population rate; rates are set so the sample's expected flagged count is `expected_events`."""
    half = conversations // 2
    strata = np.repeat([0, 1], [half * per_conversation, (conversations - half) * per_conversation])
    weights = np.where(strata == 0, 4.0, 1.0)
    base = expected_events / (per_conversation * (3 * half + (conversations - half)))
    rates = np.where(np.arange(conversations) < half, 3 * base, base)
    if icc > 0:
        s = 1 / icc - 1
        p = rng.beta(rates * s, (1 - rates) * s)
    else:
        p = rates
    flags = (rng.random(len(strata)) < np.repeat(p, per_conversation)).astype(float)
    clusters = np.repeat(np.arange(conversations), per_conversation)
    population = (4 * 3 * base + base) / 5
    return flags, weights, clusters, strata, population


def release_history(rng: np.random.Generator, releases: int, categories: int, shift_sd: float, n_sim: int, n_obs: int,
                    heavy_tails: bool = False, correlated: float = 0.0) -> dict[str, np.ndarray]:
    """Per (release, category): the flagged count of a grader (category-specific sensitivity 0.5-0.9 and
    precision 0.3-0.9, fixed across releases) on n_sim simulated prefixes, and the true behaviour count
    in n_obs production messages whose rate is the simulated one shifted by exp(N(0, shift_sd^2)).
    Misspecified variants: Student-t(3) shifts scaled to the same sd, or shifts sharing a per-release
    component with correlation `correlated` across categories."""
    se = rng.uniform(0.5, 0.9, categories)
    ppv = rng.uniform(0.3, 0.9, categories)
    base = np.exp(rng.uniform(np.log(3e-4), np.log(1e-2), (releases, categories)))
    if heavy_tails:
        e = rng.standard_t(3, (releases, categories)) / np.sqrt(3.0)
    else:
        e = rng.standard_normal((releases, categories))
    if correlated:
        e = np.sqrt(correlated) * rng.standard_normal((releases, 1)) + np.sqrt(1 - correlated) * e
    observed_rate = np.minimum(base * np.exp(shift_sd * e), 0.5)
    flagged_rate = np.minimum(base * se / ppv, 0.9)
    return {"k": rng.binomial(n_sim, flagged_rate), "n": n_sim, "k_obs": rng.binomial(n_obs, observed_rate), "n_obs": n_obs,
            "observed_rate": observed_rate}
