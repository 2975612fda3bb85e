"""Send model calls with depsim's own policy: bounded concurrency, RPM/TPM token buckets, timeouts,
exponential backoff with full jitter that honours Retry-After, and a budget cap.

The SDK's own retries are off (`max_retries=0`): every attempt is counted and classified here, and the
final outcome of every call, success or failure with its reason, is handed to `record`.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import openai
import orjson
from openai.types.chat import ChatCompletion

from depsim_assets.core.config import DispatchConfig, Price
from depsim_assets.core.requests import canonical, estimate_tokens
from depsim_assets.core.store import Outcome

# Failures that a later run may retry (up to max_attempts in total); the rest are final.
RETRIABLE = {"rate_limited", "server_error", "timeout", "connection", "malformed_response", "budget_exhausted"}


@dataclass
class Call:
    request_key: str
    sample_index: int
    prefix_id: str
    snapshot_id: str | None
    release: str
    body: dict[str, Any]
    prior_attempts: int = 0


class Retry(Exception):
    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.wait = reason, wait


class Final(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TokenBucket:
    """`per_minute` units per minute, bursting up to `burst_s` seconds' worth."""

    def __init__(self, per_minute: float | None, burst_s: float = 1.0) -> None:
        self.rate = per_minute / 60.0 if per_minute else None
        self.capacity = max(1.0, (per_minute or 0.0) / 60.0 * burst_s)
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self.lock = asyncio.Lock()

    async def take(self, amount: float = 1.0) -> None:
        if self.rate is None:
            return
        amount = min(amount, self.capacity)
        async with self.lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= amount:
                    self.tokens -= amount
                    return
                await asyncio.sleep((amount - self.tokens) / self.rate)


def retry_after_seconds(headers: Any) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def classify(exc: BaseException) -> Retry | Final:
    """Map an SDK or transport error onto depsim's retry policy."""
    if isinstance(exc, Retry | Final):
        return exc  # already classified (the lean transport raises these)
    if isinstance(exc, openai.RateLimitError):
        return Retry("rate_limited", retry_after_seconds(exc.response.headers))
    if isinstance(exc, openai.APITimeoutError | asyncio.TimeoutError):
        return Retry("timeout")
    if isinstance(exc, openai.APIStatusError):
        if "response_format" in str(exc):
            # The endpoint does not support the requested structured output: final, so a judge falls back.
            return Final("response_format_rejected")
        if exc.status_code >= 500:
            return Retry("server_error", retry_after_seconds(exc.response.headers))
        body = exc.body if isinstance(exc.body, dict) else {}
        code = body.get("code") or (body.get("error") or {}).get("code") if isinstance(body, dict) else None
        if code == "context_length_exceeded" or "context length" in str(exc).lower():
            return Final("context_length")
        return Final(f"http_{exc.status_code}")
    if isinstance(exc, openai.APIConnectionError):
        return Retry("connection")
    if isinstance(exc, openai.APIResponseValidationError | ValueError | KeyError | TypeError | orjson.JSONDecodeError):
        return Retry("malformed_response")
    return Final(f"error_{type(exc).__name__}")


