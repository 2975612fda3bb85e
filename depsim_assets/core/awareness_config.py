"""The `awareness:` section of the study config (evaluation awareness, `core/awareness.py`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from depsim_assets.core.config_base import Strict


class ClassifierConfig(Strict):
    model: str
    base_url: str
    api_key_env: str | None = Field(None, description="name of the env var holding the key, never the key")
    max_tokens: int = Field(64, gt=0)
    timeout_s: float = Field(60.0, gt=0)
    output: Literal["auto", "json_schema", "json_object"] = Field(
        "auto", description="the answer's strict schema as `json_schema` (OpenAI and vLLM constrain decoding to it), or as "
        "`json_object` with the schema riding along (llama-cpp-python's server rejects json_schema and turns this into a "
        "grammar); auto: json_schema, json_object if one probe request is rejected")


class AwarenessConfig(Strict):
    classifier: ClassifierConfig | None = Field(None, description="default: each release's own model (live releases only)")
    per_kind: int = Field(200, gt=0, description="contexts sampled per kind")
    seed: int = 0
    gap: float = Field(0.02, gt=0, lt=1, description="the gap between kinds the sample size is computed for")
    power: float = Field(0.8, gt=0, lt=1)


class RealismConfig(Strict):
    """The discriminator: shown one context with its real and its simulated continuation, which is real?"""

    discriminator: ClassifierConfig = Field(description="the judge model that discriminates")
    pairs: int = Field(200, gt=0, description="(real, simulated) pairs per release")
    seed: int = 0
