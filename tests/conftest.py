"""Shared fixtures: a real Dagster instance in a temp DAGSTER_HOME, study configs on disk."""

import os
import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
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
