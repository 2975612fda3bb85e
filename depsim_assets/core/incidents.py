"""Incidents: when monitoring says a deployed release misbehaves, and what was done about it.

Triggers come from the rollout evidence (`core/gates.py`): the observed rate shown above the forecast's
prediction interval (the simulation missed) and a stage gate failing. One incident per release, category
and test, opened at the first failing look (a rate that stays high opens no new one). Its lifecycle —
opened, action taken, recovered, reviewed — is a list of events in an append-only, hash-chained log (the
forecast ledger's format, `core/ledger.py`), so what was known when is never rewritten.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import orjson
import polars as pl

from depsim_assets.core.ledger import append, read_entries
from depsim_assets.core.rollout_plan import StagedRolloutConfig

LIFECYCLE = ("opened", "action_taken", "recovered", "reviewed")
INCIDENT_SCHEMA = pl.Schema({
    "incident_id": pl.String, "release": pl.String, "category": pl.String, "trigger": pl.String, "severity": pl.String,
    "window": pl.String, "evidence": pl.String, "recommended_action": pl.String, "status": pl.String, "updated_at": pl.String,
    "notes": pl.String})


def incident_id(release: str, category: str, test: str) -> str:
    return "inc-" + hashlib.sha256(f"{release}\x1f{category}\x1f{test}".encode()).hexdigest()[:10]


def triggers(evidence: pl.DataFrame, plan: StagedRolloutConfig) -> pl.DataFrame:
    """The first failing look per (release, category, test) as an incident to open. A gated test is severity
    high (the release is rolled back); the forecast band watched without a gate is medium."""
    first = (evidence.filter(pl.col("status") == "fail").sort("release", "look")
             .group_by("release", "category", "test", maintain_order=True).first())
    rows = []
    for r in first.iter_rows(named=True):
        severity = "high" if r["gate"] else "medium"
        trigger = "forecast_missed" if r["test"] == "forecast_band" else "gate_failed"
        action = plan.correction(severity)
        rows.append({"incident_id": incident_id(r["release"], r["category"], r["test"]), "release": r["release"],
                     "category": r["category"], "trigger": trigger, "severity": severity, "window": r["window"],
                     "evidence": f"{r['flagged']}/{r['n']} flagged ({r['rate_per_100k']:,.1f} per 100k) shown above "
                                 f"{r['limit_per_100k']:,.1f} per 100k ({r['note']})",
                     "recommended_action": f"{action.action}: {action.description}" if action.description else action.action})
    return pl.DataFrame(rows, schema={k: INCIDENT_SCHEMA[k] for k in INCIDENT_SCHEMA if k not in ("status", "updated_at", "notes")})


def _events(path: Path) -> list[dict[str, object]]:
    return [{**orjson.loads(e["payload"]), "release": e["release"], "recorded_at": e["recorded_at"]} for e in read_entries(path)]


def open_new(path: Path, found: pl.DataFrame, config_hash: str, now: dt.datetime | None = None) -> int:
    """Append an `opened` event for each triggered incident the log does not hold yet; returns how many."""
    known = {e["incident_id"] for e in _events(path)}
    new = found.filter(~pl.col("incident_id").is_in(list(known)))
    for (release,), rows in new.group_by("release", maintain_order=True):
        append(path, str(release), rows.drop("release").with_columns(event=pl.lit("opened"), note=pl.lit("")), config_hash, {}, now)
    return len(new)


def record_event(path: Path, incident: str, event: str, note: str, config_hash: str, now: dt.datetime | None = None) -> str:
    """Append a lifecycle event; events come in order (action taken, recovered, reviewed), each once."""
    history = [e for e in _events(path) if e["incident_id"] == incident]
    if not history:
        raise KeyError(f"no incident '{incident}' in {path} (open incidents are listed by the `incidents` asset)")
    if event not in LIFECYCLE[1:]:
        raise ValueError(f"event must be one of {list(LIFECYCLE[1:])}, got '{event}'")
    done = [str(e["event"]) for e in history]
    expected = LIFECYCLE[len(done)] if len(done) < len(LIFECYCLE) else None
    if event != expected:
        raise ValueError(f"incident {incident} is '{done[-1]}': the next event is {expected or 'none (reviewed)'}, not '{event}'")
    opened = history[0]
    row = pl.DataFrame([{k: opened[k] for k in ("incident_id", "category", "trigger", "severity", "window", "evidence",
                                                 "recommended_action")} | {"event": event, "note": note}])
    return append(path, str(opened["release"]), row, config_hash, {}, now)


def current(path: Path) -> pl.DataFrame:
    """One row per incident: what opened it and where its lifecycle is."""
    events = _events(path)
    if not events:
        return INCIDENT_SCHEMA.to_frame()
    frame = pl.DataFrame(events, infer_schema_length=None)
    return (frame.group_by("incident_id", maintain_order=True)
            .agg(pl.col("release", "category", "trigger", "severity", "window", "evidence", "recommended_action").first(),
                 status=pl.col("event").last(), updated_at=pl.col("recorded_at").last(),
                 notes=pl.col("note").filter(pl.col("note") != "").str.join("; "))
            .select(INCIDENT_SCHEMA.names()).cast(dict(INCIDENT_SCHEMA)))
