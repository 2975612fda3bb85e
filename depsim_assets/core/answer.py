"""One path for every model call: answer these requests, sending only what the completion store lacks.

Release dispatch, judges and the batch route all need the same sequence — look the calls up in the
store, decide what is missing (or failed retriably under the attempt limit), send that under the
dispatch policy with progress lines, make the outcomes durable, read every call's outcome back. The
store and the endpoint are protocols, so this module imports no resource.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import polars as pl

from depsim_assets.core.config import DispatchConfig, ReleaseConfig
from depsim_assets.core.dispatch import Call, dispatch
from depsim_assets.core.simulate import missing_calls
from depsim_assets.core.store import Outcome


class CallStore(Protocol):
    def lookup(self, keys: Iterable[str]) -> pl.DataFrame: ...
    def record(self, outcome: Outcome) -> None: ...
    def flush(self) -> None: ...


class ModelEndpoint(Protocol):
    def client(self, release: ReleaseConfig) -> AbstractAsyncContextManager[Any]: ...
    def sender(self) -> Callable[[Any, dict[str, Any], float], Awaitable[Any]]: ...


@dataclass
class Answered:
    stored: pl.DataFrame  # the store's row for every requested key (missing: a call dispatch never finished)
    sent: set[str] = field(default_factory=set)


def answer(calls: list[Call], store: CallStore, endpoint: ModelEndpoint, release: ReleaseConfig, cfg: DispatchConfig,
           log: Callable[[str], None] = lambda _: None, budget_usd: float | None = None, spent_usd: float = 0.0) -> Answered:
    unique = list({c.request_key: c for c in calls}.values())  # one call per distinct request, whoever asked
    keys = [c.request_key for c in unique]
    todo = missing_calls(unique, store.lookup(keys), cfg)
    if todo:
        log(f"{release.name}: {len(unique)} distinct calls, {len(todo)} to send")

        async def go() -> None:
            async with endpoint.client(release) as client:
                await dispatch(todo, client, cfg, store.record, release.model, release.context_tokens, budget_usd, spent_usd, log,
                               send=endpoint.sender())

        asyncio.run(go())
        store.flush()
    return Answered(store.lookup(keys), {c.request_key for c in todo})
