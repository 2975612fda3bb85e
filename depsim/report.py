"""What `depsim demo` prints: per-release forecasts with direction, then the scorecard against baselines."""

import polars as pl

from depsim_assets.core.config import Study
from depsim_assets.core.scoring import summarize


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def forecast_lines(study: Study) -> list[str]:
    fc = study.warehouse.read_or_empty("rate_forecasts", all_partitions=True)
    if fc.is_empty():
        return []
    cmp = study.warehouse.read_or_empty("release_comparison", all_partitions=True)
    lines = [f"forecasts of record per 100k messages (estimate, 95% sampling interval), direction vs the incumbent [{study.config.study}]"]
    for rel in study.config.releases:
        lines.append(f"  {rel.name}" + (f" (vs {rel.incumbent})" if rel.incumbent else " (no incumbent)"))
        for r in fc.filter(pl.col("release") == rel.name).sort("category").iter_rows(named=True):
            d = cmp.filter((pl.col("release") == rel.name) & (pl.col("category") == r["category"])) if "direction" in cmp.columns else cmp
            ratio = d["rate_ratio"].item() if len(d) and "rate_ratio" in d.columns else None
            shown = f" (x{ratio:.2f})" if ratio is not None and ratio == ratio else ""  # no ratio when neither release flagged any
            direction = f"  {d['direction'].item()}{shown}" if len(d) and "direction" in d.columns else ""
            lines.append(f"    {r['category']:<18} n={r['n_eligible']:>4} flagged={r['flagged']:>4} {r['forecast_estimate']:<9} "
                         f"{_fmt(r['forecast_rate_per_100k']):>7} [{_fmt(r['forecast_lo_per_100k'])}, {_fmt(r['forecast_hi_per_100k'])}]{direction}")
    return lines


def scorecard_lines(study: Study) -> list[str]:
    if not study.warehouse.exists("forecast_scorecard"):
        return []
    rows = study.warehouse.read("forecast_scorecard")
    if rows.is_empty():
        return [f"scorecard [{study.config.study}]: no observed post-release rates configured"]
    fold = study.config.post_release.changed_fold
    lines = [f"scorecard [{study.config.study}]: forecasts vs observed post-release rates (changed = >= {fold}x, interval excludes 1)",
             f"  {'method':<26}{'changed':>8}{'dir.acc':>9}{'abstain':>9}{'unchanged':>10}{'false al.':>10}{'median x':>10}{'p90 x':>8}"
             f"{'censored':>9}{'PI cover':>9}{'sampling':>9}"]

    def f(v: object) -> str:
        return "-" if v is None else format(v, ".2f")

    for s in summarize(rows, fold):
        if "note" in s:
            lines.append(f"  {s['method']:<26}  {s['note']}")
            continue
        lines.append(f"  {s['method']:<26}{s['changed_categories']:>8}{f(s['directional_accuracy']):>9}{f(s['abstention_rate']):>9}"
                     f"{s['unchanged_categories']:>10}{f(s['false_alarm_rate']):>10}{f(s['median_error']):>10}{f(s['p90_error']):>8}"
                     f"{s['censored'] + s['both_zero']:>9}{f(s['interval_coverage']):>9}{f(s['sampling_interval_coverage']):>9}")
    return lines


def agentic_lines(study: Study) -> list[str]:
    """Trajectories, prefixes and recorded answers stored, and the tool simulator replaying the stored
    trajectories leave-one-out (snapshot layer alone; recorded + snapshot)."""
    wh = study.warehouse
    if not wh.exists("agentic_trajectories"):
        return []
    from depsim_assets.core.agentic.fidelity import leave_one_out, stored_snapshot, summary
    from depsim_assets.core.agentic.tables import trajectories_of

    table = wh.read("agentic_trajectories")
    quarantined = wh.read_or_empty("trajectory_quarantine")
    prefixes = wh.read_or_empty("agentic_prefixes")
    records = wh.read_or_empty("tool_call_records")
    lines = [f"agentic [{study.config.study}]: {len(table)} trajectories, {int(table['calls'].sum() or 0)} tool calls, "
             f"{len(quarantined)} quarantined; {len(prefixes)} prefixes; {len(records)} recorded tool answers"]
    for release in study.config.releases:
        if wh.exists("agentic_rollouts", release.name):
            rollouts = wh.read("agentic_rollouts", [release.name])
            stops = ", ".join(f"{r['stop_reason']} {r['len']}" for r in rollouts.group_by("stop_reason").len().sort("stop_reason").iter_rows(named=True))
            answers = rollouts.select(pl.col("recorded", "snapshot", "llm", "unanswered").sum()).row(0, named=True)
            lines.append(f"  rollouts of '{release.name}': {len(rollouts)} ({stops}); tool answers {answers}")
        if wh.exists("agentic_labels", release.name):
            from depsim_assets.core.agentic.rollout_items import category_rates

            for r in category_rates(wh.read("agentic_labels", [release.name])).iter_rows(named=True):
                rate = "-" if r["rate"] is None else f"{r['rate']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}]"
                lines.append(f"    {r['category']:<20} ({r['grader_id']}) flagged {r['flagged']}/{r['eligible']} rollouts, rate {rate}")
    trajectories = trajectories_of(table)
    for label, recorded in (("snapshot layer alone", False), ("recorded + snapshot", True)):
        calls = leave_one_out(trajectories, stored_snapshot, recorded=recorded)
        if calls.is_empty():
            continue
        for row in summary(calls).filter(pl.col("provenance") == "all").iter_rows(named=True):
            shares = (f"exact={row['exact_of_answered']:.2f} normalised={row['normalised_of_answered']:.2f}"
                      if row["answered"] else "(none answered: needs execution)")
            lines.append(f"  simulator, {label:<22} {row['call_class']:<10} calls={row['calls']:>3} answered={row['answered']:.2f} {shares}")
    return lines


