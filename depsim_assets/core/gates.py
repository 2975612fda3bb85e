"""Staged-rollout decisions: pre-release gates on the forecast of record, stage gates on observed batches.

Every stage test is an always-valid test on the release's cumulative observed counts (`core/sequential.py`),
so a gate looked at after every batch keeps its error rate. A test says `fail` (the rate is shown above its
limit), `pass` (shown below) or `insufficient data` (neither yet): a gate never passes for lack of evidence.
It says `n/a` when it cannot apply: a fold gate on the first release of a chain, a limit at or above 100%.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from depsim_assets.core.rollout_plan import GateConfig, StagedRolloutConfig
from depsim_assets.core.sequential import confidence_sequence, judge
from depsim_assets.core.stats import PER

ADVANCE, HOLD, ROLL_BACK = "advance", "hold", "roll back"
EVIDENCE_SCHEMA = pl.Schema({
    "window": pl.String, "look": pl.Int64, "stage": pl.String, "category": pl.String, "test": pl.String, "gate": pl.Boolean,
    "limit_per_100k": pl.Float64, "n": pl.Int64, "flagged": pl.Int64, "rate_per_100k": pl.Float64, "cs_lo_per_100k": pl.Float64,
    "cs_hi_per_100k": pl.Float64, "log_e_above": pl.Float64, "log_e_below": pl.Float64, "status": pl.String, "note": pl.String})
DECISION_SCHEMA = pl.Schema({
    "window": pl.String, "look": pl.Int64, "stage": pl.String, "share": pl.Float64, "decision": pl.String, "next_stage": pl.String,
    "stage_messages": pl.Int64, "stage_batches": pl.Int64, "reason": pl.String})


@dataclass(frozen=True)
class Reference:
    """What a category's observed rate is compared with (per 100k; None when unknown)."""

    forecast: float | None = None
    pi_hi: float | None = None
    ratio_lo: float | None = None  # interval of the forecast ratio to the incumbent
    ratio_hi: float | None = None
    incumbent: float | None = None  # the incumbent's observed rate
    has_incumbent: bool = True  # the first release of a chain has nothing to be compared with: fold gates do not apply


def reference_table(forecast: pl.DataFrame, incumbent_rates: pl.DataFrame | None, has_incumbent: bool) -> dict[str, Reference]:
    """References per category from the release's ledger rows (its forecast of record) and its incumbent's
    observed rates (category, rate_per_100k, floor_per_100k)."""
    inc = {}
    if incumbent_rates is not None:
        # A count of zero is not a rate of zero: below its detection floor the incumbent's rate is taken at the
        # floor, or one flagged message would fail any fold gate.
        floor = pl.col("floor_per_100k") if "floor_per_100k" in incumbent_rates.columns else pl.lit(0.0)
        inc = dict(incumbent_rates.select("category", pl.max_horizontal("rate_per_100k", floor.fill_null(0.0))).iter_rows())
    cols = ("forecast_rate_per_100k", "pi_hi_per_100k", "ratio_lo", "ratio_hi")
    rows = pl.DataFrame(schema={"category": pl.String, **dict.fromkeys(cols, pl.Float64)})
    if "category" in forecast.columns and len(forecast):
        rows = forecast.select("category", *[pl.col(c).cast(pl.Float64) if c in forecast.columns else pl.lit(None, pl.Float64).alias(c)
                                             for c in cols])
    refs = {c: Reference(f, pi, lo, hi, inc.get(c), has_incumbent) for c, f, pi, lo, hi in rows.iter_rows()}
    return refs | {c: Reference(incumbent=v, has_incumbent=has_incumbent) for c, v in inc.items() if c not in refs}


