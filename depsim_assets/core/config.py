"""The study config: one YAML file per study, validated by pydantic.

A study is the unit of work: its sources, privacy settings, releases, graders and gates, and the
folder holding its warehouse. Unknown keys are errors so that a typo never silently drops a setting.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from depsim_assets.core.awareness_config import AwarenessConfig, RealismConfig
from depsim_assets.core.discovery_config import DiscoveryConfig
from depsim_assets.core.config_base import Strict
from depsim_assets.core.forecast_config import ForecastConfig, PostReleaseConfig
from depsim_assets.core.rollout_plan import StagedRolloutConfig
from depsim_assets.core.storage import Warehouse

IdType = Literal["typed", "string"]
TRAJECTORY_FORMATS = ("swe_agent", "openai_tools")
DEFAULT_CONFIG = "depsim.yaml"


class SourceConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["traffic", "eval_set", "trajectory"] = Field("traffic", description="`trajectory`: agent runs with tool calls (see `agentic`)")
    paths: list[str] = Field(min_length=1, description="files or globs, relative to the config file")
    format: Literal["auto", "openai_chat", "hh_rlhf", "sharegpt", "lmsys", "eval_csv", "eval_jsonl", "swe_agent", "openai_tools"] = "auto"
    consent: Literal["field", "public"] = Field(
        "field",
        description="`public`: a published dataset, every record may be used; "
        "`field`: each record's consent field must allow model-improvement use",
    )
    consent_field: str = "consent"
    consent_values: list[str] = ["model_improvement", "true", "yes", "1", "all"]
    id_column: str = "id"
    id_type: IdType = Field("typed", description="`typed`: ids keep their JSON type (7 and \"7\" differ); `string`: every id is text")
    prompt_column: str = "prompt"
    attribute_columns: list[str] | None = Field(None, description="eval sets: extra columns kept (default: all)")

    @model_validator(mode="after")
    def _format_fits_kind(self) -> SourceConfig:
        agentic = self.format in TRAJECTORY_FORMATS
        if self.kind == "trajectory" and self.format not in ("auto", *TRAJECTORY_FORMATS):
            raise ValueError(f"source {self.name}: kind 'trajectory' reads {TRAJECTORY_FORMATS} (or auto), not {self.format!r}")
        if agentic and self.kind != "trajectory":
            raise ValueError(f"source {self.name}: format {self.format!r} is a trajectory format; set `kind: trajectory`")
        return self


def traffic_sources(sources: list[SourceConfig]) -> list[SourceConfig]:
    """The sources the conversation pipeline reads (trajectories have their own stage)."""
    return [s for s in sources if s.kind != "trajectory"]


class RepositoryConfig(Strict):
    name: str = Field(description="owner/name, as the trajectories name it (SWE-bench: `marshmallow-code/marshmallow`)")
    base_commit: str = Field(pattern=r"^[0-9a-f]{7,40}$")
    snapshot: str | None = Field(None, description="archive (.tar/.tar.gz) of the repository at base_commit, relative to the config")


class ToolModelConfig(Strict):
    """The `llm` layer of the tool simulator: a model that answers what the snapshot cannot (running code, tests)."""

    model: str
    base_url: str
    api_key_env: str | None = Field(None, description="name of the env var holding the key (read through dagster.EnvVar)")
    max_tokens: int = Field(512, gt=0, description="bound on one simulated tool output")


class AgenticConfig(Strict):
    cut: Literal["final", "every", "sample"] = Field("final", description="which assistant steps become prefixes")
    max_steps: int = Field(10, gt=0, le=200, description="rollouts: candidate turns after the prefix before `step_limit`")
    tool_model: ToolModelConfig | None = Field(None, description="without it, a call no deterministic layer answers stops the rollout")
    steps_per_trajectory: int = Field(3, gt=0, description="`sample`: steps drawn per trajectory")
    seed: int = 0
    repositories: list[RepositoryConfig] = Field([], description="base commits for files that do not record them, and snapshots")


class IngestConfig(Strict):
    max_message_chars: int = Field(200_000, gt=0)
    batch_lines: int = Field(50_000, gt=0)


class CanaryConfig(Strict):
    enabled: bool = True
    count: int = Field(3, ge=0)


class PrivacyConfig(Strict):
    # The HMAC key for surrogates always comes from the DEPSIM_PRIVACY_KEY env var (dagster.EnvVar).
    replacement: Literal["surrogate", "placeholder"] = "surrogate"
    canaries: CanaryConfig = CanaryConfig()
    disabled_rules: list[str] = Field([], description="for tests and audits only: the gate must then fail")


class SampleTarget(Strict):
    """What the sample must achieve: `detect` a rate at least once, estimate it to a `precision`, or
    `compare` a release with its incumbent (power to see a `fold` change after BH across categories)."""

    kind: Literal["detect", "precision", "compare"]
    rate: float = Field(gt=0, lt=1, description="the behaviour's rate (compare: the incumbent's)")
    sensitivity: float = Field(1.0, gt=0, le=1)
    probability: float = Field(0.95, gt=0, lt=1, description="detect: chance of at least one flag; precision: assurance that "
                               "the realised interval meets the fold; compare: power")
    fold: float = Field(1.5, gt=1, description="precision: interval no wider than x/÷ fold; compare: the change to see")
    overlap: float = Field(0.5, ge=0, le=1, description="compare: share of the incumbent's flagged prefixes the candidate also flags")
    categories: int = Field(20, ge=1, description="compare: categories tested together (Benjamini-Hochberg)")
    level: float = Field(0.1, gt=0, lt=1, description="compare: BH level for calling a direction")
    prefixes_per_conversation: float = Field(1.0, ge=1, description="design effect of clustering: 1 + (m - 1) icc")
    icc: float = Field(0.0, ge=0, le=1, description="intra-conversation correlation of flags")
    weight_cv: float = Field(0.0, ge=0, description="coefficient of variation of sampling weights (Kish: 1 + cv^2)")


class SamplingConfig(Strict):
    method: Literal["all", "uniform", "stratified"] = "all"
    size: int | None = Field(None, gt=0)
    target: SampleTarget | None = None
    strata: list[Literal["language", "turn_count", "length_bucket", "source"]] = ["source"]
    seed: int = 0


class PrefixConfig(Strict):
    mode: Literal["final_turn", "every_assistant_turn"] = "final_turn"
    sampling: SamplingConfig = SamplingConfig()


class SamplingParams(Strict):
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, gt=0)
    seed: int | None = None
    extra_body: dict[str, Any] = {}


class RecordedSource(Strict):
    """Completions produced elsewhere, joined to prefixes by id (never by text)."""

    path: str | None = Field(None, description="JSONL/CSV/Parquet file with an id and a completion column")
    reference_variant: str | None = Field(
        None, description="instead of a file: the prefix's own recorded response of this variant (hh-rlhf: chosen/rejected)"
    )
    id_column: str = "id"
    id_type: IdType = "typed"
    completion_column: str = "completion"
    tool_calls_column: str | None = Field(None, description="optional: the completion's tool calls, OpenAI's JSON list of calls")
    id_prefix: str = Field("", description="stripped from ids before joining (XSTest: `v2-`)")

    @model_validator(mode="after")
    def _one_source(self) -> RecordedSource:
        if (self.path is None) == (self.reference_variant is None):
            raise ValueError("recorded: give exactly one of `path` or `reference_variant`")
        return self


class Price(Strict):
    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


class DispatchConfig(Strict):
    concurrency: int = Field(32, gt=0, le=4096)
    requests_per_minute: float | None = Field(None, gt=0)
    tokens_per_minute: float | None = Field(None, gt=0)
    timeout_s: float = Field(60.0, gt=0)
    max_attempts: int = Field(4, ge=1)
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    samples_per_prefix: int = Field(1, ge=1)
    shards: int = Field(1, ge=1, le=256, description="split each release's prefixes into this many partitions (release × "
                        "shard) so dispatch and grading run as separate runs on many workers; 1 keeps one partition per release")
    progress_every_s: float = Field(5.0, gt=0)
    prices: dict[str, Price] = Field({}, description="per model, USD per million tokens")


class ReleaseConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    backend: Literal["openai", "recorded"]
    model: str
    base_url: str | None = None
    api_key_env: str | None = Field(None, description="name of the env var holding the key, never the key")
    system_prompt: str | None = None
    sampling: SamplingParams = SamplingParams()
    incumbent: str | None = None
    release_date: dt.date | None = None
    recorded: RecordedSource | None = None
    budget_usd: float | None = Field(None, ge=0)
    context_tokens: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _backend_fields(self) -> ReleaseConfig:
        if self.backend == "recorded" and self.recorded is None:
            raise ValueError("backend 'recorded' needs a `recorded:` block (path, id_column, completion_column)")
        if self.backend == "openai" and not self.base_url:
            raise ValueError("backend 'openai' needs `base_url`")
        return self


class ReviewConfig(Strict):
    """The human review queue: a flag-stratified sample per category, exported for people to label."""

    per_stratum: int = Field(50, gt=0, description="completions drawn from each of the flagged and not-flagged strata")
    seed: int = 0
    categories: list[str] | None = Field(None, description="default: every category a non-human grader labels")
    export_dir: str = Field("review", description="relative to warehouse_dir: <release>.csv and .jsonl land here")


class GraderConfig(Strict):
    """A grader of the study. `categories` defaults to every taxonomy category that lists this kind."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["rules", "recorded", "llm_judge", "review"]
    categories: list[str] | None = None
    human: bool = Field(False, description="labels made by people: the reference that calibration compares graders to")
    # recorded: a file per release (`{release}` in the path) or one file for all
    path: str | None = None
    id_column: str = "id"
    id_type: IdType = "typed"
    value_column: str = "label"
    id_prefix: str = ""
    mapping: dict[str, bool] = Field({}, description="recorded value -> signal value (e.g. 2_full_refusal: true)")
    # llm_judge
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    max_attempts: int = Field(3, ge=1, description="first answer plus re-samples of malformed output")
    judge_mode: Literal["multi", "single"] = Field("multi", description="multi: one call per completion for every category")
    single_categories: list[str] = Field([], description="categories judged in a call of their own even in multi mode")
    output: Literal["auto", "json_schema", "json_object", "prompt"] = Field(
        "auto", description="auto: negotiate json_schema -> json_object -> prompt-only with the endpoint")
    probe_calls: int = Field(3, ge=1, description="calls that probe an output mode before it is trusted")
    max_tokens: int | None = Field(None, gt=0, description="per judge call (default: 64 + 96 per category)")
    timeout_s: float = Field(60.0, gt=0)
    resample_temperature: float = Field(0.8, gt=0, le=2, description="malformed output is re-sampled at this temperature")

    @model_validator(mode="after")
    def _kind_fields(self) -> GraderConfig:
        if self.kind == "recorded" and (not self.path or not self.mapping):
            raise ValueError(f"grader {self.id}: kind 'recorded' needs `path` and `mapping`")
        if self.kind == "review" and not self.path:
            raise ValueError(f"grader {self.id}: kind 'review' needs `path` (the labelled review file, `{{release}}` in it)")
        if self.kind == "llm_judge" and (not self.model or not self.base_url):
            raise ValueError(f"grader {self.id}: kind 'llm_judge' needs `model` and `base_url`")
        return self


