"""`depsim`: run a study's lineage, sync releases, run the offline demo."""

import argparse
import os
import sys
import time
from pathlib import Path

from depsim_assets.core.config import ConfigError

DEMO_STUDIES = ("depsim.yaml", "studies/xstest.yaml")


def _cmd_run(args: argparse.Namespace) -> int:
    from depsim_assets.runner import format_summary, run_study

    if args.dry_run:
        from depsim_assets.batch import preview

        run_study(args.config, releases=[])  # upstream only: no model is called
        for key, value in preview(args.config, args.release).items():
            print(f"{key}: {value}")
        return 0
    started = time.perf_counter()
    summary = run_study(args.config, releases=[args.release])
    print(format_summary(summary))
    print(f"done in {time.perf_counter() - started:.1f}s")
    return 0 if all(summary.checks.values()) else 1


def _cmd_sync(args: argparse.Namespace) -> int:
    from depsim_assets.core.config import load_study
    from depsim_assets.partitions import sync_releases
    from depsim_assets.runner import get_instance

    study = load_study(args.config)
    added = sync_releases(get_instance(), study.config)
    print(f"added release partitions: {', '.join(added)}" if added else "every declared release is already a partition")
    return 0


def _cmd_batch(args: argparse.Namespace) -> int:
    from depsim_assets.batch import export_batch, import_batch

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
    from depsim_resources.study import StudyResource

    study = load_study(args.config)
    with StudyResource(config_path=str(study.path)).connect() as con:
        result = verify(con)
    if result.ok:
        print(f"ledger ok: {result.entries} entries, head {result.head}")
        return 0
    print(f"ledger BROKEN: {len(result.broken)} entr{'y' if len(result.broken) == 1 else 'ies'} changed: seq {', '.join(map(str, result.broken))}")
    return 1


def _cmd_demo(args: argparse.Namespace) -> int:
    from depsim_assets.core.config import load_study
    from depsim_assets.report import forecast_lines, scorecard_lines
    from depsim_assets.runner import REPO_ROOT, format_summary, run_study

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    if not os.environ.get("DEPSIM_PRIVACY_KEY"):
        # The demo data is public; a fixed key keeps its surrogates reproducible. Real traffic needs a secret.
        os.environ["DEPSIM_PRIVACY_KEY"] = "depsim-demo-key-not-secret"
        print("DEPSIM_PRIVACY_KEY is not set: using the public demo key (set a secret one for real traffic)")
    started = time.perf_counter()
    ok = True
    for rel_path in DEMO_STUDIES:
        path = REPO_ROOT / rel_path
        study = load_study(path)
        summary = run_study(path, releases=[r.name for r in study.config.releases])
        ok &= all(summary.checks.values())
        print(format_summary(summary))
        print("\n".join(forecast_lines(study) + scorecard_lines(study)))
    print(f"demo finished in {time.perf_counter() - started:.1f}s")
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="depsim", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="materialize the whole lineage for one release")
    run.add_argument("--release", required=True)
    run.add_argument("--config", help="study config (default: $DEPSIM_CONFIG or ./depsim.yaml)")
    run.add_argument("--dry-run", action="store_true", help="print the missing calls, tokens and cost; send nothing")
    run.set_defaults(func=_cmd_run)
    batch = sub.add_parser("batch", help="OpenAI Batch API route for a release's missing calls")
    batch_sub = batch.add_subparsers(dest="batch_command", required=True)
    exp = batch_sub.add_parser("export", help="write the missing requests as a Batch API input file")
    exp.add_argument("--release", required=True)
    exp.add_argument("--config")
    exp.add_argument("--out")
    imp = batch_sub.add_parser("import", help="fill the completion store from a Batch API output file")
    imp.add_argument("--release", required=True)
    imp.add_argument("--config")
    imp.add_argument("--file", required=True)
    for action in (exp, imp):
        action.set_defaults(func=_cmd_batch)
    rel = sub.add_parser("releases", help="release partitions")
    rel_sub = rel.add_subparsers(dest="releases_command", required=True)
    sync = rel_sub.add_parser("sync", help="add every declared release as a `release` partition")
    sync.add_argument("--config")
    sync.set_defaults(func=_cmd_sync)
    ledger = sub.add_parser("ledger", help="the hash-chained forecast ledger")
    ledger_sub = ledger.add_subparsers(dest="ledger_command", required=True)
    ver = ledger_sub.add_parser("verify", help="recompute the chain and name any entry that changed")
    ver.add_argument("--config")
    ver.set_defaults(func=_cmd_ledger)
    demo = sub.add_parser("demo", help="run the shipped demo studies offline")
    demo.set_defaults(func=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, KeyError, ValueError) as e:
        print(f"depsim: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"depsim: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
