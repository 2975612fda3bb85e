"""How items become vectors: embeddings from an endpoint when configured, else TF-IDF reduced by LSA
(scikit-learn), and the cluster names' terms (TF-IDF either way, so a name is always words people read)."""

from __future__ import annotations

import numpy as np
import orjson
import polars as pl
from scipy import sparse
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

# Words of three letters or more: digits never become a name term (an order number is not a behaviour).
TOKEN_PATTERN = r"(?u)\b[^\W\d_]{3,}\b"


def _calls(raw: str | None) -> str:
    """Tool calls as words: `web_search 17*23` (name and arguments), so a behaviour with tools clusters by them."""
    if not raw:
        return ""
    try:
        calls = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ""
    return " ".join(f"{(c.get('function') or {}).get('name', '')} {(c.get('function') or {}).get('arguments', '')}"
                    for c in calls if isinstance(c, dict))


def item_text(items: pl.DataFrame) -> pl.Series:
    """What is represented: the completion, its tool calls and the auditor's description when there is one."""
    calls = items["tool_calls"].map_elements(_calls, return_dtype=pl.String) if len(items) else pl.Series([], dtype=pl.String)
    description = items["description"] if "description" in items.columns else pl.Series([None] * len(items), dtype=pl.String)
    return pl.select(pl.concat_str([items["response_text"].fill_null(""), calls.fill_null(""), description.fill_null("")],
                                   separator=" ")).to_series().alias("text")


def tfidf(texts: pl.Series) -> tuple[sparse.csr_matrix, np.ndarray]:
    """(rows × terms TF-IDF matrix, terms). Terms in fewer than two items are dropped: they cannot name a group."""
    vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english", token_pattern=TOKEN_PATTERN,
                                 min_df=2 if len(texts) > 2 else 1, max_features=20_000, dtype=np.float32)
    try:
        matrix = vectorizer.fit_transform(texts.fill_null("").to_list())
    except ValueError:  # no term at all (every text empty or stop words)
        return sparse.csr_matrix((len(texts), 0), dtype=np.float32), np.array([], dtype=object)
    return matrix.tocsr(), vectorizer.get_feature_names_out()


def lsa(matrix: sparse.csr_matrix, dims: int, seed: int) -> np.ndarray:
    """Unit-length LSA vectors (truncated SVD of TF-IDF): synonyms that co-occur land near each other."""
    rows, terms = matrix.shape
    k = min(dims, terms - 1, rows - 1)
    if k < 2:
        return normalize(matrix.toarray())
    return normalize(TruncatedSVD(n_components=k, random_state=seed).fit_transform(matrix))


def unit(vectors: list[list[float]]) -> np.ndarray:
    return normalize(np.asarray(vectors, dtype=np.float32))
