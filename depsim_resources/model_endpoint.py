"""OpenAI-compatible model endpoints (OpenAI, vLLM, Ollama, llama.cpp server) through the `openai` SDK."""

from __future__ import annotations

import dagster as dg
import openai

from depsim_assets.core.config import ReleaseConfig


class ModelEndpointResource(dg.ConfigurableResource):
    """Builds an `AsyncOpenAI` client per release on the SDK's aiohttp transport, with the SDK's own
    retries off (depsim's dispatcher owns retries). The API key is read through `dagster.EnvVar` from
    the env var the release names; it never enters a request body, a log line or the store."""

    transport: str = "aiohttp"  # or "httpx": the SDK's default transport

    def client(self, release: ReleaseConfig) -> openai.AsyncOpenAI:
        if not release.base_url:
            raise ValueError(f"release {release.name} has no base_url")
        key = dg.EnvVar(release.api_key_env).get_value() if release.api_key_env else None
        if release.api_key_env and not key:
            raise ValueError(f"release {release.name}: env var {release.api_key_env} (its API key) is not set")
        http_client = openai.DefaultAioHttpClient() if self.transport == "aiohttp" else None
        # Local servers (vLLM, Ollama) accept any key; the SDK insists on one being set.
        return openai.AsyncOpenAI(base_url=release.base_url, api_key=key or "no-key", max_retries=0, http_client=http_client)
