"""Statistics: known values (zero cells included), paired vs unpaired, and a coverage simulation study."""

import math

import numpy as np
import polars as pl
import pytest
from scipy.stats import binomtest
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.proportion import test_proportions_2indep as proportions_2indep

from depsim_assets.core.stats import (
    benjamini_hochberg,
    cluster_bootstrap,
    corrected_rate,
    detection_floor,
    direction,
    exact_interval,
    hajek,
    paired_comparison,
    upper_bound_zero,
)


def test_exact_intervals_known_values_and_zero_cells() -> None:
    # Clopper-Pearson 5/250 and 0/250 (R: binom.test(5, 250)$conf.int = 0.006525, 0.046054).
    assert exact_interval(5, 250) == pytest.approx((0.0065250, 0.0460536), abs=1e-6)
    lo, hi = exact_interval(0, 250)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 250), rel=1e-9)  # CP upper at k=0 has a closed form
    # Jeffreys at zero: statsmodels gives a positive lower bound (1.96e-6); the convention pins it at 0.
    assert proportion_confint(0, 250, method="jeffreys")[0] > 0
    j_lo, j_hi = exact_interval(0, 250, method="jeffreys")
    assert j_lo == 0.0 and 0.0099 < j_hi < 0.0101
    assert exact_interval(250, 250, method="jeffreys")[1] == 1.0
    # One-sided 95% upper bound with nothing flagged: 1 - 0.05^(1/n) (the "rule of three" ~ 3/n).
    assert upper_bound_zero(250) == pytest.approx(1 - 0.05 ** (1 / 250), rel=1e-9)
    assert upper_bound_zero(100_000) == pytest.approx(3 / 100_000, rel=0.01)
    assert detection_floor(599_146) == pytest.approx(5e-6, rel=1e-3)
    assert detection_floor(599_146, sensitivity=0.5) == pytest.approx(1e-5, rel=1e-3)


def test_paired_comparison_zero_cells_0_of_250_vs_5_of_250() -> None:
    inc = np.zeros(250, dtype=bool)
    cand = np.zeros(250, dtype=bool)
    cand[:5] = True
    r = paired_comparison(inc, cand)
    assert (r.a, r.b, r.c) == (0, 0, 5)
    assert r.p_value == pytest.approx(0.0625)  # exact McNemar: 2 * 0.5^5
    assert r.ratio == math.inf and r.ratio_hi == math.inf
    pi_lo = 0.025 ** (1 / 5)  # Clopper-Pearson lower bound for 5 of 5 has a closed form
    assert r.ratio_lo == pytest.approx(pi_lo / (1 - pi_lo), rel=1e-6)
    # And the reverse direction: 5 of 250 down to 0.
    r2 = paired_comparison(cand, inc)
    assert r2.ratio == 0.0 and r2.ratio_lo == 0.0 and r2.p_value == pytest.approx(0.0625)
    # Nothing flagged anywhere: no evidence either way, and no crash.
    r3 = paired_comparison(inc, inc)
    assert r3.p_value == 1.0 and math.isnan(r3.ratio)


def test_no_discordant_pair_gives_a_real_interval_not_a_point() -> None:
    # 25 pairs, both releases flag the same 10: x1.0, but 25 pairs cannot rule out a sizeable change.
    flags = np.array([True] * 10 + [False] * 15)
    r = paired_comparison(flags, flags)
    assert (r.b, r.c) == (0, 0) and r.ratio == 1.0
    assert r.ratio_lo < 1.0 < r.ratio_hi
    d_hi = 25 * (1 - 0.025 ** (1 / 25))  # exact upper bound on discordant pairs when 0 of 25 were seen
    assert r.ratio_lo == pytest.approx(10 / (10 + d_hi)) and r.ratio_hi == pytest.approx((10 + d_hi) / 10)
    # More pairs, narrower: the interval reflects the sample size.
    big = np.array([True] * 400 + [False] * 600)
    assert paired_comparison(big, big).ratio_hi < r.ratio_hi


def test_paired_and_unpaired_tests_disagree() -> None:
    # 100 prefixes; every prefix the incumbent flags the candidate flags too, plus 10 more: 20/100 -> 30/100.
    inc = np.array([True] * 20 + [False] * 80)
    cand = np.array([True] * 30 + [False] * 70)
    paired = paired_comparison(inc, cand)
    unpaired = proportions_2indep(30, 100, 20, 100, method="score")
    assert (paired.b, paired.c) == (0, 10)
    assert paired.p_value == pytest.approx(2 * 0.5**10)  # 0.00195: a clear increase on the same prefixes
    assert unpaired.pvalue > 0.05  # treated as independent samples, the same counts are not significant
    assert direction(paired.p_value, paired.b, paired.c) == "up"
    assert paired.ratio == pytest.approx(1.5) and paired.ratio_lo > 1.0


