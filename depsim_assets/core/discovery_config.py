"""The `discovery:` section of the study config (behaviour discovery, `core/behaviours/`)."""

from __future__ import annotations

from pydantic import Field

from depsim_assets.core.awareness_config import ClassifierConfig
from depsim_assets.core.config_base import Strict


class EmbeddingsConfig(Strict):
    """An OpenAI-compatible `/v1/embeddings` endpoint; without one, completions are represented offline (TF-IDF + LSA)."""

    model: str
    base_url: str
    api_key_env: str | None = Field(None, description="name of the env var holding the key, never the key")
    batch_size: int = Field(64, gt=0, le=2048)
    timeout_s: float = Field(60.0, gt=0)


class DiscoveryConfig(Strict):
    embeddings: EmbeddingsConfig | None = None
    auditor: ClassifierConfig | None = Field(
        None, description="an open-ended judge asked whether an unflagged completion is unusual, with a free-text description")
    auditor_sample: int = Field(200, gt=0, description="unflagged completions per release shown to the auditor")
    k_anonymity: int = Field(10, ge=2, description="a cluster is shown (name, sizes, examples) only with this many distinct conversations")
    max_items: int = Field(2000, gt=0, le=10_000, description="items clustered per run; conversations are subsampled by a seeded hash above it")
    distance_threshold: float = Field(
        0.9, gt=0, le=2, description="cut the average-linkage tree at this multiple of the median pairwise cosine distance "
        "(relative: embeddings and TF-IDF put unrelated texts at different distances); lower = more, tighter clusters")
    dims: int = Field(64, ge=2, le=512, description="LSA components of the offline representation")
    fold: float = Field(1.5, ge=1, description="a cluster 'grew' only with a rate ratio at least this large")
    examples: int = Field(3, ge=0, le=10)
    seed: int = 0
