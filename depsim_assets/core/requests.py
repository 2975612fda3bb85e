"""Chat-completion requests for a release, and the cache key that identifies each call."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from depsim_assets.core.config import ReleaseConfig


def _message(m: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m["role"], "content": m.get("content")}
    if m.get("tool_calls"):
        out["tool_calls"] = orjson.loads(m["tool_calls"]) if isinstance(m["tool_calls"], str) else m["tool_calls"]
    for k in ("tool_call_id", "name"):
        if m.get(k):
            out[k] = m[k]
    return out


def chat_body(messages: list[dict[str, Any]], release: ReleaseConfig) -> dict[str, Any]:
    """The full request body. A release is model + system prompt + sampling: when it declares a system
    prompt, that prompt replaces the traffic's own system messages (it is what would ship)."""
    msgs = [_message(m) for m in messages]
    if release.system_prompt is not None:
        msgs = [{"role": "system", "content": release.system_prompt}] + [m for m in msgs if m["role"] != "system"]
    body: dict[str, Any] = {"model": release.model, "messages": msgs}
    sp = release.sampling
    for name in ("temperature", "top_p", "max_tokens", "seed"):
        value = getattr(sp, name)
        if value is not None:
            body[name] = value
    body.update(sp.extra_body)
    return body


def canonical(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def request_key(body: dict[str, Any], sample_index: int) -> str:
    """Hash of the canonical body plus the sample index. Credentials are never part of a body."""
    return hashlib.sha256(canonical(body) + f"#{sample_index}".encode()).hexdigest()


def estimate_tokens(body: dict[str, Any]) -> int:
    """A conservative prompt-token estimate (4 characters per token) for budgets and rate limits."""
    chars = sum(len(m.get("content") or "") + len(orjson.dumps(m.get("tool_calls") or [])) for m in body["messages"])
    return chars // 4 + 4 * len(body["messages"])
