"""Person-name recall on sentences made fresh: presidio-research's templates filled with names from many locales.

The committed synth_dataset_v2.json has been read while the filter was built (its held-out half's misses were printed
once, see the README); this set has not: each run draws new names with a fixed seed, from the odd templates (the
held-out half) and the even ones, and lowercases a fifth of the sentences as presidio-research's generator does.
Names in scripts without case (ja_JP, zh_CN, ru_RU's Cyrillic has case) are reported apart. Two sources: Faker,
whose first names and surnames the filter also lists (scripts/build_name_lists.py), so that figure is partly a
lookup; and mimesis, whose lists the filter does not use.

Usage: python benchmarks/presidio_fresh.py [--per-template 6] [--seed 20261124]   (needs the `bench` extra: faker, mimesis)
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from pathlib import Path

import polars as pl
from faker import Faker
from statsmodels.stats.proportion import proportion_confint

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from presidio_recall import caught  # noqa: E402

from depsim_assets.core.privacy.scrub import Scrubber  # noqa: E402

TEMPLATES = REPO.parent / "shared/data/privacy/presidio-research/templates.txt"
LATIN = ("en_US", "en_GB", "en_IN", "de_DE", "fr_FR", "es_ES", "es_MX", "it_IT", "pt_BR", "nl_NL", "pl_PL", "cs_CZ", "hu_HU",
         "sv_SE", "da_DK", "fi_FI", "tr_TR", "ro_RO", "hr_HR", "sl_SI", "vi_VN", "id_ID", "fil_PH", "sw", "yo_NG")
CASELESS = ("ja_JP", "zh_CN", "hi_IN", "ar_AA", "he_IL", "th_TH", "ko_KR")
PERSON = {"person": "name", "name": "name", "first_name": "first_name", "last_name": "last_name", "name_female": "name_female",
          "name_male": "name_male", "first_name_male": "first_name_male", "first_name_female": "first_name_female",
          "first_name_nonbinary": "first_name_nonbinary", "last_name_female": "last_name_female", "last_name_male": "last_name_male"}
OTHER = {"organization": "company", "address": "address", "city": "city", "country": "country", "street_name": "street_name",
         "building_number": "building_number", "credit_card_number": "credit_card_number", "phone_number": "phone_number",
         "secondary_address": "secondary_address", "postcode": "postcode", "zipcode": "zipcode", "email": "email", "url": "url",
         "job": "job", "iban": "iban", "date_of_birth": "date_of_birth", "date_time": "date_time", "ip_address": "ipv4",
         "ssn": "ssn", "state_abbr": "state_abbr", "day_of_week": "day_of_week", "prefix_male": "prefix_male",
         "prefix_female": "prefix_female", "year": "year"}
_SLOT = re.compile(r"{{(\w+)}}")


def _value(fake: Faker, fallback: Faker, provider: str) -> str:
    for f in (fake, fallback):
        try:
            return str(getattr(f, provider)())
        except AttributeError:
            continue
    return "thing"


class MimesisNames:
    """Names from mimesis (MIT), a source the filter's lists were not taken from (Faker's are: first_names_world.txt)."""

    CASED = ("cs", "da", "de", "de-at", "el", "en", "en-gb", "es", "es-mx", "et", "fi", "fr", "hu", "hr", "is", "it", "kk", "nl",
             "no", "pl", "pt", "pt-br", "ru", "sk", "sv", "tr", "uk", "az")
    CASELESS = ("ar-eg", "fa", "ja", "ko", "zh")

    def __init__(self, locale: str, seed: int) -> None:
        from mimesis import Person
        from mimesis.locales import Locale

        self.person = Person(Locale(locale), seed=seed)

    def __getattr__(self, provider: str):  # noqa: ANN204 - the Faker method names the templates use
        if provider.startswith("first_name"):
            return self.person.first_name
        if provider.startswith("last_name"):
            return self.person.last_name
        if provider.startswith("name"):
            return self.person.full_name
        raise AttributeError(provider)


def build(per_template: int, seed: int, source: str = "faker") -> pl.DataFrame:
    """One row per person span: half, script, the sentence and the span."""
    rng = random.Random(seed)
    english = Faker("en_US")
    english.seed_instance(seed)
    if source == "mimesis":
        cased, caseless = MimesisNames.CASED, MimesisNames.CASELESS
        fakes = {loc: MimesisNames(loc, seed + i) for i, loc in enumerate(cased + caseless)}
    else:
        cased, caseless = LATIN, CASELESS
        fakes = {loc: Faker(loc) for loc in LATIN + CASELESS}
        for i, f in enumerate(fakes.values()):
            f.seed_instance(seed + i)
    rows = []
    for tid, template in enumerate(TEMPLATES.read_text().splitlines()):
        if not any(slot in PERSON for slot in _SLOT.findall(template)):
            continue
        for _ in range(per_template):
            script = "caseless" if rng.random() < 0.2 else "cased"
            fake = fakes[rng.choice(caseless if script == "caseless" else cased)]
            spans: list[str] = []

            def fill(m: re.Match[str], fake: Faker = fake, spans: list[str] = spans) -> str:
                slot = m.group(1)
                if slot in PERSON:
                    value = _value(fake, english, PERSON[slot])
                    spans.append(value)
                    return value
                if slot == "age":
                    return str(rng.randint(18, 90))
                return _value(english, english, OTHER.get(slot, "word"))

            text = _SLOT.sub(fill, template)
            if rng.random() < 0.2:
                text, spans = text.lower(), [s.lower() for s in spans]
            rows += [{"half": "dev" if tid % 2 == 0 else "held-out", "script": script, "text": text, "span": s} for s in spans]
    return pl.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-template", type=int, default=6)
    ap.add_argument("--seed", type=int, default=20261124)
    args = ap.parse_args()
    for source in ("faker", "mimesis"):
        spans = build(args.per_template, args.seed, source)
        scrubbed, _ = Scrubber(key=b"benchmark-key").scrub(spans["text"])
        spans = spans.with_columns(caught=pl.Series([caught(s, o) for s, o in zip(spans["span"], scrubbed, strict=True)]))
        table = spans.group_by("half", "script").agg(n=pl.len(), caught=pl.col("caught").sum()).sort("script", "half")
        lo, hi = proportion_confint(table["caught"].to_numpy(), table["n"].to_numpy(), alpha=0.05, method="beta")
        print(f"fresh person spans, names from {source} (seed {args.seed}, {args.per_template} per template, a fifth lowercased):")
        with pl.Config(tbl_rows=20):
            print(table.with_columns(recall=pl.col("caught") / pl.col("n"), ci_low=pl.Series(lo), ci_high=pl.Series(hi)))


if __name__ == "__main__":
    main()
