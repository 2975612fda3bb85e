"""The word lists behind the name rules and what one token is: a listed name, a common word, a group or a place.

Lists (see data/README.md): US Census first names and surnames, an English word list, demonyms and groups,
countries, cities and regions of the gazetteers, public figures and organisations. Decisions are cached per token.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from importlib.resources import files

PARTICLES = ("de", "da", "del", "der", "den", "van", "von", "di", "la", "le", "du", "bin", "al", "el", "dos", "das", "ten", "ter", "st.")
SENTENCE_WORDS = frozenset(
    "i a an the this that these those it its he she they we you my your his her our their me him them us "
    "what when where why how who which whose if then than so but and or not no yes ok okay hi hello hey dear "
    "please thanks thank sorry sure well also just very really can could would should will shall may might must "
    "do does did is are was were be been am have has had let lets here there today tomorrow yesterday "
    "monday tuesday wednesday thursday friday saturday sunday january february march april may june july august "
    "september october november december mr mrs ms dr prof sir madam st "
    "human assistant user bot".split()  # transcript speaker labels ("Human: ...") are roles, not names
)
# Endings of demonyms and nationalities that names rarely have ("-ian" has: Kardashian, Petrosian).
DEMONYM_ENDINGS = ("ese", "ean", "ish")
# Endings that make a demonym of a place's name, with what the place's name may end in instead: Burundi -> Burundian,
# Grenada -> Grenadian, Mauritius -> Mauritian, Suriname -> Surinamer, Uzbekistan -> Uzbekistani, Seychelles ->
# Seychellois, Slovenia -> Slovene. Only for words no name list has, and only from countries, regions and the capitals'
# and large cities' list, so a foreign surname rarely derives from one.
DEMONYM_SUFFIXES = ("ian", "ean", "an", "n", "i", "er", "ois", "ite", "ese", "e")
PLACE_ENDINGS = ("", "a", "e", "i", "o", "s", "us", "os", "ia", "es", "land", "stan")
# Group words, countries and US states that are also common given names: recall wins, they stay names.
GIVEN_NAME_PLACES = frozenset("jordan georgia chad israel kenya india virginia carolina dakota montana nevada".split())
GIVEN_NAME_GROUPS = frozenset({"christian"})

# An inner capital marks a product (YouTube) except after a surname prefix (McClane, DeAndre, LaToya).
_CAMEL = re.compile(r"(?<!^M)(?<!^Ma)(?<!^D)(?<!^L)(?<!^V)[a-z][A-Z]")
_STUTTER = re.compile(r"(\w)\1\1")
_CLITIC = re.compile(r"(?:['’](?:s|re|ll|m|d|ve|t)|n['’]t)$", re.IGNORECASE)


def _data(name: str) -> str:
    return (files("depsim_assets.core.privacy") / "data" / name).read_text()


def load(name: str) -> frozenset[str]:
    return frozenset(_data(name).split())


def lines(name: str) -> frozenset[str]:
    return frozenset(line.strip() for line in _data(name).splitlines() if line.strip() and not line.startswith("#"))


@cache
def census() -> tuple[frozenset[str], frozenset[str]]:
    """(first names, surnames) of the US Census lists: the names that may override a place or a common word."""
    return load("first_names.txt"), load("surnames.txt")


@cache
def lexicon() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(first names, surnames, common English words), all lowercase: the US Census lists and Faker's names of about
    80 locales (the Census alone misses most names outside the US). The world lists only add names: they hold
    Atlanta, Brooklyn, Heaven and Male too, so a place or a common word stays one unless the Census lists it."""
    first, last = census()
    return first | load("first_names_world.txt"), last | load("surnames_world.txt"), load("english_words.txt")


@cache
def public_terms() -> frozenset[str]:
    """Words that name a group, a country or a public figure, never a private person: demonyms, nationalities,
    religions, ethnic and political groups (but Christian, a common given name); countries and US states (but a few
    common given names: Jordan, Georgia); planets that are no listed name (Saturn; not Venus); public figures and
    organisations (Hitler, Facebook)."""
    first, last = census()
    groups = load("groups.txt") - GIVEN_NAME_GROUPS
    countries = load("countries.txt") - GIVEN_NAME_PLACES
    planets = frozenset(t for t in load("celestial.txt") if t not in first and t not in last)
    return groups | countries | planets | public_words()


@cache
def small_places() -> frozenset[str]:
    """Cities and regions that are neither a listed first name nor a surname ("Lisbon", "Jharkhand"; not "Houston").
    Alone they are places; next to a name-like word they may be part of a name ("Dreux Joly", "Abbas Kadyrov")."""
    first, last = census()
    return frozenset(t for t in load("cities.txt") | load("regions.txt") if t not in first and t not in last)


