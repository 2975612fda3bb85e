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

    def embed(self, release: ReleaseConfig, texts: list[str], batch_size: int, timeout_s: float) -> tuple[list[list[float]] | None, str | None]:
        """`/v1/embeddings` for every text, in batches: (vectors, None), or (None, the failure) - the caller
        falls back to its offline representation and says why. The SDK retries transient errors twice."""
        client = openai.OpenAI(base_url=release.base_url, api_key=self._key(release), max_retries=2, timeout=timeout_s)
        vectors: list[list[float]] = []
        try:
            for start in range(0, len(texts), batch_size):
                got = client.embeddings.create(model=release.model, input=[t or " " for t in texts[start : start + batch_size]])
                vectors += [d.embedding for d in sorted(got.data, key=lambda d: d.index)]
        except openai.APIStatusError as e:
            return None, f"HTTP {e.status_code} from the embeddings endpoint"
        except openai.APIError as e:
            return None, f"embeddings endpoint: {type(e).__name__}"
        finally:
            client.close()
        return vectors, None

    def sender(self) -> Callable[[Any, dict[str, Any], float], Awaitable[Any]]:
        return lean_send if self.transport == "lean" else sdk_send
