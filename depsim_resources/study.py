"""The study resource: which config file this code location serves, loaded on use."""

from __future__ import annotations

import dagster as dg

from depsim_assets.core.config import Study, load_study


class StudyResource(dg.ConfigurableResource):
    """Points at one study config (default: $DEPSIM_CONFIG or ./depsim.yaml)."""

    config_path: str = ""  # empty: resolved at load time from $DEPSIM_CONFIG, else ./depsim.yaml

    def load(self) -> Study:
        return load_study(self.config_path or None)
