"""Privacy filter benchmark: throughput, a Presidio comparison, recall per entity, look-alike survival.

Usage: python benchmarks/privacy.py [--messages 1000000] [--presidio-messages 20000]
Needs the `bench` extra for the Presidio comparison (pip install -e '.[bench]'); without it that part
is skipped with a note. Traffic comes from ../shared/data's hh-rlhf test split when present, else
from the shipped demo sample; 10% of messages get one planted identifier with a fresh random value.
"""

import argparse
import gzip
import os
import random
import resource
import string
import subprocess
import sys
import time
from pathlib import Path

import orjson
import polars as pl

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from presidio_recall import DATASET, evaluate, fidelity, summarize  # noqa: E402

from depsim_assets.core.formats import parse_hh_transcript  # noqa: E402
from depsim_assets.core.privacy.scrub import Scrubber  # noqa: E402

SHARED_HH = REPO.parent / "shared/data/traffic/hh-rlhf-harmless-base/test.jsonl.gz"
DEMO_HH = REPO / "data/demo/hh_rlhf/harmless_base_test_sample.jsonl.gz"


def _luhn(prefix: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(prefix + "0")):
        v = int(ch) * (2 if i % 2 else 1)
        total += v - 9 if v > 9 else v
    return prefix + str((10 - total % 10) % 10)


def planted(rng: random.Random) -> str:
    first = rng.choice(["Olivia", "Liam", "Priya", "Mateo", "Hannah", "Kwame", "Sofia", "Noah"])
    last = rng.choice(["Whitfield", "Okafor", "Lindqvist", "Moreau", "Castellanos", "Nakamura"])
    digits = lambda n: "".join(rng.choice(string.digits) for _ in range(n))  # noqa: E731
    return rng.choice([
        f"you can email me at {first.lower()}.{last.lower()}{digits(2)}@gmail.com",
        f"my number is +1 ({rng.randint(201, 989)}) {rng.randint(200, 999)}-{digits(4)}",
        f"my card is {_luhn('4' + digits(14))}",
        f"SSN {rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
        f"server at {rng.randint(11, 99)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        f"the key is AKIA{''.join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16))}",
        f"I'm {first} {last}",
    ])


def _tag(i: int) -> str:
    """A lowercase tag unique to message i (letters only: it triggers no rule), so every message is distinct."""
    out = ""
    while True:
        i, r = divmod(i, 26)
        out += string.ascii_lowercase[r]
        if not i:
            return out


def build_messages(n: int, seed: int = 0) -> list[str]:
    src = SHARED_HH if SHARED_HH.exists() else DEMO_HH
    base: list[str] = []
    with gzip.open(src, "rb") as fh:
        for line in fh:
            rec = orjson.loads(line)
            for side in ("chosen", "rejected"):
                base += [m["content"] for m in parse_hh_transcript(rec[side], 10**9)]
    rng = random.Random(seed)
    out = []
    for i in range(n):
        text = base[i % len(base)]
        text = f"{text} {planted(rng)}" if rng.random() < 0.1 else text
        out.append(f"{text} ({_tag(i)})")
    print(f"traffic: {src.name}, {len(base):,} real messages replicated to {n:,} unique ones (a distinct lowercase tag each; "
          "10% with a planted identifier)")
    return out


def bench_depsim(messages: list[str], threads: bool = True) -> float:
    """Messages/s; `threads=False` keeps the scrubber to one thread (it otherwise slices large inputs per core)."""
    from depsim_assets.core.privacy import scrub as scrub_module

    texts = pl.Series("content", messages)
    scrubber = Scrubber(key=b"benchmark-key")
    scrubber.scrub(texts.head(2000))  # warm caches (name lexicon load)
    saved = scrub_module.PARALLEL_SLICE
    scrub_module.PARALLEL_SLICE = saved if threads else 10**12
    try:
        t0 = time.perf_counter()
        scrubber.scrub(texts)
        return len(messages) / (time.perf_counter() - t0)
    finally:
        scrub_module.PARALLEL_SLICE = saved