def pre_release(references: dict[str, Reference], plan: StagedRolloutConfig) -> list[tuple[str, str, str]]:
    """(category, status, reason) per pre-release gate on the forecast of record. Like the stage gates, a gate
    passes when the forecast is shown below its limit, fails when shown above, else has insufficient data."""
    out = []
    for category, gate in plan.gates.items():
        ref = references.get(category, Reference())
        if gate.forecast_max_per_100k is not None:
            limit = gate.forecast_max_per_100k
            if ref.forecast is None or ref.pi_hi is None:
                out.append((category, "insufficient data", f"{category}: no forecast of record"))
            else:
                status = "pass" if ref.pi_hi < limit else "fail" if ref.forecast >= limit else "insufficient data"
                out.append((category, status, f"{category}: forecast {ref.forecast:.4g} per 100k, prediction interval upper bound "
                                              f"{ref.pi_hi:.4g} vs limit {limit:g}"))
        if gate.forecast_max_fold is not None and ref.has_incumbent:
            fold = gate.forecast_max_fold
            if ref.ratio_hi is None or ref.ratio_lo is None:
                ok = ref.forecast == 0  # nothing flagged: no ratio to compute, and no increase either
                out.append((category, "pass" if ok else "insufficient data",
                            f"{category}: {'nothing flagged in the forecast' if ok else 'no forecast ratio to the incumbent'}"))
            else:
                status = "pass" if ref.ratio_hi < fold else "fail" if ref.ratio_lo >= fold else "insufficient data"
                out.append((category, status, f"{category}: forecast ratio to the incumbent in [{ref.ratio_lo:.3g}, {ref.ratio_hi:.3g}] "
                                              f"vs limit {fold:g}x"))
    return out


def _limit(test: str, gate: GateConfig, ref: Reference) -> tuple[float | None, str]:
    if test == "forecast_band":
        return (min(ref.pi_hi, PER), "forecast prediction interval upper bound") if ref.pi_hi is not None else (None, "no forecast of record")
    if test == "observed_max":
        return gate.observed_max_per_100k, "gate threshold"
    if not ref.has_incumbent:
        return None, "not applicable: no incumbent"
    if ref.incumbent is None or gate.observed_max_fold is None:
        return None, "no observed rate for the incumbent"
    return gate.observed_max_fold * ref.incumbent, f"{gate.observed_max_fold:g}x the incumbent's observed rate"


def _tests(categories: list[str], plan: StagedRolloutConfig, refs: dict[str, Reference]) -> list[tuple[str, str, bool, float]]:
    """(category, test, is a gate, alpha): every configured stage test, plus the forecast band watched (not
    gated) on categories without a gate, so a missed forecast opens an incident anyway."""
    out = []
    for category in categories:
        gate = plan.gates.get(category)
        tests = gate.stage_tests() if gate else []
        out += [(category, t, True, plan.alpha / len(tests)) for t in tests]
        if "forecast_band" not in tests and refs.get(category, Reference()).pi_hi is not None:
            out.append((category, "forecast_band", False, plan.alpha))
    return out