def release_chain_problems(releases: list[Any]) -> list[str]:
    """Release names unique, incumbents declared; works on raw YAML too, so a config with other errors
    still reports these (pydantic skips model validators when a field fails)."""
    rows = [r for r in releases if isinstance(r, dict)]
    names = [r.get("name") for r in rows]
    problems = []
    dupes = sorted({str(n) for n in names if names.count(n) > 1})
    if dupes:
        problems.append(f"releases: names must be unique, repeated: {dupes}")
    for r in rows:
        inc = r.get("incumbent")
        if inc is not None and inc not in names:
            problems.append(f"releases.{r.get('name')}.incumbent: '{inc}' is not a declared release (declared: {names})")
        elif inc is not None and inc == r.get("name"):
            problems.append(f"releases.{r.get('name')}.incumbent: a release cannot replace itself")
    return problems


class StudyConfig(Strict):
    study: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    warehouse_dir: str = Field(".depsim/warehouse", description="relative to the config file")
    sources: list[SourceConfig] = Field(min_length=1)
    ingest: IngestConfig = IngestConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    prefixes: PrefixConfig = PrefixConfig()
    releases: list[ReleaseConfig] = []
    dispatch: DispatchConfig = DispatchConfig()
    graders: list[GraderConfig] = []
    taxonomy: dict[str, dict[str, Any]] = Field({}, description="per-category overrides of the shipped taxonomy")
    forecasting: ForecastConfig = ForecastConfig()
    review: ReviewConfig = ReviewConfig()
    post_release: PostReleaseConfig = PostReleaseConfig()
    agentic: AgenticConfig = AgenticConfig()
    staged_rollout: StagedRolloutConfig | None = None
    awareness: AwarenessConfig | None = None
    realism: RealismConfig | None = None
    discovery: DiscoveryConfig | None = None

    @field_validator("sources")
    @classmethod
    def _unique_sources(cls, v: list[SourceConfig]) -> list[SourceConfig]:
        names = [s.name for s in v]
        if len(names) != len(set(names)):
            raise ValueError(f"source names must be unique, got {names}")
        return v

    @model_validator(mode="after")
    def _release_chain(self) -> StudyConfig:
        problems = release_chain_problems([r.model_dump() for r in self.releases])
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _shards(self) -> StudyConfig:
        if self.dispatch.shards > 1 and not has_conversations(self):
            raise ValueError("dispatch.shards: shards split chat prefixes; agentic rollouts are not sharded (set 1)")
        return self

    @model_validator(mode="after")
    def _rollout_refs(self) -> StudyConfig:
        plan = self.staged_rollout
        if plan is None:
            if self.post_release.observed is not None and self.post_release.observed.rollout_batches:
                raise ValueError("post_release.observed.rollout_batches: the study has no staged_rollout")
            return self
        from depsim_assets.core.graders.taxonomy import load_taxonomy  # the taxonomy with this study's overrides

        known = {c.id for c in load_taxonomy(self.taxonomy).categories}
        problems = ["staged_rollout: needs conversation traffic (a source that is not `kind: trajectory`)"] * (not has_conversations(self))
        problems += [f"staged_rollout.gates.{c}: not a taxonomy category" for c in plan.gates if c not in known]
        grader = plan.batches.grader or (self.post_release.observed.grader if self.post_release.observed else None)
        if grader is not None and grader not in {g.id for g in self.graders}:
            problems.append(f"staged_rollout.batches.grader: '{grader}' is not a grader of the study")
        if plan.batches.replay_observed and (self.post_release.observed is None or grader is None):
            problems.append("staged_rollout.batches.replay_observed: needs post_release.observed with a grader (the prefixes to replay)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def release(self, name: str) -> ReleaseConfig:
        for r in self.releases:
            if r.name == name:
                return r
        raise KeyError(f"release '{name}' is not declared in study '{self.study}' (declared: {[r.name for r in self.releases]})")


def has_trajectories(config: StudyConfig) -> bool:
    return any(s.kind == "trajectory" for s in config.sources)


def has_conversations(config: StudyConfig) -> bool:
    """A study with traffic or eval-set sources has the conversation pipeline (a trajectory-only study has not)."""
    return any(s.kind != "trajectory" for s in config.sources)


class Study(BaseModel):
    """A loaded config plus where it came from, so relative paths resolve against the file."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    config: StudyConfig
    path: Path

    @property
    def root(self) -> Path:
        return self.path.parent

    def resolve(self, p: str) -> Path:
        q = Path(os.path.expandvars(p)).expanduser()
        return q if q.is_absolute() else self.root / q

    @property
    def warehouse_dir(self) -> Path:
        return self.resolve(self.config.warehouse_dir)

    @property
    def warehouse(self) -> Warehouse:
        return Warehouse(self.warehouse_dir)

    @property
    def ledger_path(self) -> Path:
        return self.warehouse_dir / "_ledger" / "forecast_ledger.jsonl"

    @property
    def config_hash(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


class ConfigError(ValueError):
    """A study config that cannot be used; the message names the file and each bad field."""


def _format_errors(path: Path, err: ValidationError, raw: dict[str, Any]) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"]
        if not loc and e["type"] == "value_error":  # a whole-config rule: its message names the fields
            lines.extend(f"  - {m}" for m in msg.removeprefix("Value error, ").split("; "))
            continue
        if e["type"] == "extra_forbidden":
            msg = "unknown key (not part of the study config schema)"
        got = e.get("input")
        shown = "" if e["type"] in ("extra_forbidden", "missing") or isinstance(got, dict) else f"; got {got!r}"
        lines.append(f"  - {loc}: {msg}{shown}")
    if isinstance(raw.get("releases"), list):
        lines.extend(f"  - {m}" for m in release_chain_problems(raw["releases"]) if f"  - {m}" not in lines)
    return "\n".join([f"{path}: invalid study config ({len(lines)} problem(s))", *lines])


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    return Path(explicit or os.environ.get("DEPSIM_CONFIG") or DEFAULT_CONFIG).resolve()


def load_study(path: str | os.PathLike[str] | None = None) -> Study:
    p = config_path(path)
    if not p.exists():
        raise ConfigError(f"{p}: study config not found (set DEPSIM_CONFIG or pass --config)")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return Study(config=StudyConfig.model_validate(raw), path=p)
    except ValidationError as e:
        raise ConfigError(_format_errors(p, e, raw)) from None
