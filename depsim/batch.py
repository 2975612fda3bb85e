"""Cost estimate and the OpenAI Batch API route, for `depsim estimate` and `depsim batch ...`."""

from pathlib import Path
from typing import Any

from depsim_assets.core.config import Study, load_study
from depsim_assets.core.recorded import batch_output_outcomes
from depsim_assets.core.requests import canonical
from depsim_assets.core.simulate import (
    Plan,
    batch_requests,
    estimate,
    missing_calls,
    plan_calls,
)
from depsim_resources.completion_store import CompletionStoreResource, Outcome


def _plan(study: Study, release_name: str) -> Plan:
    release = study.config.release(release_name)
    if release.backend != "openai":
        raise ValueError(f"release {release_name} uses the {release.backend} backend: it sends no calls")
    prefixes = study.warehouse.read("replay_prefixes")
    return plan_calls(prefixes, release, study.config.dispatch.samples_per_prefix)


def preview(config: str | None, release_name: str) -> dict[str, Any]:
    study = load_study(config)
    plan = _plan(study, release_name)
    with CompletionStoreResource().open(study.warehouse_dir) as store:
        todo = missing_calls(plan.calls, store.lookup(plan.index["request_key"]), study.config.dispatch)
        spent = store.spent(release_name)
    return {"planned_calls": len(plan.calls), **estimate(todo, study.config.release(release_name), study.config.dispatch), "spent_usd": spent}


def export_batch(config: str | None, release_name: str, out: Path) -> int:
    study = load_study(config)
    plan = _plan(study, release_name)
    with CompletionStoreResource().open(study.warehouse_dir) as store:
        todo = missing_calls(plan.calls, store.lookup(plan.index["request_key"]), study.config.dispatch)
    out.write_bytes(b"".join(line + b"\n" for line in batch_requests(todo)))
    return len(todo)


def import_batch(config: str | None, release_name: str, path: Path) -> dict[str, int]:
    """Fill the completion store from a Batch API output file; rows whose custom_id is no planned
    call of this release are refused and counted, never written."""
    study = load_study(config)
    release = study.config.release(release_name)
    plan = _plan(study, release_name)
    calls = {c.request_key: c for c in plan.calls}
    counts = {"imported_ok": 0, "imported_failed": 0, "unknown_custom_id": 0}
    with CompletionStoreResource().open(study.warehouse_dir) as store:
        for row in batch_output_outcomes(path):
            call = calls.get(str(row["request_key"]))
            if call is None:
                counts["unknown_custom_id"] += 1
                continue
            store.record(Outcome(call.request_key, call.sample_index, call.prefix_id, call.snapshot_id, release.name, release.model,
                                 canonical(call.body).decode(), str(row["status"]), row["failure_reason"], call.prior_attempts + 1,  # type: ignore[arg-type]
                                 response_text=row["response_text"], finish_reason=row["finish_reason"],  # type: ignore[arg-type]
                                 prompt_tokens=row["prompt_tokens"], completion_tokens=row["completion_tokens"]))  # type: ignore[arg-type]
            counts["imported_ok" if row["status"] == "ok" else "imported_failed"] += 1
    return counts
