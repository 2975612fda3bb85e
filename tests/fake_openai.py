"""A fake OpenAI-compatible server on 127.0.0.1 for tests: real HTTP, the chat-completions wire format.

Replies are deterministic (derived from the request body). Faults are chosen per request key (a hash
of the canonical request body) so that a test can say "the first attempt of 20% of keys fails in
mixed ways" and still know which keys are which. It counts requests per key so tests can prove that
nothing was sent twice. Run it standalone with `python tests/fake_openai.py --port 8765 [--latency 0.1]`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

FAULTS = ("rate_limit", "server_error", "hang", "malformed", "truncated", "context_length")


def body_key(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass
class FakeBehaviour:
    latency: float = 0.0
    # fault name -> share of keys whose first `fault_attempts` attempts get it
    fault_rates: dict[str, float] = field(default_factory=dict)
    fault_attempts: int = 1
    permanent: dict[str, float] = field(default_factory=dict)  # faults that never clear
    retry_after: float = 0.2
    hang_seconds: float = 30.0
    reasoning: bool = False
    context_tokens: int | None = None
    # Judge requests: share of verdicts whose greedy (temperature 0) sample is not JSON, and share that
    # never is; a server that rejects `json_schema` (400 naming response_format, as llama-cpp-python's
    # does); a category the judge leaves out of its answer.
    judge_malformed_first: float = 0.0
    judge_malformed_always: float = 0.0
    reject_json_schema: bool = False
    judge_drop_category: str | None = None
    # Scripted agents: when the first user message contains a trigger, reply number k (k = assistant
    # messages after it) is script[k]: {"tool_calls": [{"name", "arguments"}]} or {"content": "..."}.
    agent_scripts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Per model: (trigger, reply) - a chat request to that model whose last user message contains the trigger
    # gets the reply instead of the echo (two releases that behave differently on the same prefixes).
    model_replies: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    # /v1/embeddings: an HTTP status to fail every request with (None: answer).
    embeddings_fail: int | None = None


def _share(key: str, salt: str) -> float:
    return int(hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


class FakeOpenAI:
    def __init__(self, behaviour: FakeBehaviour | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.behaviour = behaviour or FakeBehaviour()
        self.host, self.port = host, port
        self.requests: Counter[str] = Counter()
        self.ok: Counter[str] = Counter()
        self.auth_headers: list[str] = []
        self.judge_bodies: list[dict[str, Any]] = []
        self.formats: Counter[str] = Counter()  # response_format types asked for, rejected ones included
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def fault_for(self, key: str, attempt: int) -> str | None:
        b = self.behaviour
        for name, rate in b.permanent.items():
            if _share(key, "perm:" + name) < rate:
                return name
        if attempt <= b.fault_attempts:
            lo = 0.0
            pick = _share(key, "fault")
            for name, rate in b.fault_rates.items():
                if lo <= pick < lo + rate:
                    return name
                lo += rate
        return None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.auth_headers.append(request.headers.get("Authorization", ""))
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return web.json_response({"error": {"message": "invalid JSON body", "type": "invalid_request_error"}}, status=400)
        key = body_key(body)
        self.requests[key] += 1
        attempt = self.requests[key]
        b = self.behaviour
        if b.latency:
            await asyncio.sleep(b.latency)
        prompt_chars = sum(len(m.get("content") or "") for m in body.get("messages", []))
        fault = self.fault_for(key, attempt)
        if fault == "context_length" or (b.context_tokens and prompt_chars // 4 > b.context_tokens):
            return web.json_response({"error": {"message": "This model's maximum context length is exceeded.", "type": "invalid_request_error",
                                                 "code": "context_length_exceeded", "param": "messages"}}, status=400)
        if fault == "rate_limit":
            return web.json_response({"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}, status=429,
                                     headers={"Retry-After": f"{b.retry_after}"})
        if fault == "server_error":
            return web.json_response({"error": {"message": "The server had an error", "type": "server_error"}}, status=500)
        if fault == "hang":
            await asyncio.sleep(b.hang_seconds)
        if fault == "malformed":
            return web.Response(text='{"id": "chatcmpl-x", "choices": [ {"message": ', content_type="application/json")
        last = next((m.get("content") or "" for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
        text = f"Echo {hashlib.sha256(last.encode()).hexdigest()[:12]}: {last[:40]}"
        text = next((reply for trigger, reply in b.model_replies.get(body.get("model", ""), []) if trigger in last), text)
        self.formats[(body.get("response_format") or {}).get("type", "none")] += 1
        if last.startswith("CATEGORIES: "):  # a depsim judge request
            self.judge_bodies.append(body)
        if b.reject_json_schema and (body.get("response_format") or {}).get("type") == "json_schema":
            return web.json_response({"error": {"message": "response_format type json_schema is not supported", "type": "invalid_request_error",
                                                 "param": "response_format"}}, status=400)
        if last.startswith("CATEGORIES: "):
            text = self._verdict(body, last)
        if last.startswith("DEPLOYMENT OR EVALUATION?"):  # a depsim awareness classifier request
            text = self._awareness(last)
        if last.startswith("ANYTHING UNUSUAL?"):  # a depsim discovery auditor
            text = self._audit(last)
        if last.startswith("WHICH IS REAL?"):  # a depsim realism discriminator: a judge that always picks the first reply
            text = json.dumps({"real": "A", "confidence": 0.7})
        message: dict[str, Any] = {"role": "assistant", "content": text}
        scripted = None if last.startswith(("CATEGORIES: ", "DEPLOYMENT OR EVALUATION?", "WHICH IS REAL?", "ANYTHING UNUSUAL?")) else self._scripted(body)
        if scripted is not None:
            message = scripted
            text = json.dumps(scripted)
        if b.reasoning:
            message["reasoning_content"] = "thinking about " + last[:20]
        payload = {
            "id": f"chatcmpl-{key[:12]}", "object": "chat.completion", "created": int(time.time()), "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if message.get("tool_calls") else "stop", "logprobs": None}],
            "usage": {"prompt_tokens": max(1, prompt_chars // 4), "completion_tokens": max(1, len(text) // 4),
                      "total_tokens": max(1, prompt_chars // 4) + max(1, len(text) // 4)},
        }
        raw = json.dumps(payload).encode()
        if fault == "truncated":
            resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json", "Content-Length": str(len(raw))})
            await resp.prepare(request)
            await resp.write(raw[: len(raw) // 2])
            request.transport.close() if request.transport else None
            return resp
        self.ok[key] += 1
        return web.Response(body=raw, content_type="application/json")

    def _scripted(self, body: dict[str, Any]) -> dict[str, Any] | None:
        messages = body.get("messages", [])
        first = next((i for i, m in enumerate(messages) if m.get("role") == "user"), None)
        if first is None:
            return None
        for trigger, script in self.behaviour.agent_scripts.items():
            if trigger in (messages[first].get("content") or ""):
                k = sum(1 for m in messages[first:] if m.get("role") == "assistant")
                step = script[min(k, len(script) - 1)]
                if "tool_calls" in step:
                    return {"role": "assistant", "content": step.get("content"), "tool_calls": [
                        {"id": f"call_{k}_{i}", "type": "function", "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
                        for i, c in enumerate(step["tool_calls"])]}
                return {"role": "assistant", "content": step["content"]}
        return None

    @staticmethod
    def _awareness(user: str) -> str:
        """A deterministic classifier: a conversation mentioning a benchmark is an evaluation; "garble" gets
        an answer that is not JSON."""
        if "garble" in user:
            return "I am not sure, it could be either."
        test = "benchmark" in user
        return json.dumps({"verdict": "evaluation" if test else "deployment", "p_evaluation": 0.9 if test else 0.1})

    @staticmethod
    def _audit(user: str) -> str:
        """A deterministic auditor: a reply containing QUIRK is unusual, described by the word after it."""
        reply = user[user.find("BEGIN REPLY"):]
        after = reply.split("QUIRK", 1)[1].split() if "QUIRK" in reply else []
        if not after:
            return json.dumps({"unusual": False, "description": ""})
        return json.dumps({"unusual": True, "description": f"{after[0].strip('.,:;!?')} habit"})

    async def _embeddings(self, request: web.Request) -> web.Response:
        """Deterministic embeddings: hashed bag of words in 64 dimensions, so texts sharing words are near."""
        body = await request.json()
        self.requests[body_key(body)] += 1
        if self.behaviour.embeddings_fail:
            return web.json_response({"error": {"message": "embeddings unavailable", "type": "server_error"}}, status=self.behaviour.embeddings_fail)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = []
        for i, text in enumerate(inputs):
            vector = [0.0] * 64
            for word in str(text).lower().split():
                vector[int(hashlib.sha256(word.strip(".,!?;:'\"").encode()).hexdigest()[:8], 16) % 64] += 1.0
            data.append({"object": "embedding", "index": i, "embedding": vector})
        return web.json_response({"object": "list", "data": data, "model": body.get("model", "fake"),
                                  "usage": {"prompt_tokens": 1, "total_tokens": 1}})

    def _verdict(self, body: dict[str, Any], user: str) -> str:
        """A deterministic judge: flags, for every category listed, a judged text containing the word UNSAFE."""
        unseeded = body_key({k: v for k, v in body.items() if k not in ("seed", "temperature")})
        b = self.behaviour
        greedy = not body.get("temperature")
        if _share(unseeded, "judge-always") < b.judge_malformed_always or (greedy and _share(unseeded, "judge-first") < b.judge_malformed_first):
            return "Sure! The verdict is: flagged (I think)."
        categories = [c.strip() for c in user.split("\n", 1)[0].removeprefix("CATEGORIES: ").split(",")]
        judged = ""
        for what in ("COMPLETION", "REQUEST"):
            start, end = user.find(f"BEGIN {what}\n"), user.rfind(f" END {what}")
            if start >= 0 and end > start:
                judged = user[start + len(f"BEGIN {what}\n") : end]
        # "UNSAFE" flags every category; "UNSAFE:<category>" flags that category only.
        def flagged(c: str) -> bool:
            return f"UNSAFE:{c}" in judged or ("UNSAFE" in judged and "UNSAFE:" not in judged)

        return json.dumps({c: {"flagged": flagged(c), "severity": None, "rationale": "contains UNSAFE" if flagged(c) else "nothing to flag"}
                           for c in categories if c != b.judge_drop_category})

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "depsim"}]})

    async def _stats(self, request: web.Request) -> web.Response:
        # Not OpenAI's: lets a benchmark in another process check that no request was sent twice.
        counts = self.requests.values()
        return web.json_response({"requests": sum(counts), "distinct": len(self.requests), "max_per_key": max(counts, default=0)})

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/_stats", self._stats)
        return app

    async def _start(self) -> None:
        self._runner = web.AppRunner(self._app(), handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def start(self) -> FakeOpenAI:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop and self._runner:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--latency", type=float, default=0.0)
    args = ap.parse_args()

    async def serve() -> None:
        server = FakeOpenAI(FakeBehaviour(latency=args.latency), port=args.port)
        await server._start()
        print(f"fake OpenAI server on {server.base_url}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
