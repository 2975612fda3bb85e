"""Scale-out: one release's completions for N hh-rlhf prefixes, the fake model server answering each call
after 100 ms (so model calls dominate, as in real use).

Usage: python benchmarks/scaleout.py [--prefixes 50000] [--inflight 64] [--workers 2] [--shards 1 2 4]

Configurations, each from the same de-identified prefixes (computed once) and an empty completion store:
- `in-process`: one process (`dg.materialize`), `dispatch.concurrency` = the total in-flight calls;
- `celery S shards`: the scale-out profile (scripts/scaleout.sh: PostgreSQL, Redis, `--workers` Celery
  workers), S runs started at once with `dagster asset materialize` (one per shard; S=1 is the unsharded
  `regenerated_completions`), `dispatch.concurrency` = in-flight / shards running at once, so the total
  in flight is the same as in-process.
Prints wall time, completions/s, peak RSS of any worker process, client CPU ms per call (run processes +
workers, or the one process), the requests the server saw (total, distinct, most for one key) and whether
the completions equal the in-process run's. Needs Debian's postgresql and redis-server and '.[scaleout]'.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import polars as pl
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from lineage import SHARED, build_input  # noqa: E402

from depsim_assets.core.storage import Warehouse  # noqa: E402
from tests.dagster_dev import _free_port  # noqa: E402

LATENCY = 0.1
STUDY = """
study: hh_scaleout
warehouse_dir: {wh}
sources: [{{name: hh, kind: traffic, format: hh_rlhf, consent: public, paths: ["{data}"]}}]
releases: [{{name: cand, backend: openai, model: fake-candidate, base_url: "{url}"}}]
graders: [{{id: rules, kind: rules, categories: [refusal]}}]
dispatch: {{concurrency: {concurrency}, shards: {shards}, max_attempts: 2}}
"""


def write_study(where: Path, data: Path, n: int, url: str, concurrency: int, shards: int) -> Path:
    config = where / "study.yaml"
    config.write_text(STUDY.format(wh=where / "wh", data=data, url=url, concurrency=concurrency, shards=shards))
    return config


def in_process(config: Path) -> None:
    """Child mode: the unsharded completions in this one process; prints its figures as JSON."""
    import dagster as dg

    from depsim_assets.core.config import load_study
    from depsim_assets.definitions import build_resources, study_assets

    study = load_study(config)
    with dg.DagsterInstance.ephemeral() as instance:
        t0 = time.perf_counter()
        result = dg.materialize(study_assets(study), instance=instance, resources=build_resources(str(config)), partition_key="cand",
                                selection=dg.AssetSelection.keys("regenerated_completions"), raise_on_error=False)
        wall = time.perf_counter() - t0
    r = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"ok": result.success, "materialize_s": wall, "cpu": r.ru_utime + r.ru_stime, "rss_mib": r.ru_maxrss / 1024}))


class FakeServer:
    def __init__(self) -> None:
        self.port = _free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.fake_openai", "--port", str(self.port), "--latency", str(LATENCY)],
                                     cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                self.stats()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the fake server did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_stats", timeout=5) as r:
            return json.load(r)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def worker_tree(profile: Path) -> list[psutil.Process]:
    procs = []
    for pidfile in sorted((profile / "celery").glob("worker*.pid")):
        main = psutil.Process(int(pidfile.read_text()))
        procs += [main, *main.children(recursive=True)]
    return procs


def cpu_of(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def celery_run(config: Path, shards: int, workers: int, profile: Path, env: dict[str, str]) -> dict[str, float]:
    up = subprocess.run([str(REPO / "scripts/scaleout.sh"), "start", str(profile), str(workers)], env={**env, "DEPSIM_CONFIG": str(config)},
                        capture_output=True, text=True)
    if up.returncode:
        raise RuntimeError(up.stderr)
    try:
        run_env = {**env, "DEPSIM_CONFIG": str(config)}
        for line in (profile / "env.sh").read_text().splitlines():
            k, v = line.removeprefix("export ").split("=", 1)
            run_env[k] = v
        procs = worker_tree(profile)
        cpu0, children0 = cpu_of(procs), resource.getrusage(resource.RUSAGE_CHILDREN)
        keys = [(["hh_scaleout/regenerated_completions"], "cand")] if shards == 1 else \
            [(["hh_scaleout/completion_shards"], f"cand|{k}") for k in shard_keys(shards)]
        t0 = time.perf_counter()
        runs = [subprocess.Popen([sys.executable, "-m", "dagster", "asset", "materialize", "-m", "depsim_assets.definitions",
                                  "--select", ",".join(sel), "--partition", part], cwd=REPO, env=run_env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for sel, part in keys]
        peak = 0.0
        while any(r.poll() is None for r in runs):
            for p in procs:
                try:
                    peak = max(peak, p.memory_info().rss / 2**20)
                except psutil.NoSuchProcess:
                    pass
            time.sleep(0.5)
        wall = time.perf_counter() - t0
        failed = [r.stderr.read().decode()[-1500:] for r in runs if r.returncode]  # type: ignore[union-attr]
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = cpu_of(procs) - cpu0 + (children.ru_utime + children.ru_stime) - (children0.ru_utime + children0.ru_stime)
        return {"ok": not failed, "wall": wall, "cpu": cpu, "rss_mib": peak, "errors": failed[:1]}  # type: ignore[dict-item]
    finally:
        subprocess.run([str(REPO / "scripts/scaleout.sh"), "stop", str(profile)], capture_output=True)


def shard_keys(shards: int) -> list[str]:
    from depsim_assets.sharding import shard_keys as keys

    return keys(shards)


def completions(config_dir: Path, shards: int) -> pl.DataFrame:
    wh = Warehouse(config_dir / "wh")
    table = "completion_shards" if shards > 1 else "regenerated_completions"
    return wh.read(table, all_partitions=True).select("prefix_id", "status", "response_text").sort("prefix_id")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefixes", type=int, default=50_000)
    ap.add_argument("--inflight", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--keep", type=Path)
    ap.add_argument("--in-process", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.in_process:
        in_process(args.in_process)
        return
    work = args.keep or Path(tempfile.mkdtemp(prefix="depsim-scaleout-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GX_ANALYTICS_ENABLED": "false", "DEPSIM_PRIVACY_KEY": os.environ.get("DEPSIM_PRIVACY_KEY", "bench-key"),
           "DAGSTER_DISABLE_TELEMETRY": "1", "PYTHONPATH": str(REPO)}
    data = work / "hh.jsonl"
    build_input(args.prefixes, SHARED, data)
    # The prefixes once (ingest, de-identification, sampling), copied into every configuration's warehouse.
    seed = work / "seed"
    seed.mkdir(exist_ok=True)
    from depsim.runner import run_study
    import dagster as dg

    os.environ.update({k: env[k] for k in ("GX_ANALYTICS_ENABLED", "DEPSIM_PRIVACY_KEY", "DAGSTER_DISABLE_TELEMETRY")})
    with dg.DagsterInstance.ephemeral() as instance:
        run_study(write_study(seed, data, args.prefixes, "http://127.0.0.1:9/v1", 1, 1), [], instance=instance, progress=lambda _: None)
    n = len(Warehouse(seed / "wh").read("replay_prefixes"))
    print(f"{n:,} prefixes, {args.inflight} calls in flight in total, {LATENCY * 1000:.0f} ms per call at the server "
          f"(bound: {args.inflight / LATENCY:.0f} calls/s); {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"{'configuration':<26}{'wall s':>8}{'calls/s':>9}{'peak RSS MiB':>16}{'CPU ms/call':>13}{'sent/distinct/max':>20}  same answers")
    reference = None
    for name, shards in [("in-process", 0)] + [(f"celery, {s} shard{'s' * (s > 1)}", s) for s in args.shards]:
        where = work / name.replace(", ", "_").replace(" ", "_")
        shutil.rmtree(where, ignore_errors=True)
        shutil.copytree(seed, where, ignore=shutil.ignore_patterns("_completions", "_runs", "study.yaml"))
        server = FakeServer()
        try:
            at_once = min(max(shards, 1), args.workers) if shards else 1
            config = write_study(where, data, args.prefixes, server.url, max(1, args.inflight // at_once), max(shards, 1))
            if shards == 0:
                t0 = time.perf_counter()  # process start included, as for the runs the profile starts
                out = subprocess.run([sys.executable, __file__, "--in-process", str(config)], env=env, capture_output=True, text=True)
                figures = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {"ok": False, "errors": [out.stderr[-1500:]]}
                figures["wall"] = time.perf_counter() - t0
            else:
                figures = celery_run(config, shards, args.workers, work / f"profile_{shards}", env)
            stats = server.stats()
        finally:
            server.stop()
        if not figures.get("ok"):
            print(f"{name}: FAILED\n{figures.get('errors')}")
            continue
        answers = completions(where, max(shards, 1))
        reference = answers if reference is None else reference
        same = answers.equals(reference)
        print(f"{name:<26}{figures['wall']:>8.1f}{n / figures['wall']:>9.0f}{figures['rss_mib']:>16,.0f}{1000 * figures['cpu'] / n:>13.2f}"
              f"{stats['requests']:>9}/{stats['distinct']}/{stats['max_per_key']}  {same}", flush=True)


if __name__ == "__main__":
    main()