def evaluate(observations: pl.DataFrame, refs: dict[str, Reference], plan: StagedRolloutConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Walk the release's windows in order: cumulative evidence per (window, category, test), and the stage
    decision per window. `observations`: window, category, n, flagged (one row per window and category)."""
    windows = sorted(observations["window"].unique().to_list())
    cumulative = (observations.group_by("window", "category").agg(pl.col("n").sum(), pl.col("flagged").sum())
                  .sort("window").with_columns(pl.col("n", "flagged").cum_sum().over("category")))
    categories = sorted(set(cumulative["category"].to_list()) | set(plan.gates))
    tests = _tests(categories, plan, refs)
    checks = pre_release(refs, plan)
    blocked = [r for _, s, r in checks if s != "pass"]
    stage, stage_n, stage_batches, rolled_back = 0, 0, 0, ""
    evidence, decisions = [], []
    messages = dict(observations.group_by("window").agg(pl.col("n").max()).iter_rows())  # a window's traffic: its largest category
    for look, window in enumerate(windows, start=1):
        now = cumulative.filter(pl.col("window") <= window).group_by("category").agg(pl.col("n").last(), pl.col("flagged").last())
        counts = {c: (n, k) for c, n, k in now.iter_rows()}
        current = plan.stages[min(stage, len(plan.stages) - 1)]
        shown = "pre-release" if blocked else current.name
        stage_n += int(messages.get(window, 0))
        stage_batches += 1
        failing, waiting = [], []
        for category, test, is_gate, alpha in tests:
            n, k = counts.get(category, (0, 0))
            limit, what = _limit(test, plan.gates.get(category, GateConfig()), refs.get(category, Reference()))
            lo, hi = confidence_sequence(k, n, plan.alpha) if n else (None, None)
            row = {"window": window, "look": look, "stage": shown, "category": category, "test": test, "gate": is_gate,
                   "limit_per_100k": limit, "n": n, "flagged": k, "rate_per_100k": k / n * PER if n else None,
                   "cs_lo_per_100k": lo * PER if lo is not None else None, "cs_hi_per_100k": hi * PER if hi is not None else None,
                   "log_e_above": None, "log_e_below": None, "note": what}
            if what.startswith("not applicable") or (limit is not None and limit >= PER):  # no rate can exceed 100%
                row["status"] = "n/a"
            elif limit is None or n == 0:
                row["status"] = "insufficient data"
            else:
                v = judge(k, n, limit / PER, alpha)
                row |= {"status": v.status, "log_e_above": v.log_e_above, "log_e_below": v.log_e_below}
            evidence.append(row)
            if is_gate and row["status"] == "fail":
                failing.append(f"{category} {test}: {k}/{n} shown above {limit:,.1f} per 100k ({what})")
            elif is_gate and row["status"] not in ("pass", "n/a"):
                waiting.append(f"{category} {test} ({what}; {k}/{n})")
        decision, nxt, reason = _decide(plan, stage, stage_n, stage_batches, failing, waiting, blocked, rolled_back)
        if decision == ROLL_BACK and not rolled_back:
            rolled_back = window
        decisions.append({"window": window, "look": look, "stage": shown, "share": 0.0 if blocked else current.share,
                          "decision": decision, "next_stage": nxt, "stage_messages": stage_n, "stage_batches": stage_batches, "reason": reason})
        if decision == ADVANCE:
            stage, stage_n, stage_batches = stage + 1, 0, 0
    return pl.DataFrame(evidence, schema=EVIDENCE_SCHEMA), pl.DataFrame(decisions, schema=DECISION_SCHEMA)


def _decide(plan: StagedRolloutConfig, stage: int, stage_n: int, stage_batches: int, failing: list[str], waiting: list[str],
            blocked: list[str], rolled_back: str) -> tuple[str, str, str]:
    """(decision, next stage, reason) at one look."""
    last = len(plan.stages) - 1
    current = plan.stages[min(stage, last)]
    if blocked:  # never released: stage tests still run, and open incidents, but roll nothing back
        return HOLD, "pre-release", "pre-release gate not passed: " + "; ".join(blocked)
    if rolled_back:
        return ROLL_BACK, "rolled back", f"rolled back at window {rolled_back}"
    if failing:
        return ROLL_BACK, "rolled back", "; ".join(failing)
    if stage > last:
        return HOLD, "complete", "rollout complete: monitoring continues"
    if waiting:
        return HOLD, current.name, "insufficient data: " + "; ".join(waiting)
    short = []
    if stage_n < current.min_messages:
        short.append(f"{stage_n}/{current.min_messages} messages")
    if stage_batches < current.min_batches:
        short.append(f"{stage_batches}/{current.min_batches} batches")
    if short:
        return HOLD, current.name, f"gates pass; stage minimum not reached ({', '.join(short)})"
    nxt = plan.stages[stage + 1].name if stage < last else "complete"
    return ADVANCE, nxt, f"every gate shown below its limit after {stage_n} messages in {current.name}"
