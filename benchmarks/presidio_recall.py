"""Recall of the privacy filter per entity type on presidio-research's synthetic PII sentences.

Split by template_id: even ids are the half we may look at while developing ("dev"), odd ids the half
we only report ("held-out"). A labelled span counts as caught when none of its word tokens (2+
characters) survives in the scrubbed sentence. Imported by benchmarks/privacy.py.
"""

import json
import re
import sys
from pathlib import Path

import polars as pl
from statsmodels.stats.proportion import proportion_confint

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from depsim_assets.core.privacy.scrub import Scrubber  # noqa: E402

ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS", "PERSON", "STREET_ADDRESS")
# Spans that must survive: places and nationality/religious/political groups (fidelity on text the filter was not built on).
PUBLIC = ("GPE", "NRP")
DATASET = REPO.parent / "shared/data/privacy/presidio-research/synth_dataset_v2.json"
_TOKEN = re.compile(r"\w{2,}")


# Tokens that carry no identity on their own (and also occur in surrogates such as example.com).
_NEUTRAL = {"com", "net", "org", "www", "http", "https", "apt", "suite", "unit", "box", "st", "street", "ave", "road"}


def caught(span: str, scrubbed: str) -> bool:
    tokens = [t for t in _TOKEN.findall(span) if t.lower() not in _NEUTRAL]
    return not any(re.search(rf"(?<!\w){re.escape(tok)}(?!\w)", scrubbed) for tok in tokens)


def evaluate(path: Path = DATASET, key: bytes = b"benchmark-key") -> pl.DataFrame:
    records = json.loads(path.read_text())
    texts = pl.Series("text", [r["full_text"] for r in records])
    scrubbed, _ = Scrubber(key=key).scrub(texts)
    rows = []
    for rec, out in zip(records, scrubbed.to_list()):
        half = "dev" if rec["template_id"] % 2 == 0 else "held-out"
        for span in rec["spans"]:
            if span["entity_type"] in ENTITIES + PUBLIC:
                rows.append({"half": half, "entity": span["entity_type"], "caught": caught(span["entity_value"], out), "value": span["entity_value"],
                             "intact": intact(span["entity_value"], out)})
    return pl.DataFrame(rows)


def intact(span: str, scrubbed: str) -> bool:
    return all(re.search(rf"(?<!\w){re.escape(tok)}(?!\w)", scrubbed) for tok in _TOKEN.findall(span))


def fidelity(spans: pl.DataFrame) -> pl.DataFrame:
    """Share of place (GPE) and group (NRP) spans left intact, per half; Faker's made-up places (\"East Michaelberg\") included."""
    table = spans.filter(pl.col("entity").is_in(PUBLIC)).group_by("half", "entity").agg(n=pl.len(), intact=pl.col("intact").sum()).sort("entity", "half")
    return table.with_columns(share=pl.col("intact") / pl.col("n"))


def summarize(spans: pl.DataFrame) -> pl.DataFrame:
    table = spans.filter(pl.col("entity").is_in(ENTITIES)).group_by("half", "entity").agg(n=pl.len(), caught=pl.col("caught").sum()).sort("entity", "half")
    lo, hi = proportion_confint(table["caught"].to_numpy(), table["n"].to_numpy(), alpha=0.05, method="beta")
    return table.with_columns(recall=pl.col("caught") / pl.col("n"), ci_low=pl.Series(lo), ci_high=pl.Series(hi))


if __name__ == "__main__":
    spans = evaluate()
    with pl.Config(tbl_rows=40):
        print(summarize(spans))
        print(fidelity(spans))
    if "--misses" in sys.argv:
        for ent in ENTITIES:
            print(ent, spans.filter((pl.col("half") == "dev") & ~pl.col("caught") & (pl.col("entity") == ent))["value"].head(25).to_list())