def cost(price: Price | None, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
    if price is None or prompt_tokens is None:
        return None
    return (prompt_tokens * price.input_per_mtok + (completion_tokens or 0) * price.output_per_mtok) / 1e6


@dataclass
class Progress:
    total: int
    done: int = 0
    failed: int = 0
    started: float = 0.0

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        return f"{self.done}/{self.total} calls, {rate:.1f}/s, {self.failed} failed, ETA {eta:.0f}s"


async def sdk_send(client: openai.AsyncOpenAI, body: dict[str, Any], timeout: float) -> ChatCompletion:
    """POST the canonical body through the SDK's client and parse into the SDK's `ChatCompletion`.

    `chat.completions.create()` would first re-walk the body against its TypedDicts (about half of
    the client's CPU per call, measured in benchmarks/dispatch.py); depsim's bodies are plain JSON
    already, so it posts them as they are. Transport, errors and the response type are the SDK's.
    """
    return await client.post("/chat/completions", body=body, cast_to=ChatCompletion, options={"timeout": timeout})


async def dispatch(
    calls: list[Call],
    client: Any,
    cfg: DispatchConfig,
    record: Callable[[Outcome], None],
    model: str,
    context_tokens: int | None = None,
    budget_usd: float | None = None,
    spent_usd: float = 0.0,
    log: Callable[[str], None] = print,
    send: Callable[[Any, dict[str, Any], float], Awaitable[Any]] = sdk_send,
) -> Counter[str]:
    """Run every call to a final outcome (or until the budget stops dispatch); returns outcome counts."""
    price = cfg.prices.get(model)
    rpm, tpm = TokenBucket(cfg.requests_per_minute), TokenBucket(cfg.tokens_per_minute)
    queue: asyncio.Queue[Call] = asyncio.Queue()
    for c in calls:
        queue.put_nowait(c)
    progress = Progress(len(calls), started=time.monotonic())
    counts: Counter[str] = Counter()
    spent = [spent_usd]

    def finish(call: Call, status: str, reason: str | None, attempts: int, **fields: Any) -> None:
        record(Outcome(call.request_key, call.sample_index, call.prefix_id, call.snapshot_id, call.release, model,
                       canonical(call.body).decode(), status, reason, attempts, **fields))
        counts[status if status == "ok" else reason or "failed"] += 1
        progress.done += 1
        progress.failed += status != "ok"

    async def one(call: Call) -> None:
        attempts = call.prior_attempts
        est = estimate_tokens(call.body)
        if context_tokens and est + (call.body.get("max_tokens") or 0) > context_tokens:
            finish(call, "failed", "context_length", attempts)
            return
        reason = "unknown"
        while attempts < cfg.max_attempts:
            if budget_usd is not None and spent[0] >= budget_usd:
                finish(call, "failed", "budget_exhausted", attempts)
                return
            await rpm.take(1)
            await tpm.take(est + (call.body.get("max_tokens") or 0))
            attempts += 1
            t0 = time.perf_counter()
            try:
                resp = await send(client, call.body, cfg.timeout_s)
                choice = resp.choices[0]
                msg = choice.message
                usage = resp.usage
                pt, ct = (usage.prompt_tokens, usage.completion_tokens) if usage else (None, None)
                c = cost(price, pt, ct)
                spent[0] += c or 0.0
                extra = msg.model_extra or {}
                finish(
                    call, "ok", None, attempts,
                    response_text=msg.content,
                    tool_calls=orjson.dumps([t.model_dump() for t in msg.tool_calls]).decode() if msg.tool_calls else None,
                    reasoning=extra.get("reasoning_content") or extra.get("reasoning"),
                    finish_reason=choice.finish_reason, prompt_tokens=pt, completion_tokens=ct,
                    latency_ms=(time.perf_counter() - t0) * 1000, cost_usd=c,
                )
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure is classified and recorded
                verdict = classify(exc)
                reason = verdict.reason
                if isinstance(verdict, Final):
                    finish(call, "failed", reason, attempts)
                    return
                if attempts < cfg.max_attempts:
                    backoff = random.uniform(0, min(cfg.backoff_max_s, cfg.backoff_base_s * 2 ** (attempts - 1)))
                    await asyncio.sleep(max(backoff, verdict.wait or 0.0))
        finish(call, "failed", reason, attempts)

    async def worker() -> None:
        while True:
            try:
                call = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await one(call)

    async def reporter() -> None:
        while True:
            await asyncio.sleep(cfg.progress_every_s)
            log(progress.line())

    rep = asyncio.create_task(reporter())
    try:
        await asyncio.gather(*(worker() for _ in range(min(cfg.concurrency, max(1, len(calls))))))
    finally:
        rep.cancel()
    log(progress.line())
    return counts
