"""The completion store resource: where the study's store lives (see `core/store.py` for how it works)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from depsim_assets.core.store import Outcome, Store

__all__ = ["CompletionStoreResource", "Outcome", "Store", "STORE_DIR"]
STORE_DIR = "_completions"


class CompletionStoreResource(dg.ConfigurableResource):
    """The completion store of the study (default `<warehouse_dir>/_completions/`), shared by every
    process that calls models for the study: release runs, judges, workers."""

    path: str = ""

    def open(self, default_dir: Path) -> Store:
        return Store(Path(self.path) if self.path else default_dir / STORE_DIR)
