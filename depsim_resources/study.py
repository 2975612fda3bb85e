"""The study resource: which config file this code location serves, loaded on use."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg
import duckdb

from depsim_assets.core.config import Study, load_study


class StudyResource(dg.ConfigurableResource):
    """Points at one study config (default: $DEPSIM_CONFIG or ./depsim.yaml)."""

    config_path: str = ""  # empty: resolved at load time from $DEPSIM_CONFIG, else ./depsim.yaml

    def load(self) -> Study:
        return load_study(self.config_path or None)

    @contextlib.contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection to the study's warehouse (DuckDB allows one writing process;
        read-only and read-write connections to one file cannot coexist in a process, so all are
        read-write and closed promptly)."""
        study = self.load()
        study.warehouse_dir.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(study.warehouse_path))
        try:
            yield con
        finally:
            con.close()
