"""Shared fixtures: a real Dagster instance in a temp DAGSTER_HOME, study configs on disk."""

import contextlib
import os
import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DEPSIM_PRIVACY_KEY", "test-key-0123456789")

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
SHARED_DATA = Path(os.environ.get("DEPSIM_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared(rel: str) -> Path:
    """A file of ../shared/data, or a skip with the reason when that folder is absent."""
    p = SHARED_DATA / rel
    if not p.exists():
        pytest.skip(f"{p} is absent: the shared public datasets are not next to this checkout")
    return p


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def instance(dagster_home: Path) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.get() as inst:
        yield inst


StudyFactory = Callable[..., Path]


@pytest.fixture
def write_study(tmp_path: Path) -> StudyFactory:
    """Write a study config (YAML text, dedented) into tmp_path and return its path."""

    def _write(text: str, name: str = "depsim.yaml") -> Path:
        p = tmp_path / name
        p.write_text(textwrap.dedent(text))
        return p

    return _write


@contextlib.contextmanager
def warehouse_sql(config: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB with a view per stored table of the study's Parquet warehouse (as `depsim sql`)."""
    from depsim_assets.core.config import load_study

    with duckdb.connect(":memory:") as con:
        for statement in load_study(config).warehouse.duckdb_views():
            con.execute(statement)
        yield con


def lineage(config: Path) -> list:
    """The study's assets (bound to its release partitions) and checks, for `dg.materialize`."""
    from depsim_assets.core.config import load_study
    from depsim_assets.definitions import CHECKS, study_assets

    return [*study_assets(load_study(config)), *CHECKS]
