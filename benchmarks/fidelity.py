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


def public_kinds() -> dict[str, frozenset[str]]:
    """The words and phrases the goal counts, from depsim's own lists: groups (demonyms, religions, ethnic and political
    groups), countries and US states, public figures and organisations; cities and regions apart. Every one counts, the
    ones the filter keeps as possible names (Jordan, Christian, Israel) included."""
    figures = lexicon.lines("public_figures.txt") | lexicon.lines("organisations.txt")
    return {"group, country or public figure": lexicon.load("groups.txt") | lexicon.load("countries.txt") | figures,
            "city or region": lexicon.load("cities.txt") | lexicon.load("regions.txt")}


def public_replacements(counts: Counter[str], terms: frozenset[str]) -> Counter[str]:
    """The replaced values that are, or contain a word that is, one of `terms`."""
    def hits(value: str) -> bool:
        words = [lexicon.strip_token(t) for t in value.split()]
        return " ".join(words) in terms or any(w in terms or w.removesuffix("s") in terms for w in words)
    return Counter({v: n for v, n in counts.items() if hits(v)})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    texts = messages(SOURCE)
    with_gazetteer = replaced(texts)
    saved = lexicon.public_terms, lexicon.small_places
    lexicon.public_terms = lexicon.small_places = lambda: frozenset()  # type: ignore[assignment]
    names.clear_caches()
    without = replaced(texts)
    lexicon.public_terms, lexicon.small_places = saved  # type: ignore[assignment]
    names.clear_caches()
    per_10k = 10_000 / len(texts)
    print(f"{len(texts):,} messages")
    for label, counts in (("without gazetteers", without), ("with gazetteers", with_gazetteer)):
        print(f"\n{label}: {sum(counts.values()):,} name replacements")
        print("  most replaced: " + ", ".join(f"{v} ({n})" for v, n in counts.most_common(args.top)))
        for kind, terms in public_kinds().items():
            public = public_replacements(counts, terms)
            shown = public.most_common() if label == "with gazetteers" else public.most_common(args.top)
            print(f"  {kind}: {sum(public.values()):,} ({sum(public.values()) * per_10k:.1f} per 10,000 messages): "
                  + ", ".join(f"{v} ({n})" for v, n in shown))


if __name__ == "__main__":
    main()
