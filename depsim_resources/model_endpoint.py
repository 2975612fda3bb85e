"""OpenAI-compatible model endpoints (OpenAI, vLLM, Ollama, llama.cpp server) through the `openai` SDK."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

import dagster as dg
import openai

from depsim_assets.core.config import ReleaseConfig
from depsim_assets.core.dispatch import sdk_send
from depsim_resources.lean_transport import LeanClient, lean_send


class ModelEndpointResource(dg.ConfigurableResource):
    """Builds an `AsyncOpenAI` client per release on the SDK's aiohttp transport, with the SDK's own
    retries off (depsim's dispatcher owns retries). The API key is read through `dagster.EnvVar` from
    the env var the release names; it never enters a request body, a log line or the store."""

    # "aiohttp": the SDK on its aiohttp transport (default); "httpx": the SDK's default transport;
    # "lean": bare aiohttp + orjson parsed into the SDK's ChatCompletion (see lean_transport.py).
    transport: Literal["aiohttp", "httpx", "lean"] = "aiohttp"

    def _key(self, release: ReleaseConfig) -> str:
        if not release.base_url:
            raise ValueError(f"release {release.name} has no base_url")
        key = dg.EnvVar(release.api_key_env).get_value() if release.api_key_env else None
        if release.api_key_env and not key:
            raise ValueError(f"release {release.name}: env var {release.api_key_env} (its API key) is not set")
        return key or "no-key"  # local servers (vLLM, Ollama) accept any key; the SDK insists on one

    def client(self, release: ReleaseConfig) -> Any:
        key = self._key(release)
        if self.transport == "lean":
            return LeanClient(str(release.base_url), key)
        http_client = openai.DefaultAioHttpClient() if self.transport == "aiohttp" else None
        return openai.AsyncOpenAI(base_url=release.base_url, api_key=key, max_retries=0, http_client=http_client)

    def sender(self) -> Callable[[Any, dict[str, Any], float], Awaitable[Any]]:
        return lean_send if self.transport == "lean" else sdk_send
