"""Statistics on hand-made cases: known values, zero cells, clustering, refusals. The simulation studies
(coverage, size) are in test_simulations.py."""

import math

import numpy as np
import polars as pl
import pytest
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.proportion import test_proportions_2indep as proportions_2indep

from depsim_assets.core.forecast_config import ForecastConfig
from depsim_assets.core.correction import corrected_rate
from depsim_assets.core.forecast import forecast_row
from depsim_assets.core.paired import cluster_design_effect, paired_comparison, sign_flip_p
from depsim_assets.core.stats import (
    benjamini_hochberg,
    detection_floor,
    direction,
    exact_interval,
    hajek,
    upper_bound_zero,
    weighted_interval,
)

Z = 1.959963984540054


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
    assert r.ratio == math.inf
    # Bonett-Price by hand: (0+5+1)/(0+0+1) = 6, se = sqrt((0+5+2)/((0+0+1)(0+5+1))).
    se = math.sqrt(7 / 6)
    assert (r.ratio_lo, r.ratio_hi) == pytest.approx((6 * math.exp(-Z * se), 6 * math.exp(Z * se)), rel=1e-9)
    assert r.ratio_hi < math.inf  # unconditional: 5 of 250 vs 0 of 250 does not allow an infinite ratio
    r2 = paired_comparison(cand, inc)
    assert r2.ratio == 0.0 and r2.p_value == pytest.approx(0.0625)
    assert r2.ratio_lo == pytest.approx(1 / r.ratio_hi) and r2.ratio_hi == pytest.approx(1 / r.ratio_lo)
    r3 = paired_comparison(inc, inc)  # nothing flagged anywhere: no evidence either way, and no crash
    assert r3.p_value == 1.0 and math.isnan(r3.ratio) and r3.ratio_lo < 1 < r3.ratio_hi


def test_no_discordant_pair_gives_a_real_interval_not_a_point() -> None:
    flags = np.array([True] * 10 + [False] * 15)
    r = paired_comparison(flags, flags)
    assert (r.b, r.c) == (0, 0) and r.ratio == 1.0
    assert r.ratio_lo < 1.0 < r.ratio_hi
    big = np.array([True] * 400 + [False] * 600)
    assert paired_comparison(big, big).ratio_hi < r.ratio_hi  # more pairs, narrower


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


def test_clustered_pairs_are_tested_per_conversation() -> None:
    """12 candidate-only flags from 3 conversations (4 prefixes each) are 3 pieces of evidence, not 12:
    McNemar on the pairs says p = 0.0005; the sign-flip test over conversations says 2/8 = 0.25."""
    inc = np.zeros(40, dtype=bool)
    cand = np.zeros(40, dtype=bool)
    cand[:12] = True
    clusters = np.repeat(np.arange(10), 4)
    naive = paired_comparison(inc, cand)
    clustered = paired_comparison(inc, cand, clusters)
    assert naive.p_value == pytest.approx(2 * 0.5**12)
    assert clustered.p_value == pytest.approx(0.25) and clustered.clusters == 10
    assert clustered.design_effect > 1 and clustered.ratio_hi / clustered.ratio_lo > naive.ratio_hi / naive.ratio_lo
    assert sign_flip_p(np.array([2, 1, 1, 0])) == pytest.approx(2 / 8)  # only all-plus and all-minus reach |4|
    # Singleton clusters: the same as McNemar, design effect 1.
    assert paired_comparison(inc, cand, np.arange(40)).p_value == naive.p_value
    assert cluster_design_effect(cand.astype(float), inc.astype(float), np.arange(40)) == 1.0


def test_bh_and_direction() -> None:
    adjusted = benjamini_hochberg([0.01, 0.04, 0.5])
    assert adjusted == pytest.approx([0.03, 0.06, 0.5])
    assert direction(0.06, 2, 9, level=0.1) == "up" and direction(0.06, 9, 2, level=0.05) == "no detectable change"
    assert direction(0.01, 3, 3) == "no detectable change"


def test_weighted_interval_is_not_degenerate_at_zero() -> None:
    flags = np.array([1, 0, 0, 1, 0, 0], dtype=float)
    weights = np.array([1, 1, 1, 3, 3, 3], dtype=float)
    clusters = np.array(["a", "a", "b", "c", "c", "d"])
    assert hajek(flags, weights) == pytest.approx((1 + 3) / 12)
    lo, hi, n_eff = weighted_interval(flags, weights, clusters)
    assert 0 <= lo <= hajek(flags, weights) <= hi <= 1 and 0 < n_eff <= 6
    # Nothing flagged in 400 prefixes from 100 conversations, two strata weighted 4:1: the old bootstrap gave
    # [0, 0]; the interval is the exact zero bound on the effective number of conversations.
    zeros = np.zeros(400)
    strata = np.repeat([0, 1], 200)
    lo, hi, n_eff = weighted_interval(zeros, np.where(strata == 0, 4.0, 1.0), np.repeat(np.arange(100), 4), strata)
    assert lo == 0.0 and hi > 0 and n_eff < 100
    assert hi > exact_interval(0, 400)[1]  # wider than treating 400 prefixes as independent


def test_correction_refusals_and_bounds() -> None:
    thin = corrected_rate(5, 10_000, tp=4, fn=2, fp=1, tn=50)
    assert thin.rate is None and "too thin" in (thin.refused_reason or "")
    none_caught = corrected_rate(5, 10_000, tp=0, fn=30, fp=1, tn=50)
    assert none_caught.rate is None and "tp = 0" in (none_caught.refused_reason or "")
    unreviewed = corrected_rate(5, 10_000, tp=20, fn=5, review=(0, 0, 0, 50))
    assert unreviewed.rate is None and "no flagged item" in (unreviewed.refused_reason or "")
    ok = corrected_rate(50, 10_000, tp=45, fn=5, review=(45, 50, 0, 50))
    # About flagged x precision / sensitivity = 0.005 x 0.9 / 0.9, never outside its own interval.
    assert ok.lo < ok.rate < ok.hi and ok.rate == pytest.approx(0.005, rel=0.2)
    extreme = corrected_rate(9_990, 10_000, tp=12, fn=30, review=(50, 50, 40, 50))
    assert 0 < extreme.lo <= extreme.rate <= extreme.hi <= 1


def test_sensitivity_zero_gives_no_detection_floor_not_a_floor_of_one() -> None:
    ok = pl.DataFrame({"prefix_id": [f"p{i}" for i in range(200)], "sample_index": [0] * 200, "flagged": [False] * 200,
                       "weight": [1.0] * 200, "conversation_id": [f"c{i // 4}" for i in range(200)], "stratum": ["all"] * 200})
    blind = {"sensitivity": 0.0, "tp": 0, "fn": 20, "fp": 0, "tn": 100}
    row = forecast_row(ok, blind, None, ForecastConfig())
    assert row["detection_floor_per_100k"] is None and "tp = 0" in row["correction_refused"]
    plain = forecast_row(ok, None, None, ForecastConfig())
    # Four prefixes per conversation: the floor is set by fewer effective prefixes than 200.
    assert plain["n_effective"] < 200 and plain["detection_floor_per_100k"] > detection_floor(200) * 1e5
    assert plain["forecast_estimate"] == "weighted" and plain["forecast_lo_per_100k"] == 0.0 and plain["forecast_hi_per_100k"] > 0