def rollout_lines(study: Study) -> list[str]:
    """Each release's staged-rollout decisions window by window, then the incidents."""
    decisions = study.warehouse.read_or_empty("rollout_decisions", all_partitions=True)
    if decisions.is_empty() or study.config.staged_rollout is None:
        return []
    stages = " -> ".join(f"{s.name} ({s.share:.0%})" for s in study.config.staged_rollout.stages)
    lines = [f"staged rollout [{study.config.study}]: {stages}; decision per observed batch"]
    per_window = decisions.select("release", "window", "stage", "decision", "next_stage", "reason").unique(["release", "window"])
    for rel in study.config.releases:
        rows = per_window.filter(pl.col("release") == rel.name).sort("window")
        if rows.is_empty():
            continue
        lines.append(f"  {rel.name}: " + ", ".join(f"{r['window']} {r['stage']}:{r['decision']}" for r in rows.iter_rows(named=True)))
        lines.append(f"    last reason: {rows['reason'][-1]}")
    incidents = study.warehouse.read_or_empty("incidents")
    lines.append(f"incidents [{study.config.study}]: {len(incidents)}")
    for r in incidents.iter_rows(named=True):
        lines.append(f"  {r['incident_id']} {r['release']}/{r['category']} {r['trigger']} ({r['severity']}) at {r['window']}: "
                     f"{r['evidence']} -> {r['recommended_action']} [{r['status']}]")
    return lines


def awareness_lines(study: Study) -> list[str]:
    """Per release: the share of contexts the classifier judged an evaluation, by kind, and the verbalized rate."""
    from depsim_assets.core.awareness import kind_rates

    rows = study.warehouse.read_or_empty("eval_awareness", all_partitions=True)
    if rows.is_empty() or study.config.awareness is None:
        return []
    lines = [f"evaluation awareness [{study.config.study}]: judged evaluation (classifier) and verbalized in the final turn (rules), by context kind"]
    for rel in study.config.releases:
        own = rows.filter(pl.col("release") == rel.name)
        if own.is_empty():
            continue
        cells = []
        for r in kind_rates(own, study.config.forecasting.alpha).filter(pl.col("contexts") > 0).iter_rows(named=True):
            judged = f"{r['judged_evaluation']}/{r['classified']}" if r["classified"] else "not classified"
            cells.append(f"{r['kind']}: judged {judged}, verbalized {r['verbalized']}/{r['contexts']}")
        lines.append(f"  {rel.name}: " + "; ".join(cells))
    return lines


def discovery_lines(study: Study, top: int = 3) -> list[str]:
    """Per release: the clusters that appeared or grew first, then the largest (only clusters above the floor
    are ever stored)."""
    rows = study.warehouse.read_or_empty("behaviour_discovery", all_partitions=True)
    if rows.is_empty() or study.config.discovery is None:
        return []
    k = study.config.discovery.k_anonymity
    lines = [f"behaviour discovery [{study.config.study}]: clusters of flagged/seeded completions spanning >= {k} conversations"]
    for rel in study.config.releases:
        own = rows.filter(pl.col("release") == rel.name)
        if own.is_empty():
            continue
        lines.append(f"  {rel.name}" + (f" vs {rel.incumbent}" if rel.incumbent else "") + f": {len(own)} clusters")
        for r in own.head(top).iter_rows(named=True):
            sizes = f"{r['candidate_conversations']}" + ("" if r["incumbent_conversations"] is None else f" vs {r['incumbent_conversations']}")
            ratio = "" if r["rate_ratio"] is None else f", ratio {r['rate_ratio']:.3g} [{r['ratio_lo']:.3g}, {r['ratio_hi']:.3g}]"
            lines.append(f"    {r['change'] or 'size'}: {r['name']} ({sizes} conversations{ratio})")
    return lines
