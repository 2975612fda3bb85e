"""A lean chat-completions transport: bare aiohttp + orjson, parsed into the SDK's `ChatCompletion`.

The SDK's request pipeline costs about 1.4 ms of client CPU per call (benchmarks/dispatch.py), which
caps one core near 700 calls/s; this path posts the canonical body directly and validates the reply
against the SDK's own pydantic type, so the contract (field names, types) stays the SDK's. Errors are
raised already classified for depsim's retry policy.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
from openai.types.chat import ChatCompletion

from depsim_assets.core.dispatch import Final, Retry, retry_after_seconds


class LeanClient:
    def __init__(self, base_url: str, api_key: str, max_connections: int = 1024) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self.max_connections = max_connections
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> LeanClient:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.max_connections))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    async def chat(self, body: dict[str, Any], timeout: float) -> ChatCompletion:
        assert self.session is not None, "use `async with LeanClient(...)`"
        try:
            async with self.session.post(self.url, data=orjson.dumps(body), headers=self.headers,
                                         timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                raw = await resp.read()
                status, headers = resp.status, resp.headers
        except TimeoutError as e:
            raise Retry("timeout") from e
        except aiohttp.ClientPayloadError as e:
            raise Retry("connection") from e
        except aiohttp.ClientError as e:
            raise Retry("connection") from e
        if status == 429:
            raise Retry("rate_limited", retry_after_seconds(headers))
        if status >= 400 and b"response_format" in raw:
            raise Final("response_format_rejected")  # as `classify` does for the SDK path
        if status >= 500:
            raise Retry("server_error", retry_after_seconds(headers))
        if status >= 400:
            try:
                err = (orjson.loads(raw).get("error") or {}) if raw else {}
            except orjson.JSONDecodeError:
                err = {}
            if err.get("code") == "context_length_exceeded" or "context length" in str(err.get("message", "")).lower():
                raise Final("context_length")
            raise Final(f"http_{status}")
        try:
            return ChatCompletion.model_validate(orjson.loads(raw))
        except (orjson.JSONDecodeError, ValueError) as e:
            raise Retry("malformed_response") from e


async def lean_send(client: LeanClient, body: dict[str, Any], timeout: float) -> ChatCompletion:
    return await client.chat(body, timeout)
