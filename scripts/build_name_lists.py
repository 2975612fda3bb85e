"""Write depsim_assets/core/privacy/data/first_names_world.txt and surnames_world.txt from Faker's person providers.

Faker (MIT) ships first names and surnames for about 80 locales; the US Census lists alone miss most names outside
the US ("Jildau", "Aksel", "Guðgeir"). Kept: names in a script with case (Latin, Cyrillic, Greek, Armenian,
Georgian has none and is left out), lowercased, one word each (a double first name "María José" gives both words),
letters, apostrophes and hyphens only. Run by hand when Faker's lists should be taken again (`pip install -e
'.[bench]'`); the output is committed so depsim needs no Faker at run time.
"""

import importlib
import pkgutil
from pathlib import Path

from faker.providers import person

DATA = Path(__file__).resolve().parent.parent / "depsim_assets/core/privacy/data"
FIRST = ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary")
LAST = ("last_names", "last_names_male", "last_names_female")


def words(values: object) -> set[str]:
    out: set[str] = set()
    if not isinstance(values, (tuple, list, dict, set, frozenset)):
        return out  # a provider may compute a list in a property: nothing fixed to take
    for value in values:  # tuples, lists or {name: weight} dicts
        for word in str(value).lower().split():
            letters = word.replace("'", "").replace("-", "")
            if letters.isalpha() and len(letters) >= 2 and word.upper() != word.lower():  # a script with case
                out.add(word)
    return out


def main() -> None:
    first: set[str] = set()
    last: set[str] = set()
    for info in pkgutil.iter_modules(person.__path__):
        provider = importlib.import_module(f"faker.providers.person.{info.name}").Provider
        for attr in FIRST:
            first |= words(getattr(provider, attr, ()))
        for attr in LAST:
            last |= words(getattr(provider, attr, ()))
    for name, values in (("first_names_world.txt", first), ("surnames_world.txt", last)):
        (DATA / name).write_text("\n".join(sorted(values)) + "\n")
        print(f"{len(values)} names -> {DATA / name}")


if __name__ == "__main__":
    main()
