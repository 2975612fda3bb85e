"""The demo studies, one code location each (see workspace.yaml). Your own study is served by the `depsim`
location (`depsim_assets.definitions`, the study named by $DEPSIM_CONFIG)."""

from pathlib import Path

import dagster as dg

from depsim_assets.definitions import build_definitions

REPO = Path(__file__).resolve().parent.parent


@dg.definitions
def xstest() -> dg.Definitions:
    return build_definitions(REPO / "studies" / "xstest.yaml")


@dg.definitions
def marshmallow_agentic() -> dg.Definitions:
    return build_definitions(REPO / "studies" / "marshmallow_agentic.yaml")


@dg.definitions
def calculator_constructed() -> dg.Definitions:
    return build_definitions(REPO / "studies" / "calculator_constructed.yaml")
