"""Layering the brief asks for: `core/` imports neither Dagster nor the resources, and no module name
stands twice across the layers (a reader should never wonder which `rules.py` is meant)."""

import subprocess
import sys
from collections import Counter

from tests.conftest import REPO

PACKAGES = ("depsim", "depsim_assets", "depsim_resources")


def test_core_imports_neither_dagster_nor_resources() -> None:
    script = (
        "import importlib, pkgutil, sys\n"
        "import depsim_assets.core as core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'depsim_assets.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('dagster', 'depsim_resources'))\n"
        "print(' '.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"core pulls in: {out.stdout.strip()[:300]}"


def test_no_module_name_twice_across_layers() -> None:
    names = Counter()
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*"):
            if path.suffix == ".py" and path.name != "__init__.py":
                names[path.stem] += 1
            elif path.is_dir() and any(path.glob("*.py")) and path != REPO / pkg:
                names[path.name] += 1
    assert [n for n, c in names.items() if c > 1] == []
