"""One release's discovery run: items, representation, clusters, names and the comparison with the incumbent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from depsim_assets.core.behaviours.clusters import assign, cluster_table, name_terms
from depsim_assets.core.discovery_config import DiscoveryConfig
from depsim_assets.core.behaviours.items import bound, discovery_items, paired_conversations
from depsim_assets.core.behaviours.represent import item_text, lsa, tfidf, unit
from depsim_assets.core.behaviours.seeds import SEEDS, Seed

# texts -> (vectors, None) or (None, failure reason)
Embed = Callable[[list[str]], tuple[list[list[float]] | None, str | None]]


@dataclass(frozen=True)
class Discovery:
    clusters: pl.DataFrame
    below_floor: int  # clusters not shown: fewer than k distinct conversations
    items: int
    conversations: int
    subsampled: bool
    representation: str


def discover(completions: pl.DataFrame, labels: pl.DataFrame, candidate: str, incumbent: str | None, cfg: DiscoveryConfig,
             alpha: float, scrub: Callable[[pl.Series], pl.Series], audited: pl.DataFrame | None = None,
             embed: Embed | None = None, seeds: list[Seed] = SEEDS) -> Discovery:
    """Clusters of the candidate's (and incumbent's) flagged, seeded or unusual completions; `scrub` de-identifies
    every string that leaves (names, examples: see `cluster_table`)."""
    releases = [candidate] + ([incumbent] if incumbent else [])
    completions = completions.filter(pl.col("release").is_in(releases))
    population = paired_conversations(completions, releases)
    compared = len(population)
    items = discovery_items(completions, labels.filter(pl.col("release").is_in(releases)), audited, seeds)
    # Clusters must not depend on the order rows arrive in (a sharded release gathers its shards in any order).
    items = items.sort("release", "prefix_id", "sample_index")
    items = items.filter(pl.col("conversation_id").is_in(population.implode()))
    items, population = bound(items, population, cfg.max_items, cfg.seed)
    subsampled = len(population) < compared
    texts = item_text(items)
    matrix, terms = tfidf(texts)
    representation = f"tf-idf + lsa ({matrix.shape[1]} terms)"
    vectors: np.ndarray | None = None
    if embed is not None and len(items):
        got, failure = embed(texts.to_list())
        if got is not None:
            vectors, representation = unit(got), "embeddings"
        else:
            representation += f"; embeddings failed: {failure}"
    if vectors is None:
        vectors = lsa(matrix, cfg.dims, cfg.seed) if len(items) else np.zeros((0, 1))
    items = items.with_columns(cluster=assign(items["seed"], vectors, cfg.distance_threshold))
    seed_names = {f"seed:{s.id}": s.name for s in seeds}
    conversations = items["conversation_id"].to_list()

    def name_of(cluster: str, rows: np.ndarray) -> str:
        if cluster in seed_names:
            return seed_names[cluster]
        words = name_terms(matrix, terms, rows, [conversations[i] for i in rows], cfg.k_anonymity)
        return " / ".join(words) if words else f"{cluster} (no term shared by {cfg.k_anonymity} conversations)"

    table, hidden = cluster_table(items, population, candidate, incumbent, cfg.k_anonymity, alpha, cfg.fold, name_of,
                                  cfg.examples, scrub, cfg.seed)
    return Discovery(table, hidden, len(items), len(population), subsampled, representation)
