"""The staged-rollout plan of a study (`staged_rollout:` in the config): stages, gates and the playbook.

A release reaches users in stages (a small share first, wider as monitoring builds confidence). Before the
first stage its forecast of record must clear the pre-release gates; at every batch of observed traffic
the stage gates are tested with always-valid tests (`core/sequential.py`); a failure rolls the release
back and opens an incident whose recommended correction comes from the playbook.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from depsim_assets.core.config_base import Strict

Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")
# The deployment-correction toolkit, least to most disruptive.
Correction = Literal["restrict_use_cases", "restrict_capabilities", "restrict_access_frequency", "restrict_users",
                     "rollback", "shutdown"]


class StageConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    share: float = Field(gt=0, le=1, description="share of traffic (or of the audience) the release serves in this stage")
    audience: str = Field("", description="who is in the stage (e.g. internal users, trusted testers)")
    min_batches: int = Field(1, ge=1, description="minimum duration: observation batches (time windows) spent in the stage")
    min_messages: int = Field(0, ge=0, description="minimum observed messages in the stage before it may advance")


class GateConfig(Strict):
    """Per category. Pre-release gates read the forecast of record; stage gates the observed rates."""

    forecast_max_per_100k: float | None = Field(None, gt=0, description="pre-release: the prediction interval's upper bound must be below")
    forecast_max_fold: float | None = Field(None, gt=0, description="pre-release: the forecast ratio to the incumbent must be below")
    observed_max_per_100k: float | None = Field(None, gt=0, description="stage: the observed rate must be shown below this")
    observed_max_fold: float | None = Field(None, gt=0, description="stage: the observed rate must be shown below this fold of the incumbent's")
    within_forecast_band: bool = Field(True, description="stage: roll back when the observed rate is shown above the forecast's prediction interval")

    def stage_tests(self) -> list[str]:
        tests = ["forecast_band"] * self.within_forecast_band
        return tests + ["observed_max"] * (self.observed_max_per_100k is not None) + ["observed_fold"] * (self.observed_max_fold is not None)


class PlaybookEntry(Strict):
    action: Correction
    severity: Severity = Field(description="the incident severity this correction answers (the least disruptive adequate one is chosen)")
    description: str = ""


DEFAULT_PLAYBOOK = (
    PlaybookEntry(action="restrict_use_cases", severity="low", description="block the affected use case in the product"),
    PlaybookEntry(action="restrict_users", severity="medium", description="hold the release at its current audience"),
    PlaybookEntry(action="rollback", severity="high", description="serve the incumbent again"),
    PlaybookEntry(action="shutdown", severity="critical", description="take the model offline"),
)


class BatchesConfig(Strict):
    """Where post-release observations land: one file per time window (`<window>.csv` or `.parquet`), windows
    in name order (ISO dates sort right). A file holds counts (`category`, `flagged`, `n`), labelled
    messages (`category`, `flagged`), or message ids (`prefix_id`) labelled by `grader`; a `release` column
    restricts rows to a release."""

    path: str = Field(description="the directory the sensor watches, relative to the config file")
    grader: str | None = Field(None, description="grader whose labels grade `prefix_id` batches (default: post_release.observed.grader)")
    replay_observed: int | None = Field(None, ge=1, description="offline: write the study's observed prefixes into this many ordered windows")


class StagedRolloutConfig(Strict):
    alpha: float = Field(0.05, gt=0, lt=0.5, description="per category gate, split across its stage tests")
    stages: list[StageConfig] = Field(min_length=1)
    gates: dict[str, GateConfig] = Field({}, description="category -> its gates")
    playbook: list[PlaybookEntry] = Field(list(DEFAULT_PLAYBOOK), min_length=1)
    batches: BatchesConfig

    @model_validator(mode="after")
    def _possible(self) -> StagedRolloutConfig:
        problems = []
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            problems.append(f"staged_rollout.stages: names must be unique, got {names}")
        shares = [s.share for s in self.stages]
        if any(b <= a for a, b in zip(shares, shares[1:], strict=False)):
            problems.append(f"staged_rollout.stages: shares must increase stage after stage, got {shares}")
        ranks = [SEVERITIES.index(p.severity) for p in self.playbook]
        if any(b < a for a, b in zip(ranks, ranks[1:], strict=False)):
            problems.append("staged_rollout.playbook: entries go from least to most disruptive, so their severities must not "
                            f"decrease, got {[p.severity for p in self.playbook]}")
        for category, gate in self.gates.items():
            if gate == GateConfig(within_forecast_band=False):
                problems.append(f"staged_rollout.gates.{category}: no gate set (every threshold empty and within_forecast_band false)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def correction(self, severity: str) -> PlaybookEntry:
        """The least disruptive correction adequate to the severity (the most disruptive one if none is)."""
        rank = SEVERITIES.index(severity)
        return next((p for p in self.playbook if SEVERITIES.index(p.severity) >= rank), self.playbook[-1])