def bench_presidio(messages: list[str]) -> float | None:
    try:
        import tldextract

        # Presidio's e-mail recognizer uses tldextract, which would try to download the public suffix
        # list; use the snapshot bundled with the package instead (no network).
        tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=())
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine
    except ImportError:
        print("presidio: not installed (pip install -e '.[bench]'); comparison skipped")
        return None

    class NoOpNlpEngine(NlpEngine):
        """Pattern recognizers only: no spaCy model is loaded (offline)."""

        def load(self) -> None: ...
        def is_loaded(self) -> bool: return True
        def process_text(self, text, language):  # noqa: ANN001
            return NlpArtifacts(entities=[], tokens=[], tokens_indices=[], lemmas=[], nlp_engine=self, language=language)
        def process_batch(self, texts, language, **kw):  # noqa: ANN001
            for t in texts:
                yield t, self.process_text(t, language)
        def is_stopword(self, word, language): return False  # noqa: ANN001
        def is_punct(self, word, language): return False  # noqa: ANN001
        def get_supported_entities(self): return []
        def get_supported_languages(self): return ["en"]

    registry = RecognizerRegistry()
    registry.load_predefined_recognizers()
    engine = AnalyzerEngine(registry=registry, nlp_engine=NoOpNlpEngine(), supported_languages=["en"])
    t0 = time.perf_counter()
    for m in messages:
        engine.analyze(text=m, language="en")
    return len(messages) / (time.perf_counter() - t0)


def lookalike_survival() -> tuple[int, int]:
    items = [x for x in (REPO / "tests/data/lookalikes.txt").read_text().splitlines() if x and not x.startswith("#")]
    texts = [f"See {x} for details." for x in items]
    out, _ = Scrubber(key=b"benchmark-key").scrub(pl.Series(texts))
    return sum(a == b for a, b in zip(texts, out.to_list())), len(items)


def fidelity_corpus() -> pl.DataFrame:
    """Per category of tests/data/fidelity_corpus.tsv (public entities and look-alike numbers in plain requests,
    committed before the filter changes it measures): items, and the share left intact by the scrubber."""
    corpus = pl.read_csv(REPO / "tests/data/fidelity_corpus.tsv", separator="\t", quote_char=None)
    out, _ = Scrubber(key=b"benchmark-key").scrub(corpus["text"])
    corpus = corpus.with_columns(intact=out.str.contains(corpus["item"], literal=True))
    per = corpus.group_by("category").agg(items=pl.len(), intact=pl.col("intact").mean()).sort("category")
    return pl.concat([per, pl.DataFrame({"category": ["all"], "items": [len(corpus)], "intact": [corpus["intact"].mean()]},
                                        schema=per.schema)])


def one_thread(n: int) -> None:
    """Throughput in a child process whose polars pool has one thread: slicing aside, polars runs a frame's
    expressions on its own pool, so a figure taken in this process would not be single-threaded."""
    env = {**os.environ, "POLARS_MAX_THREADS": "1"}
    subprocess.run([sys.executable, __file__, "--one-thread-child", "--messages", str(n)], env=env, check=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--presidio-messages", type=int, default=20_000)
    ap.add_argument("--one-thread-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one_thread_child:
        rate = bench_depsim(build_messages(args.messages), threads=False)
        print(f"depsim filter, one thread (POLARS_MAX_THREADS={pl.thread_pool_size()}): {rate:,.0f} messages/s on {args.messages:,} messages")
        return
    one_thread(args.messages)
    messages = build_messages(args.messages)
    rate = bench_depsim(messages)
    print(f"depsim filter, {os.cpu_count()} threads: {rate:,.0f} messages/s (one process, polars pool {pl.thread_pool_size()}; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")
    p_rate = bench_presidio(messages[: args.presidio_messages])
    if p_rate:
        print(f"presidio (pattern recognizers, no-op NLP engine, one thread): {p_rate:,.0f} messages/s on {args.presidio_messages:,} messages")
    if DATASET.exists():
        with pl.Config(tbl_rows=40, tbl_cols=10):
            print("recall on presidio-research synth_dataset_v2 (even template_id = dev half, odd = held-out, reported only):")
            spans = evaluate()
            print(summarize(spans))
            print("places (GPE) and groups (NRP) left intact there:")
            print(fidelity(spans))
    else:
        print(f"recall: {DATASET} absent, skipped")
    kept, total = lookalike_survival()
    print(f"look-alikes intact: {kept}/{total} = {kept / total:.3f}")
    print("fidelity corpus (tests/data/fidelity_corpus.tsv, share of items left intact):")
    print(fidelity_corpus())


if __name__ == "__main__":
    main()
