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
    from depsim_assets.definitions import study_assets, study_checks

    study = load_study(config)
    return [*study_assets(study), *study_checks(study)]


def copy_study(shipped: str, tmp_path: Path, releases: list[str] | None = None, name: str | None = None,
               rollout: bool = False, shards: int = 1) -> Path:
    """A shipped study config copied into tmp_path: its own warehouse there, data paths made absolute. The
    staged rollout (replayed batches, 25 more runs on XSTest) is kept only when asked for."""
    import yaml

    src = REPO / shipped
    raw = yaml.safe_load(src.read_text())

    def absolute(p: str) -> str:
        return str((src.parent / p).resolve())

    raw["warehouse_dir"] = str(tmp_path / (name or raw["study"]) / "wh")
    for s in raw["sources"]:
        s["paths"] = [absolute(p) for p in s["paths"]]
    if releases is not None:
        raw["releases"] = [r for r in raw["releases"] if r["name"] in releases]
    for r in raw.get("releases", []):
        if r.get("recorded", {}).get("path"):
            r["recorded"]["path"] = absolute(r["recorded"]["path"])
    for g in raw.get("graders", []):
        if g.get("path"):
            g["path"] = absolute(g["path"])
    for repo in raw.get("agentic", {}).get("repositories", []):
        if repo.get("snapshot"):
            repo["snapshot"] = absolute(repo["snapshot"])
    if shards > 1:
        raw.setdefault("dispatch", {})["shards"] = shards
    if rollout and raw.get("staged_rollout"):
        raw["staged_rollout"]["batches"]["path"] = str(tmp_path / (name or raw["study"]) / "batches")
    else:
        raw.pop("staged_rollout", None)
    out = tmp_path / f"{name or raw['study']}.yaml"
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out