def test_bh_and_direction() -> None:
    adjusted = benjamini_hochberg([0.01, 0.04, 0.5])
    assert adjusted == pytest.approx([0.03, 0.06, 0.5])
    assert direction(0.06, 2, 9, level=0.1) == "up" and direction(0.06, 9, 2, level=0.05) == "no detectable change"
    assert direction(0.01, 3, 3) == "no detectable change"


def test_hajek_and_cluster_bootstrap() -> None:
    flags = np.array([1, 0, 0, 1, 0, 0], dtype=float)
    weights = np.array([1, 1, 1, 3, 3, 3], dtype=float)
    assert hajek(flags, weights) == pytest.approx((1 + 3) / 12)
    lo, hi = cluster_bootstrap(flags, weights, np.array(["a", "a", "b", "c", "c", "d"]), reps=500)
    assert 0 <= lo <= hajek(flags, weights) <= hi <= 1


def test_correction_refused_when_calibration_is_thin() -> None:
    c = corrected_rate(5, 10_000, tp=4, fp=1, fn=2)
    assert c.rate is None and "too thin" in (c.refused_reason or "")
    ok = corrected_rate(50, 10_000, tp=90, fp=10, fn=10)
    assert ok.rate == pytest.approx(50 / 10_000 * 0.9 / 0.9) and ok.lo < ok.rate < ok.hi


RATES = (1e-5, 1e-4, 1e-3, 1e-2)
REPS = 2000


def _coverage(lo: np.ndarray, hi: np.ndarray, truth: float) -> float:
    return float(np.mean((lo <= truth) & (truth <= hi)))


def test_simulation_study_interval_coverage() -> None:
    """For each true rate, n chosen so 30 events are expected (the size the precision target asks for),
    2,000 repetitions: raw intervals without grader error, and corrected intervals with a grader of
    sensitivity 0.8 and precision 0.9 calibrated on 200 human-labelled positives and 200 reviewed flags."""
    rng = np.random.default_rng(20261123)
    rows = []
    for p in RATES:
        n = int(30 / p)
        k = rng.binomial(n, p, REPS)
        for method in ("beta", "jeffreys"):
            lo, hi = proportion_confint(k, n, alpha=0.05, method=method)
            lo = np.where(k == 0, 0.0, lo)
            rows.append({"rate": p, "n": n, "interval": f"raw {method}", "coverage": _coverage(lo, hi, p),
                         "median_width_per_100k": float(np.median(hi - lo)) * 1e5})
        se, ppv = 0.8, 0.9
        q = p * se / ppv  # flag rate: true positives caught / share of flags that are true
        k_obs = rng.binomial(n, q, REPS)
        tp_se = rng.binomial(200, se, REPS)  # sensitivity: 200 human-labelled positives
        tp_ppv = rng.binomial(200, ppv, REPS)  # precision: 200 reviewed flags
        lo_c, hi_c = np.empty(REPS), np.empty(REPS)
        for i in range(REPS):
            # corrected_rate takes one confusion matrix; pass counts that reproduce both estimates.
            tp = int(tp_se[i])
            fn = 200 - tp
            fp = round(tp * (200 - tp_ppv[i]) / max(tp_ppv[i], 1))
            c = corrected_rate(int(k_obs[i]), n, tp, fp, fn, reps=1000, seed=i)
            lo_c[i], hi_c[i] = c.lo, c.hi
        rows.append({"rate": p, "n": n, "interval": "corrected (Se 0.8, PPV 0.9)", "coverage": _coverage(lo_c, hi_c, p),
                     "median_width_per_100k": float(np.median(hi_c - lo_c)) * 1e5})
    table = pl.DataFrame(rows)
    with pl.Config(tbl_rows=20, tbl_width_chars=140):
        print("\n", table)
    assert table["coverage"].min() >= 0.93 and table["coverage"].max() <= 0.99, table


def test_simulation_study_paired_test_size_under_no_change() -> None:
    """No change: both releases flag each prefix independently with the same probability. The exact
    paired test must reject at most alpha plus two Monte Carlo standard errors."""
    rng = np.random.default_rng(7)
    alpha = 0.05
    for p in RATES:
        n = int(30 / p)
        discordant = rng.binomial(n, 2 * p * (1 - p), REPS)
        c = rng.binomial(discordant, 0.5)
        pvals = np.array([binomtest(int(ci), int(di), 0.5).pvalue if di else 1.0 for ci, di in zip(c, discordant)])
        rejection = float(np.mean(pvals < alpha))
        mcse = math.sqrt(alpha * (1 - alpha) / REPS)
        print(f"rate {p:g}: n={n}, rejection rate under no change {rejection:.4f} (bound {alpha + 2 * mcse:.4f})")
        assert rejection <= alpha + 2 * mcse
