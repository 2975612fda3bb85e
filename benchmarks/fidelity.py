"""What the name rules take from real traffic: the most-replaced person-name candidates on the hh-rlhf
harmless-base test split, with and without the group/place gazetteers.

Usage: python benchmarks/fidelity.py [--top 25]
Counts come from depsim's own name rules (the candidate patterns and span resolvers the scrubber uses),
run on every human and assistant turn; values are printed for audit here and never stored.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from collections import Counter
from pathlib import Path

import orjson
import polars as pl

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from depsim_assets.core.formats import parse_hh_transcript  # noqa: E402
from depsim_assets.core.privacy import lexicon, names  # noqa: E402
from depsim_assets.core.privacy.scrub import NAME_RULES  # noqa: E402

SOURCE = REPO.parent / "shared/data/traffic/hh-rlhf-harmless-base/test.jsonl.gz"


def messages(path: Path) -> pl.Series:
    texts: list[str] = []
    with gzip.open(path, "rb") as fh:
        for line in fh:
            rec = orjson.loads(line)
            texts += [m["content"] or "" for m in parse_hh_transcript(rec["chosen"], 10**9)]
    return pl.Series("text", texts)


def replaced(texts: pl.Series) -> Counter[str]:
    counts: Counter[str] = Counter()
    for rule in NAME_RULES:
        found = texts.str.extract_all(rule.pattern).explode().drop_nulls()
        for value, n in found.value_counts().iter_rows():
            span = rule.resolve(value)
            if span:
                counts[value[span[0] : span[1]]] += n
    return counts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    texts = messages(SOURCE)
    with_gazetteer = replaced(texts)
    # Every group and place word of the gazetteers, the ones kept as possible names included: the measure
    # does not exclude what the filter chose to keep.
    terms = lexicon.load("groups.txt") | lexicon.load("countries.txt") | lexicon.load("cities.txt") | lexicon.load("regions.txt")
    saved = lexicon.public_terms, lexicon.small_places
    lexicon.public_terms = lexicon.small_places = lambda: frozenset()  # type: ignore[assignment]
    names.clear_caches()
    without = replaced(texts)
    lexicon.public_terms, lexicon.small_places = saved  # type: ignore[assignment]
    names.clear_caches()
    per_10k = 10_000 / len(texts)
    print(f"{len(texts):,} messages")
    for label, counts in (("without gazetteers", without), ("with gazetteers", with_gazetteer)):
        public = sum(n for v, n in counts.items() if any(lexicon.strip_token(t) in terms for t in v.split()))
        print(f"\n{label}: {sum(counts.values()):,} name replacements; {public:,} contain a group or place word "
              f"({public * per_10k:.1f} per 10,000 messages)")
        print("  most replaced: " + ", ".join(f"{v} ({n})" for v, n in counts.most_common(args.top)))


if __name__ == "__main__":
    main()