@cache
def public_phrases() -> frozenset[str]:
    """Places, public figures and organisations of two or more words ("san juan", "donald trump", "fox news"): a
    run that is one of them is never a name."""
    return frozenset(p for p in lines("places_multiword.txt") | lines("public_figures.txt") | lines("organisations.txt") if " " in p)


@cache
def public_words() -> frozenset[str]:
    """Single-word public figures and organisations (Hitler, Facebook), except listed first names (Moses, Alexa):
    a first name alone stays a possible person, as with places."""
    first, _ = census()
    return frozenset(w for w in lines("public_figures.txt") | lines("organisations.txt") if " " not in w and w not in first)


@cache
def places() -> frozenset[str]:
    """Every country, US state, city and region of the gazetteers, given names included (Houston, Sofia): after a
    strong place word ("in Sofia") they are places."""
    return load("countries.txt") | load("cities.txt") | load("regions.txt") | load("celestial.txt")


@cache
def _demonym_bases() -> frozenset[str]:
    """Places a demonym is made from: countries (all), regions, and multi-word places as one string, each part of a
    pair on its own too ("Antigua and Barbuda": Antiguan, Barbudan; "Sao Tome and Principe": Sao Tomean)."""
    multi = {part for p in lines("places_multiword.txt") for part in p.split(" and ")}
    return load("countries.txt") | load("regions.txt") | frozenset(p for p in multi if p.count(" ") <= 2)


@lru_cache(maxsize=1 << 16)
def demonym(word: str) -> bool:
    """Whether a lowercase word or phrase is made from a place's name by a demonym ending ("burundian", "saint lucian",
    "uzbekistani"); the stem keeps at least four letters."""
    bases = _demonym_bases()
    if any(word + ending in bases for ending in ("land", "stan")):
        return True  # Swazi, Thai, Uzbek
    for suffix in DEMONYM_SUFFIXES:
        stem = word.removesuffix(suffix)
        if stem == word or len(stem.replace(" ", "")) < 4:
            continue
        if any(stem + ending in bases for ending in PLACE_ENDINGS):
            return True
    return False


def strip_token(tok: str) -> str:
    """Lowercase token without surrounding punctuation or a clitic ("What's" -> "what")."""
    return _CLITIC.sub("", tok.strip(".,;:!?\"")).strip("'’").lower()


def is_initial(tok: str) -> bool:
    return tok[:1].isupper() and (len(tok) == 1 or (len(tok) == 2 and tok[1] == "."))


@lru_cache(maxsize=1 << 16)
def token_kind(tok: str) -> str:
    """'name' (a listed name that is not a common word), 'ambiguous' (listed and a common word: Grace, Will, Brown),
    'word' (common word, sentence word), 'public' (a group, a country or a public figure: Jewish, Mexicans, Hitler),
    'place' (a city or region no name list has: Lisbon), or 'unknown' (none of these: Djevad, Šušulić)."""
    first, last, words = lexicon()
    t = strip_token(tok)
    if not t or t in SENTENCE_WORDS or t.removesuffix("s") in SENTENCE_WORDS or (len(t) > 1 and tok.strip(".,;:!?'’\"").isupper()):
        return "word"  # all-caps tokens are acronyms (IBAN, NASA), not names
    if t in public_terms() or (t.endswith("s") and t[:-1] in public_terms()):
        return "public"
    common = t in words or (t.endswith("s") and t[:-1] in words)
    if t in small_places():
        return "word" if common else "place"  # Nice, Reading, Göd folded to "god": the common word
    if _CAMEL.search(tok) or _STUTTER.search(t):
        return "word"  # TurboTax, YouTube, "Uhhh": products and interjections, not names
    if common:  # a common word is a name too only when the Census lists it ("Grace", "Brown"; not Faker's "Male")
        us_first, us_last = census()
        return "ambiguous" if t in us_first or t in us_last else "word"
    if t in first or t in last:
        return "name"
    if (t.endswith(DEMONYM_ENDINGS) and len(t) > 5) or demonym(t) or (t.endswith("s") and demonym(t[:-1])):
        return "public"  # Gabonese, Burundian, Uzbekistani: adjectives of origin, not names (listed names were taken above)
    if "-" in t and any(part in public_terms() for part in t.split("-")):
        return "public"  # I-Kiribati, Ni-Vanuatu, Afro-Cuban
    return "unknown"  # common words and listed names were decided above


def clear_caches() -> None:
    """Forget every cached decision (after the word lists were swapped, as the fidelity benchmark does)."""
    for fn in (census, lexicon, public_terms, small_places, public_phrases, public_words, places, _demonym_bases, demonym, token_kind):
        getattr(fn, "cache_clear", lambda: None)()  # a list swapped for a plain function has no cache
