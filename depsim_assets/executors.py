"""Where a run's steps execute, chosen per deployment (not per study) by $DEPSIM_EXECUTOR.

- unset or `multiprocess`: Dagster's default executor, each step a subprocess of the run;
- `celery`: dagster-celery, each step a task on the broker that any worker may take. The broker and
  result backend URLs are read from $DEPSIM_CELERY_BROKER and $DEPSIM_CELERY_BACKEND when a run starts
  (through Dagster's `env` sources, so a password in a URL never lands in run config or the event log).

Workers load the same code location, so they need the same $DEPSIM_CONFIG (or serve a demo location).
"""

from __future__ import annotations

import os

import dagster as dg

from depsim_assets.core.config import ConfigError

EXECUTORS = ("multiprocess", "celery")


def deployment_executor() -> dg.ExecutorDefinition | None:
    chosen = os.environ.get("DEPSIM_EXECUTOR", "").strip() or "multiprocess"
    if chosen not in EXECUTORS:
        raise ConfigError(f"DEPSIM_EXECUTOR={chosen!r} is not an executor depsim knows: use one of {', '.join(EXECUTORS)}")
    if chosen == "multiprocess":
        return None  # Dagster's default
    unset = [v for v in ("DEPSIM_CELERY_BROKER", "DEPSIM_CELERY_BACKEND") if not os.environ.get(v)]
    if unset:
        raise ConfigError(f"DEPSIM_EXECUTOR=celery needs {' and '.join(unset)} (e.g. redis://127.0.0.1:6379/0): "
                          f"see scripts/scaleout.sh")
    try:
        from dagster_celery import celery_executor
    except ImportError:
        raise ConfigError("DEPSIM_EXECUTOR=celery needs dagster-celery: pip install 'depsim[scaleout]'") from None
    return celery_executor.configured({"broker": {"env": "DEPSIM_CELERY_BROKER"}, "backend": {"env": "DEPSIM_CELERY_BACKEND"}})
