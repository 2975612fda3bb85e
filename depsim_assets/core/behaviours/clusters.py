"""Clusters of items, their names and sizes per release, and which grew versus the incumbent.

A cluster is shown only when it spans `k` distinct conversations (its name, sizes and examples alike); a name is
made of terms that occur in at least `k` of its conversations, so no word from one conversation names a group.
Growth is a paired comparison on conversations both releases completed — the same exact McNemar test and
Bonett-Price ratio interval as the category comparison — with Benjamini-Hochberg across shown clusters.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import polars as pl
from scipy import sparse
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from sklearn.metrics.pairwise import cosine_distances

from depsim_assets.core.behaviours.items import seeded_order
from depsim_assets.core.paired import paired_comparison
from depsim_assets.core.stats import benjamini_hochberg


def cut(vectors: np.ndarray, relative_threshold: float) -> np.ndarray:
    """Average-linkage clusters on cosine distance (scipy), cut at `relative_threshold` times the median pairwise
    distance: embeddings and TF-IDF put unrelated texts at different distances (often ~0.3 vs ~1), so a cut in
    absolute units would suit one representation only."""
    n = len(vectors)
    if n < 3:
        return np.zeros(n, dtype=np.int64)
    # Precomputed distances: sklearn's cosine refuses zero vectors (a text with no known term); this makes them 1.
    condensed = squareform(np.clip(cosine_distances(vectors), 0, 2), checks=False)
    scale = float(np.median(condensed)) or 1.0
    return fcluster(linkage(condensed, method="average"), t=relative_threshold * scale, criterion="distance") - 1


def assign(seeds: pl.Series, vectors: np.ndarray, relative_threshold: float) -> pl.Series:
    """Per item, its cluster: `seed:<id>` for seed matches, else `c<n>` from `cut`, numbered by size."""
    rest = np.flatnonzero(seeds.is_null().to_numpy())
    labels = cut(vectors[rest], relative_threshold) if len(rest) else np.zeros(0, dtype=np.int64)
    sizes = np.bincount(labels) if len(labels) else np.array([], dtype=np.int64)
    rank = {int(c): i for i, c in enumerate(sorted(range(len(sizes)), key=lambda c: (-sizes[c], c)))}
    out = seeds.cast(pl.String).map_elements(lambda s: f"seed:{s}", return_dtype=pl.String).to_list()
    for i, label in zip(rest, labels, strict=True):
        out[i] = f"c{rank[int(label)]}"
    return pl.Series("cluster", out, dtype=pl.String)


def name_terms(matrix: sparse.csr_matrix, terms: np.ndarray, rows: np.ndarray, conversations: list[str], k: int,
               top: int = 4) -> list[str]:
    """The cluster's highest-weighted terms among those in at least `k` of its distinct conversations."""
    if matrix.shape[1] == 0 or not len(rows):
        return []
    sub = matrix[rows]
    ids, inverse = np.unique(np.asarray(conversations), return_inverse=True)
    per_conversation = sparse.csr_matrix((np.ones(len(rows)), (inverse, np.arange(len(rows)))), shape=(len(ids), len(rows)))
    spread = np.asarray(((per_conversation @ (sub > 0).astype(np.float32)) > 0).sum(axis=0)).ravel()
    weight = np.asarray(sub.mean(axis=0)).ravel()
    eligible = np.flatnonzero(spread >= k)
    best = eligible[np.argsort(-weight[eligible], kind="stable")][:top]
    return [str(terms[i]) for i in best]


def _change(adjusted: float, ratio: float, lo: float, hi: float, incumbent: int, alpha: float, fold: float) -> str:
    if adjusted < alpha and lo > 1 and ratio >= fold:
        return "appeared" if incumbent == 0 else "grew"
    if adjusted < alpha and hi < 1 and ratio <= 1 / fold:
        return "shrank"
    return "no detectable change"


