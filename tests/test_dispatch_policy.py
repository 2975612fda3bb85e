"""Dispatch policy pieces without a server: token buckets, Retry-After parsing, cost, request keys."""

import asyncio
import time

import pytest

from depsim_assets.core.config import Price, ReleaseConfig
from depsim_assets.core.dispatch import TokenBucket, cost, retry_after_seconds
from depsim_assets.core.requests import chat_body, request_key


def test_token_bucket_limits_rate() -> None:
    async def take(bucket: TokenBucket, n: int, amount: float = 1.0) -> float:
        t0 = time.monotonic()
        for _ in range(n):
            await bucket.take(amount)
        return time.monotonic() - t0

    # 1,200 requests per minute = 20/s with a one-second burst: 60 takes need about 2 s.
    elapsed = asyncio.run(take(TokenBucket(1200), 60))
    assert 1.8 <= elapsed <= 3.5
    # Tokens per minute: 6,000/min = 100/s; five calls of 100 tokens after the burst need about 4 s.
    elapsed = asyncio.run(take(TokenBucket(6000), 5, amount=100))
    assert 3.5 <= elapsed <= 5.5
    assert asyncio.run(take(TokenBucket(None), 1000)) < 0.5  # no limit configured


def test_retry_after_forms() -> None:
    assert retry_after_seconds({"retry-after": "2.5"}) == 2.5
    assert retry_after_seconds({}) is None
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= retry_after_seconds({"retry-after": future}) <= 31


def test_cost_and_keys() -> None:
    assert cost(Price(input_per_mtok=2.0, output_per_mtok=8.0), 1_000_000, 500_000) == pytest.approx(6.0)
    assert cost(None, 10, 10) is None
    rel = ReleaseConfig(name="a", backend="openai", model="m", base_url="http://127.0.0.1:9/v1", system_prompt="Be brief.",
                        sampling={"temperature": 0.2, "seed": 7, "extra_body": {"reasoning_effort": "low"}})
    body = chat_body([{"role": "system", "content": "old"}, {"role": "user", "content": "hi"}], rel)
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert body["reasoning_effort"] == "low" and body["seed"] == 7
    assert request_key(body, 0) != request_key(body, 1)
    other = chat_body([{"role": "user", "content": "hi"}], rel.model_copy(update={"system_prompt": "Be verbose."}))
    assert request_key(other, 0) != request_key(body, 0)  # a system-prompt change is a different release
    assert request_key(dict(reversed(list(body.items()))), 0) == request_key(body, 0)  # canonical


def test_rpm_limit_and_clean_cancellation_against_the_fake_server() -> None:
    from depsim_assets.core.config import DispatchConfig
    from depsim_assets.core.dispatch import Call, dispatch
    from depsim_resources.model_endpoint import ModelEndpointResource
    from tests.fake_openai import FakeBehaviour, FakeOpenAI

    server = FakeOpenAI(FakeBehaviour(latency=0.05)).start()
    try:
        release = ReleaseConfig(name="r", backend="openai", model="m", base_url=server.base_url)
        calls = [Call(request_key(b, 0), 0, f"p{i}", None, "r", b)
                 for i, b in enumerate(chat_body([{"role": "user", "content": f"q{i}"}], release) for i in range(30))]
        endpoint = ModelEndpointResource()

        async def run(cfg: DispatchConfig, cancel_after: float | None = None) -> list:
            outcomes: list = []
            async with endpoint.client(release) as client:
                task = asyncio.create_task(dispatch(calls, client, cfg, outcomes.append, "m", log=lambda _: None, send=endpoint.sender()))
                if cancel_after is not None:
                    await asyncio.sleep(cancel_after)
                    task.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await task
                else:
                    await task
            return outcomes

        # 600 requests/minute = 10/s with a one-second burst: 30 calls need about 2 s more than the burst.
        t0 = time.monotonic()
        done = asyncio.run(run(DispatchConfig(concurrency=30, requests_per_minute=600)))
        assert len(done) == 30 and time.monotonic() - t0 >= 1.8
        # Cancelling mid-run stops cleanly: only finished calls were recorded, each exactly once.
        sent_before = sum(server.requests.values())
        partial = asyncio.run(run(DispatchConfig(concurrency=2, requests_per_minute=600), cancel_after=0.6))
        assert 0 < len(partial) < 30 and len({o.request_key for o in partial}) == len(partial)
        assert all(o.status == "ok" for o in partial)
        assert sum(server.requests.values()) - sent_before <= len(partial) + 2  # at most the 2 in flight were cut
    finally:
        server.stop()
