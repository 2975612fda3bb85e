"""`depsim`: run a study's lineage, estimate its cost, query its warehouse, run the offline demo.

Every user error (a bad config, an undeclared release, a failed check or privacy gate, a missing
source file) is one line on stderr and a non-zero exit; `--debug` adds the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

from depsim_assets.core.config import ConfigError

DEMO_STUDIES = ("depsim.yaml", "studies/xstest.yaml", "studies/marshmallow_agentic.yaml", "studies/calculator_constructed.yaml")
USER_ERROR = 2
RUN_FAILED = 1


def _releases(args: argparse.Namespace) -> list[str]:
    from depsim_assets.core.config import load_study

    study = load_study(args.config)
    if args.all:
        return [r.name for r in study.config.releases]
    if not args.release:
        raise ValueError("name the releases to run (--release R, repeatable) or pass --all")
    return list(args.release)


def _cmd_run(args: argparse.Namespace) -> int:
    from depsim.runner import format_summary, run_study

    started = time.perf_counter()
    summary = run_study(args.config, releases=_releases(args), refresh=args.refresh, debug=args.debug)
    print(format_summary(summary))
    print(f"done in {time.perf_counter() - started:.1f}s")
    return 0


def _cmd_estimate(args: argparse.Namespace) -> int:
    from depsim.batch import preview
    from depsim.runner import run_study

    run_study(args.config, releases=[], debug=args.debug)  # upstream only (reused when unchanged): no model is called
    for release in _releases(args):
        print(f"{release}: " + ", ".join(f"{k}={v}" for k, v in preview(args.config, release).items()))
    return 0


def _cmd_batch(args: argparse.Namespace) -> int:
    from depsim.batch import export_batch, import_batch

    if args.batch_command == "export":
        out = Path(args.out or f"batch_{args.release}.jsonl")
        n = export_batch(args.config, args.release, out)
        print(f"wrote {n} missing requests to {out} (OpenAI Batch API input; custom_id = depsim request key)")
    else:
        counts = import_batch(args.config, args.release, Path(args.file))
        print(", ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


def _cmd_ledger(args: argparse.Namespace) -> int:
    from depsim_assets.core.config import load_study
    from depsim_assets.core.ledger import verify

    result = verify(load_study(args.config).ledger_path)
    if result.ok:
        print(f"ledger ok: {result.entries} entries, head {result.head}")
        return 0
    print(f"ledger BROKEN: {len(result.broken)} entr{'y' if len(result.broken) == 1 else 'ies'} changed: seq {', '.join(map(str, result.broken))}")
    return 1


def _cmd_incident(args: argparse.Namespace) -> int:
    from depsim_assets.core.config import load_study
    from depsim_assets.core.incidents import record_event
    from depsim_assets.staged_rollout import incidents_path

    study = load_study(args.config)
    head = record_event(incidents_path(study), args.incident, args.event, args.note or "", study.config_hash)
    print(f"{args.incident}: {args.event} recorded (log head {head[:12]}); re-materialize `incidents` to show it")
    return 0


def _cmd_forget(args: argparse.Namespace) -> int:
    import dagster as dg

    from depsim_assets.core.config import load_study
    from depsim_assets.core.withdrawal import forget
    from depsim_resources.privacy_key import PrivacyKeyResource

    if not (args.conversation or args.user):
        raise ValueError("name what to withdraw: --conversation ID and/or --user ID (repeatable)")
    study = load_study(args.config)
    key = PrivacyKeyResource(hmac_key=dg.EnvVar("DEPSIM_PRIVACY_KEY").get_value() or "").key()
    receipt = forget(study.warehouse_dir, key, args.conversation or [], args.user or [], hashed=args.hashed)
    tables = ", ".join(f"{t} {n}" for t, n in sorted(receipt.rows_removed.items())) or "none"
    print(f"withdrawn: {receipt.conversations} conversation(s), {receipt.prefixes} prefix(es); rows removed: {tables}; "
          f"completion store {receipt.store_rows_removed}; recorded in {study.warehouse_dir / '_withdrawals' / 'log.jsonl'} "
          "(counts only). Re-materialize the study's assets to refresh aggregates and past run metadata.")
    return 0


def _cmd_sql(args: argparse.Namespace) -> int:
    import duckdb

    from depsim_assets.core.config import load_study

    wh = load_study(args.config).warehouse
    # An in-memory catalog of views over the Parquet files (or a file, with --catalog): made on demand,
    # never by asset runs, so it cannot lock the warehouse against them.
    with duckdb.connect(args.catalog or ":memory:") as con:
        for statement in wh.duckdb_views():
            con.execute(statement)
        if not args.query:
            print("tables: " + ", ".join(wh.tables()))
            return 0
        print(con.sql(args.query).pl())
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from depsim.report import agentic_lines, awareness_lines, discovery_lines, forecast_lines, rollout_lines, scorecard_lines
    from depsim.runner import REPO_ROOT, format_summary, run_study
    from depsim_assets.core.config import load_study

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    if not os.environ.get("DEPSIM_PRIVACY_KEY"):
        # The demo data is public; a fixed key keeps its surrogates reproducible. Real traffic needs a secret.
        os.environ["DEPSIM_PRIVACY_KEY"] = "depsim-demo-key-not-secret"
        print("DEPSIM_PRIVACY_KEY is not set: using the public demo key (set a secret one for real traffic)")
    started = time.perf_counter()
    for rel_path in DEMO_STUDIES:
        path = REPO_ROOT / rel_path
        study = load_study(path)
        summary = run_study(path, releases=[r.name for r in study.config.releases], debug=args.debug)
        print(format_summary(summary))
        print("\n".join(forecast_lines(study) + scorecard_lines(study) + awareness_lines(study) + discovery_lines(study)
                        + rollout_lines(study) + agentic_lines(study)))
    print(f"demo finished in {time.perf_counter() - started:.1f}s")
    return 0


def _study_args(p: argparse.ArgumentParser, releases: bool = False) -> None:
    p.add_argument("--config", help="study config (default: $DEPSIM_CONFIG or ./depsim.yaml)")
    if releases:
        p.add_argument("--release", action="append", help="a release of the study (repeatable)")
        p.add_argument("--all", action="store_true", help="every release declared in the study")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="depsim", description=__doc__)
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="materialize the lineage for releases (never-graded incumbents first)")
    _study_args(run, releases=True)
    run.add_argument("--refresh", action="store_true", help="recompute the study-wide upstream assets even if unchanged")
    run.set_defaults(func=_cmd_run)
    est = sub.add_parser("estimate", help="planned calls, tokens and cost of releases' missing calls; sends nothing")
    _study_args(est, releases=True)
    est.set_defaults(func=_cmd_estimate)
    batch = sub.add_parser("batch", help="OpenAI Batch API route for a release's missing calls")
    batch_sub = batch.add_subparsers(dest="batch_command", required=True)
    exp = batch_sub.add_parser("export", help="write the missing requests as a Batch API input file")
    imp = batch_sub.add_parser("import", help="fill the completion store from a Batch API output file")
    for action in (exp, imp):
        _study_args(action)
        action.add_argument("--release", required=True)
        action.set_defaults(func=_cmd_batch)
    exp.add_argument("--out")
    imp.add_argument("--file", required=True)
    ledger = sub.add_parser("ledger", help="the hash-chained forecast ledger")
    ledger_sub = ledger.add_subparsers(dest="ledger_command", required=True)
    ver = ledger_sub.add_parser("verify", help="recompute the chain and name any entry that changed")
    _study_args(ver)
    ver.set_defaults(func=_cmd_ledger)
    inc = sub.add_parser("incident", help="record the next lifecycle event of an incident (append-only)")
    _study_args(inc)
    inc.add_argument("incident", help="incident id, as the `incidents` asset lists it")
    inc.add_argument("event", choices=["action_taken", "recovered", "reviewed"])
    inc.add_argument("--note", help="what was done, by whom")
    inc.set_defaults(func=_cmd_incident)
    sql = sub.add_parser("sql", help="query the warehouse with DuckDB (views over the Parquet files)")
    _study_args(sql)
    sql.add_argument("query", nargs="?", help="a SQL query; without one, list the tables")
    sql.add_argument("--catalog", help="write the views into this DuckDB file instead of memory")
    sql.set_defaults(func=_cmd_sql)
    fgt = sub.add_parser("forget", help="consent withdrawn: remove a conversation's or user's rows from every table and the "
                         "completion store, keep them out of later ingestion; records counts only")
    _study_args(fgt)
    fgt.add_argument("--conversation", action="append", help="a conversation (or hh-rlhf pair) id as in the source (repeatable)")
    fgt.add_argument("--user", action="append", help="a user id as in the source (repeatable)")
    fgt.add_argument("--hashed", action="store_true", help="the ids given are already the warehouse's keyed ids")
    fgt.set_defaults(func=_cmd_forget)
    demo = sub.add_parser("demo", help="run the shipped demo studies offline")
    demo.set_defaults(func=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    from depsim.runner import RunFailed
    from depsim_assets.core.storage import MissingTableError
    from depsim_assets.core.store import StoreBusyError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except RunFailed as e:
        code, message, details = RUN_FAILED, str(e), e.details
    except (ConfigError, KeyError, ValueError, FileNotFoundError, MissingTableError, StoreBusyError) as e:
        code, message, details = USER_ERROR, str(e.args[0] if isinstance(e, KeyError) and e.args else e), traceback.format_exc()
    if args.debug:
        print(details, file=sys.stderr)
    print(f"depsim: {_one_line(message)}", file=sys.stderr)
    return code


def _one_line(message: str) -> str:
    """A multi-line message (a config with several problems) as one line, problems separated by ` | `."""
    return " ".join(message.replace("\n  - ", " | ").split())


if __name__ == "__main__":
    sys.exit(main())