def cluster_table(items: pl.DataFrame, population: pl.Series, candidate: str, incumbent: str | None, k: int, alpha: float,
                  fold: float, name_of: Callable[[str, np.ndarray], str], examples: int, scrub: Callable[[pl.Series], pl.Series],
                  seed: int = 0) -> tuple[pl.DataFrame, int]:
    """(shown clusters, number of clusters under the floor). `items` carry release, conversation_id, cluster,
    categories, response_text; `population` is the conversations compared on."""
    items = items.with_row_index("row")
    pop = population.to_list()
    rows = []
    for cluster, members in items.group_by("cluster", maintain_order=True):
        cid = str(cluster[0])
        n_conv = members["conversation_id"].n_unique()
        if n_conv < k:
            continue
        cand = members.filter(pl.col("release") == candidate)["conversation_id"].unique()
        inc = members.filter(pl.col("release") == incumbent)["conversation_id"].unique() if incumbent else None
        row: dict[str, object] = {"cluster_id": cid, "name": name_of(cid, members["row"].to_numpy()), "conversations": n_conv,
                                  "candidate_conversations": len(cand), "incumbent_conversations": None if inc is None else len(inc)}
        if inc is not None:
            cand_set, inc_set = set(cand.to_list()), set(inc.to_list())
            result = paired_comparison(np.array([c in inc_set for c in pop]), np.array([c in cand_set for c in pop]), alpha=alpha)
            row |= {"rate_ratio": result.ratio, "ratio_lo": result.ratio_lo, "ratio_hi": result.ratio_hi, "p_value": result.p_value}
        cats = members["categories"].explode().drop_nulls().value_counts().sort(["count", "categories"], descending=[True, False]).head(3)
        row["categories"] = ", ".join(f"{c} ({n})" for c, n in cats.iter_rows())
        row["examples"] = _examples(members, candidate, examples, seed)
        rows.append(row)
    shown_ids = {r["cluster_id"] for r in rows}
    hidden = items.filter(~pl.col("cluster").is_in(list(shown_ids)))["cluster"].n_unique()
    table = pl.DataFrame(rows, schema=CLUSTER_SCHEMA) if rows else CLUSTER_SCHEMA.to_frame()
    table = table.with_columns(pl.col(c).cast(t) for c, t in CLUSTER_SCHEMA.items())
    table = _deidentified(table, scrub)
    if incumbent is not None and len(table):
        adjusted = benjamini_hochberg(table["p_value"].to_list())
        table = table.with_columns(p_adjusted_bh=pl.Series(adjusted, dtype=pl.Float64))
        table = table.with_columns(change=pl.Series([
            _change(a, r, lo, hi, i, alpha, fold) for a, r, lo, hi, i in
            zip(adjusted, table["rate_ratio"], table["ratio_lo"], table["ratio_hi"], table["incumbent_conversations"], strict=True)],
            dtype=pl.String))
    else:
        table = table.with_columns(p_adjusted_bh=pl.lit(None, pl.Float64), change=pl.lit(None, pl.String))
    # Appeared or grew first, most certain growth (highest lower bound) first; then by size.
    surfaced = pl.col("change").is_in(["appeared", "grew"]).fill_null(False)
    table = table.sort([surfaced, pl.col("ratio_lo").fill_null(-math.inf), pl.col("conversations"), pl.col("cluster_id")],
                       descending=[True, True, True, False])
    return table, hidden


def _examples(members: pl.DataFrame, candidate: str, n: int, seed: int) -> list[str]:
    """Up to `n` completions from distinct conversations, the candidate's first (raw: `_deidentified` scrubs them)."""
    if n == 0:
        return []
    pick = (members.with_columns(mine=pl.col("release") == candidate, order=seeded_order(members["conversation_id"], seed))
            .sort(["mine", "order"], descending=[True, False]).unique("conversation_id", keep="first", maintain_order=True).head(n))
    return pick["response_text"].fill_null("").to_list()


def _deidentified(table: pl.DataFrame, scrub: Callable[[pl.Series], pl.Series]) -> pl.DataFrame:
    """Names and examples of the shown clusters through the scrubber in one call each; examples are cut to excerpts
    only after scrubbing, so a cut never splits an identifier the scrubber would then not recognise."""
    if table.is_empty():
        return table
    flat = table.select(pl.int_range(pl.len()).alias("i"), "examples").explode("examples").drop_nulls("examples")
    flat = flat.with_columns(examples=scrub(flat["examples"]).str.slice(0, 240))
    back = flat.group_by("i", maintain_order=True).agg("examples")
    table = table.with_row_index("i").drop("examples").join(back, on="i", how="left")
    return table.with_columns(name=scrub(table["name"]), examples=pl.col("examples").fill_null(pl.lit([], pl.List(pl.String)))).drop("i")


CLUSTER_SCHEMA = pl.Schema({
    "cluster_id": pl.String, "name": pl.String, "conversations": pl.Int64, "candidate_conversations": pl.Int64,
    "incumbent_conversations": pl.Int64, "rate_ratio": pl.Float64, "ratio_lo": pl.Float64, "ratio_hi": pl.Float64,
    "p_value": pl.Float64, "categories": pl.String, "examples": pl.List(pl.String),
})
