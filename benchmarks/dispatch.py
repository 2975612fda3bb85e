"""Dispatch throughput: the fake OpenAI-compatible server (fixed 100 ms latency) pinned to core 0, the
client (depsim's dispatcher on the openai SDK, writing the completion store) pinned to core 1.

Usage: python benchmarks/dispatch.py [--calls 5000] [--concurrency 64 256] [--transport aiohttp httpx]
Prints completions/s, the ratio to the latency bound (concurrency / 0.1 s) and client CPU ms per call.
"""

import argparse
import asyncio
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from depsim_assets.core.config import DispatchConfig, ReleaseConfig  # noqa: E402
from depsim_assets.core.dispatch import Call, dispatch  # noqa: E402
from depsim_assets.core.requests import chat_body, request_key  # noqa: E402
from depsim_resources.completion_store import Store  # noqa: E402
from depsim_resources.model_endpoint import ModelEndpointResource  # noqa: E402

LATENCY = 0.1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(base_url: str, n: int, concurrency: int, transport: str, tag: str, server_pid: int) -> None:
    release = ReleaseConfig(name="bench", backend="openai", model="fake-model", base_url=base_url, sampling={"max_tokens": 32})
    calls = []
    for i in range(n):
        body = chat_body([{"role": "user", "content": f"[{tag}] benchmark prompt {i}: say something short."}], release)
        calls.append(Call(request_key(body, 0), 0, f"p{i}", None, "bench", body))
    cfg = DispatchConfig(concurrency=concurrency, timeout_s=30, progress_every_s=3600)

    async def go() -> None:
        endpoint = ModelEndpointResource(transport=transport)
        async with endpoint.client(release) as client:
            with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "c.duckdb") as store:
                counts = await dispatch(calls, client, cfg, store.record, "fake-model", log=lambda _: None, send=endpoint.sender())
                assert counts["ok"] == n, counts
                store.flush()
                latencies.extend(store.all()["latency_ms"].to_list())

    latencies: list[float] = []
    cpu0, scpu0, t0 = cpu_seconds(), process_cpu_seconds(server_pid), time.perf_counter()
    asyncio.run(go())
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    server_busy = (process_cpu_seconds(server_pid) - scpu0) / wall
    bound = concurrency / LATENCY
    print(f"transport={transport:8s} concurrency={concurrency:4d}: {n / wall:8.1f} completions/s "
          f"({n / wall / bound:5.1%} of the {bound:,.0f}/s bound), client CPU {cpu / n * 1000:.2f} ms per completion, "
          f"client core {cpu / wall:4.0%} busy, server core {server_busy:4.0%} busy, "
          f"call latency p50 {sorted(latencies)[len(latencies) // 2]:.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--transport", nargs="+", default=["aiohttp", "httpx", "lean"])
    args = ap.parse_args()
    port = free_port()
    pin = ["taskset", "-c", "0"] if os.cpu_count() and os.cpu_count() > 1 else []
    server = subprocess.Popen([*pin, sys.executable, str(REPO / "tests/fake_openai.py"), "--port", str(port), "--latency", str(LATENCY)],
                              stdout=subprocess.PIPE, text=True)
    try:
        server.stdout.readline()  # "fake OpenAI server on ..."
        if pin:
            os.sched_setaffinity(0, {1})
        print(f"server pinned to core 0, client to core 1; {args.calls} calls per run, {LATENCY * 1000:.0f} ms server latency")
        for transport in args.transport:
            for c in args.concurrency:
                run(f"http://127.0.0.1:{port}/v1", args.calls, c, transport, f"{transport}-{c}", server.pid)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
