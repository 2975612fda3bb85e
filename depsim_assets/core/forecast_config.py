"""The forecasting and post-release sections of the study config (`forecasting:`, `post_release:`)."""

from __future__ import annotations

from pydantic import Field

from depsim_assets.core.config_base import Strict


class PrefixFilter(Strict):
    """Prefixes whose attribute (an eval-set column) takes one of the listed values."""

    attribute: str
    in_: list[str] = Field(alias="in")


class ObservedConfig(Strict):
    """Where post-release rates come from: labels of a grader on a set of prefixes, or a file."""

    grader: str | None = Field(None, description="grader id whose labels are the observed truth (e.g. people)")
    prefix_filter: PrefixFilter | None = None
    path: str | None = Field(None, description="CSV/Parquet with release, category, flagged, n")
    rollout_batches: bool = Field(False, description="the sum of the staged rollout's observation batches (so a missed "
                                  "forecast there feeds the error model of later releases' prediction intervals)")


class PostReleaseConfig(Strict):
    observed: ObservedConfig | None = None
    challenging_source: str | None = Field(
        None, description="an eval-set source of curated adversarial prompts (HarmBench, AdvBench): the challenging-prompt baseline"
    )
    changed_fold: float = Field(1.5, gt=1, description="an observed change counts when it is at least this fold")
    observation_days: int = Field(28, gt=0, description="a release's observed rates are final this many days after its release date")


class ErrorModelConfig(Strict):
    """How far observed rates land from forecasts, learned from earlier releases of the study; this prior
    sets the prediction interval until there is history."""

    prior_sd: float = Field(0.6, gt=0, description="sd of log(observed/forecast) before any history (0.6: median error 1.5x)")
    prior_strength: float = Field(4.0, gt=0, description="how many scored forecasts the prior is worth")
    category_groups: dict[str, str] = Field({}, description="category -> group sharing an error model (default: one group)")


class ForecastConfig(Strict):
    primary_graders: dict[str, str] = Field({}, description="category -> grader id whose labels make its rate (default: the first non-human grader)")
    alpha: float = Field(0.05, gt=0, lt=0.5)
    direction_level: float = Field(0.1, gt=0, lt=1, description="BH-adjusted level for calling a direction vs the incumbent")
    prefix_filter: PrefixFilter | None = Field(None, description="forecast from these prefixes only (the demo's 'simulated traffic' half)")
    error_model: ErrorModelConfig = ErrorModelConfig()
