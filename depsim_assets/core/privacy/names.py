"""Person-name detection without a model: census name lists, an English word list, cue words, capitals.

Candidates come from two polars regexes (capitalized word runs, and a cue phrase followed by up to
three words); the decision below runs once per distinct candidate, not per message. What it misses
is listed in the README (lowercase names without a cue, single rare names at a sentence start, names
written in scripts without case).
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from importlib.resources import files

# ASCII word boundaries keep the regex on polars' fast DFA path (a Unicode \b forces a slow engine);
# a capital outside ASCII (Š, Ö, Á) starts a word wherever it stands.
_WORD = r"(?:(?-u:\b)[A-Z]|[\p{Lu}--A-Z])[\p{L}'’-]*"
PARTICLES = ("de", "da", "del", "der", "den", "van", "von", "di", "la", "le", "du", "bin", "al", "el", "dos", "das", "ten", "ter", "st.")
# Context that makes a capitalized run a place or a group, not a person. Before it: words that introduce a place
# ("in Crailsheim", "near Sofia"; not "to" or "from", which introduce people as often: "assistant to Alvir
# Pušaver", "verses from Faina Yefremova"). After it: a noun that makes the run an adjective ("Togolese people",
# "Tuvaluan novel", "Andalusia wine").
# Two-word openers that introduce only a place ("moved to Crailsheim", "population of Tharangambadi"): "to" and
# "of" alone introduce people too.
PLACE_PHRASES = tuple(f"{verb} {prep}" for verb, preps in (
    ("moved", "to from"), ("move", "to"), ("moving", "to from"), ("flight", "to from"), ("flights", "to from"), ("fly", "to from"),
    ("flying", "to from"), ("flew", "to from"), ("train", "to from"), ("bus", "to from"), ("travel", "to"), ("traveling", "to"),
    ("travelling", "to"), ("trip", "to"), ("drive", "to from"), ("driving", "to from"), ("relocate", "to"), ("relocating", "to"),
    ("population", "of"), ("capital", "of"), ("city", "of"), ("town", "of"), ("village", "of"), ("province", "of"), ("region", "of"),
    ("state", "of"), ("county", "of"), ("north", "of"), ("south", "of"), ("east", "of"), ("west", "of"), ("outskirts", "of"),
    ("suburbs", "of"), ("mayor", "of"), ("map", "of"), ("weather", "in")) for prep in preps.split())
PLACE_BEFORE = ("in", "near", "around", "across", "through", "throughout", "outside", "inside", "within", "via", "visit",
                       "visiting", "visited", "towards", "toward", "into")
# Only nouns that follow a group or a place, not a person's name: "the Jensen novel", "Smith family", "John Smith
# team" are why novel, family and team are not here (novel cost 11 held-out names when tried).
GROUP_AFTER = tuple(
    "people folks citizens nationals immigrants refugees food foods cuisine dishes recipes culture language languages "
    "government army military politics embassy passport economy wine wines cheese beer dialect "
    "accent currency border troops holidays customs traditions".split())
# After these, a word that is both a listed name and a common word is the word ("the President", "the South").
DETERMINERS = ("the", "a", "an", "this", "that", "these", "those")
# A run of capitalized words, initials ("N.") and name particles.
# An optional lowercase word end (or comma) and a space before the run marks it as mid-sentence; a place word
# before it, or a group noun after it, is captured whole.
# The context is any one or two lowercase words (an alternation of the place words cost 25% of the rule's time);
# `_context` reads them.
CAPITALIZED = (r"(?:(?-u:\b)\p{Ll}{1,20}[ ](?:\p{Ll}{1,20}[ ])?|[,;][ ])?" + _WORD
               + r"(?:[ ](?:\p{Lu}\.|" + _WORD + r"|(?:" + "|".join(re.escape(p) for p in PARTICLES) + r")(?-u:\b))){0,3}:?"
               + r"(?:[ ](?:" + "|".join(GROUP_AFTER) + r")(?-u:\b))?")
# The same run without its context or group noun: cheaper to match, and what `maybe_name` screens.
RUN = (_WORD + r"(?:[ ](?:\p{Lu}\.|" + _WORD + r"|(?:" + "|".join(re.escape(p) for p in PARTICLES) + r")(?-u:\b))){0,3}:?")
INTERJECTIONS = frozenset("hmm hmmm yeah yep yup nope nah okay lol haha wow oops ugh umm hiya thx pls".split())
CUES = (
    "my name is", "name is", "names are", "name:", "named", "called", "call me", "i am", "i'm", "this is",
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam", "dear", "hi", "hello", "hey", "thanks", "thank you",
    "regards", "sincerely", "cheers", "signed", "contact", "ask for", "guardian", "patient", "client", "customer",
    "wife", "husband", "son", "daughter", "brother", "sister", "mother", "father", "mom", "dad", "friend", "boss",
    "neighbor", "neighbour", "colleague", "coworker", "teacher", "doctor", "manager", "landlord", "partner",
    "boyfriend", "girlfriend", "uncle", "aunt", "cousin", "grandma", "grandpa",
)
CUE_PATTERN = r"(?i)(?-u:\b)(?:" + "|".join(re.escape(c) + (r"\.?" if len(c) <= 4 and c.isalpha() else "") for c in CUES) + r")[,:]?[ ]+[\p{L}'’-]+(?:[ ][\p{L}'’.-]+){0,2}"
# Prefilter: a cue followed by what the pattern allows after it (a regex with an ASCII word boundary is three times
# faster here than an Aho-Corasick search for every cue with each ending, case-insensitive).
CUE_PREFILTER = r"(?-u:\b)(?i:" + "|".join(re.escape(c) for c in CUES) + r")[ .:,]"
# Strong cues introduce a name even when it is lowercase ("my name is lena andersson").
STRONG_CUES = ("my name is", "name is", "names are", "name:", "named", "called", "call me", "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "signed", "dear")
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


def _load(name: str) -> frozenset[str]:
    return frozenset((files("depsim_assets.core.privacy") / "data" / name).read_text().split())


@cache
def lexicon() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(first names, surnames, common English words), all lowercase."""
    return _load("first_names.txt"), _load("surnames.txt"), _load("english_words.txt")


# Group words, countries and US states that are also common given names: recall wins, they stay names.
GIVEN_NAME_PLACES = frozenset("jordan georgia chad israel kenya india virginia carolina dakota montana nevada".split())
GIVEN_NAME_GROUPS = frozenset({"christian"})


@cache
def public_terms() -> frozenset[str]:
    """Words that name a group or a place, not a person: demonyms, nationalities, religions, ethnic and
    political groups (but Christian, a common given name); countries and US states (but a few
    common given names: Jordan, Georgia); cities and planets that are neither a listed first name nor a
    surname ("Lisbon" is a city and "Saturn" a planet; "Houston", "Austin" and "Venus" stay possible names)."""
    first, last, _ = lexicon()
    groups = _load("groups.txt") - GIVEN_NAME_GROUPS
    countries = _load("countries.txt") - GIVEN_NAME_PLACES
    cities = frozenset(t for t in _load("cities.txt") if t not in first and t not in last)
    # Planets by the cities' rule: "business on Saturn" is a place, but Venus and Mars stay possible names.
    planets = frozenset(t for t in _load("celestial.txt") if t not in first and t not in last)
    return groups | countries | cities | planets | public_words()


# An inner capital marks a product (YouTube) except after a surname prefix (McClane, DeAndre, LaToya).
_CAMEL = re.compile(r"(?<!^M)(?<!^Ma)(?<!^D)(?<!^L)(?<!^V)[a-z][A-Z]")
_STUTTER = re.compile(r"(\w)\1\1")
_CLITIC = re.compile(r"(?:['’](?:s|re|ll|m|d|ve|t)|n['’]t)$", re.IGNORECASE)


def _strip(tok: str) -> str:
    """Lowercase token without surrounding punctuation or a clitic ("What's" -> "what")."""
    return _CLITIC.sub("", tok.strip(".,;:!?\"")).strip("'’").lower()


@lru_cache(maxsize=1 << 16)
def token_kind(tok: str) -> str:
    """'name' (a listed name that is not a common word), 'ambiguous' (listed and a common word: Grace,
    Will, Brown), 'word' (common word, sentence word, or a group or place: Jewish, Mexicans, Lisbon), or
    'unknown' (neither: Djevad, Šušulić)."""
    first, last, words = lexicon()
    t = _strip(tok)
    if not t or t in SENTENCE_WORDS or t.removesuffix("s") in SENTENCE_WORDS or (len(t) > 1 and tok.strip(".,;:!?'’\"").isupper()):
        return "word"  # all-caps tokens are acronyms (IBAN, NASA), not names
    if t in public_terms() or (t.endswith("s") and t[:-1] in public_terms()):
        return "public"  # a group or a place: never a name by itself
    if _CAMEL.search(tok) or _STUTTER.search(t):
        return "word"  # TurboTax, YouTube, "Uhhh": products and interjections, not names
    listed = t in first or t in last
    common = t in words or (t.endswith("s") and t[:-1] in words)
    if listed:
        return "ambiguous" if common else "name"
    if not common and t.endswith(DEMONYM_ENDINGS) and len(t) > 5:
        return "public"  # Gabonese, Chilean, Kurdish: adjectives of origin, not names (listed names were taken above)
    return "word" if common else "unknown"


def _is_initial(tok: str) -> bool:
    return tok[:1].isupper() and (len(tok) == 1 or (len(tok) == 2 and tok[1] == "."))


def name_span(tokens: list[str], cued: bool) -> tuple[int, int] | None:
    """The [start, end) token range that is a person's name, or None.

    A run counts when it holds a listed, non-ambiguous name; or two or more capitalized tokens none of
    which is a common word (foreign names missing from the lists); or, after a cue, words that are
    capitalized or listed. Ambiguous tokens (Grace, Brown) count only next to a stronger token.
    """
    kinds = ["initial" if _is_initial(t) else ("particle" if t.lower() in PARTICLES else token_kind(t)) for t in tokens]
    kinds = ["word" if k == "public" else k for k in kinds]
    # Trim leading/trailing tokens that cannot be part of a name.
    start, end = 0, len(tokens)
    while start < end and kinds[start] in ("word", "particle"):
        start += 1
    while end > start and kinds[end - 1] in ("word", "particle"):
        end -= 1
    if start >= end:
        return None
    core = kinds[start:end]
    if "word" in core:  # a common word inside: judge only the run before it
        cut = start + core.index("word")
        return name_span(tokens[start:cut], cued) if cut > start else None
    strong = sum(k == "name" for k in core)
    unknown = sum(k == "unknown" for k in core)
    # Particles are lowercase in names ("Maika van de Noort", "Dyan van Gijn"): they do not make a run uncapitalized.
    capitalized = all(t[:1].isupper() for t, k in zip(tokens[start:end], core, strict=True) if k != "particle")
    if strong and (capitalized or cued):
        return start, end
    if capitalized and unknown >= 2 and (end - start) >= 2:
        return start, end
    if capitalized and unknown >= 1 and (strong or "ambiguous" in core or "initial" in core):
        return start, end
    if cued and capitalized and (unknown or "ambiguous" in core):
        return start, end
    # Only ambiguous names and initials, with at least one of each: "Will H. Young".
    if capitalized and "initial" in core and "ambiguous" in core and set(core) <= {"ambiguous", "initial"}:
        return start, end
    return None


def _lines(name: str) -> frozenset[str]:
    text = (files("depsim_assets.core.privacy") / "data" / name).read_text()
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


@cache
def public_phrases() -> frozenset[str]:
    """Places, public figures and organisations of two or more words ("san juan", "donald trump", "fox news"): a
    run that is one of them is never a name."""
    return frozenset(p for p in _lines("places_multiword.txt") | _lines("public_figures.txt") | _lines("organisations.txt") if " " in p)


@cache
def public_words() -> frozenset[str]:
    """Single-word public figures and organisations (Hitler, Facebook), except listed first names (Moses, Alexa):
    a first name alone stays a possible person, as with places."""
    first, _, _ = lexicon()
    return frozenset(w for w in _lines("public_figures.txt") | _lines("organisations.txt") if " " not in w and w not in first)


@cache
def places() -> frozenset[str]:
    """Every country, US state and city of the gazetteers, given names included (Houston, Sofia): after a strong
    place word ("in Sofia") they are places."""
    return _load("countries.txt") | _load("cities.txt") | _load("celestial.txt")


def _context(value: str) -> tuple[str, str, int]:
    """(body, context, offset of the body in value). Context: "phrase" after a place phrase, "place" after a place word, "determiner"
    after "the"/"a"/..., "mid" after any other lowercase word or a comma, "" at the start of a sentence."""
    if value[:2] in (", ", "; "):
        return value[2:], "mid", 2
    words = value.split(" ", 2)
    lower: list[str] = []
    for w in words[:-1]:  # the regex's context: at most two leading lowercase words
        if not w[:1].islower():
            break
        lower.append(w)
    if not lower:
        return value, "", 0
    offset = sum(len(w) + 1 for w in lower)
    last = lower[-1]
    if " ".join(lower) in PLACE_PHRASES:
        return value[offset:], "phrase", offset
    if last in PLACE_BEFORE:
        return value[offset:], "place", offset
    return value[offset:], "determiner" if last in DETERMINERS else "mid", offset


def _is_place(tokens: list[str]) -> bool:
    """After a place word: words no name list has, group words and gazetteer places ("in Tegucigalpa", "near
    Houston"); a listed name that is no gazetteer place ("in Faina") stays a name."""
    return all(k in ("unknown", "public", "word") or _strip(t) in places() or t in PARTICLES
               for t, k in zip(tokens, map(token_kind, tokens), strict=True))


@lru_cache(maxsize=1 << 16)
def maybe_name(run: str) -> bool:
    """Whether a capitalized run (`RUN`) can be a name in some context: only if one of its words is a listed name or
    no common word. A run of common words, groups and places ("I", "What", "Human:", "New York") is none in any
    context, so the words before it need no look."""
    return any(token_kind(t) in ("name", "ambiguous", "unknown") for t in run.rstrip(":").split(" ") if t not in PARTICLES and not _is_initial(t))


@lru_cache(maxsize=1 << 16)
def resolve_capitalized(value: str) -> tuple[int, int] | None:
    """Character span of the name inside a capitalized run, or None.

    Mid-sentence (the run follows a lowercase word), a single capitalized token that is a listed name
    (even an ambiguous one: "him Frank") or is no English word ("early Yefremova") is taken as a name. A run a
    place word introduces can be a place; a run a group noun follows is an adjective (see `CAPITALIZED`); a

    """
    tail = value.rsplit(" ", 1)
    if len(tail) == 2 and tail[1] in GROUP_AFTER:
        return None  # "Togolese people", "Grenadian novel": the run describes a group or a thing
    body, context, offset = _context(value)
    mid = bool(context)
    speaker = body.endswith(":")  # "John: You saved my life!" - a transcript's speaker label
    body = body.rstrip(":")
    tokens = body.split(" ")
    if context == "determiner" and len(tokens) == 1 and token_kind(tokens[0]) == "ambiguous":
        return None  # "the President", "the South", "a Rose": the common word
    words = [_strip(t) for t in tokens]
    while words and words[0] in SENTENCE_WORDS:  # "The Rio de Janeiro carnival": the phrase without "the"
        words = words[1:]
    if (context == "place" and _is_place(tokens)) or " ".join(words) in public_phrases():
        return None
    if context == "phrase" and (_is_place(tokens) or not all(token_kind(t) in ("name", "ambiguous") for t in tokens if t not in PARTICLES)):
        return None  # "moved to Callosa de Segura", "population of Santa Rosa": a place phrase outweighs one listed word
    span = name_span(tokens, cued=False)
    if span is None and len(tokens) == 1 and len(_strip(tokens[0])) >= 3:
        kind = token_kind(tokens[0])
        if kind == "name" or (kind == "ambiguous" and (mid or speaker)):
            span = (0, 1)
        elif kind == "unknown" and (mid or speaker or len(_strip(tokens[0])) >= 4) and _strip(tokens[0]) not in INTERJECTIONS:
            span = (0, 1)
    sp = _char_span(tokens, span)
    return (sp[0] + offset, sp[1] + offset) if sp else None


@lru_cache(maxsize=1 << 16)
def resolve_cued(value: str) -> tuple[int, int] | None:
    """Character span of the name after the cue phrase that starts `value`."""
    low = value.lower()
    cue = max((c for c in CUES if low.startswith(c)), key=len, default=None)
    if cue is None:
        return None
    rest_start = len(cue)
    while rest_start < len(value) and value[rest_start] in ".,: ":
        rest_start += 1
    tokens = value[rest_start:].split(" ")
    strong = cue in STRONG_CUES
    if not strong and not tokens[0][:1].isupper():
        return None
    if strong:
        # After "my name is", lowercase listed names count too; stop at the first common word.
        kinds = [token_kind(t) for t in tokens]
        end = 0
        # After a strong cue a capitalized group or place word is a name too ("Mr. Black", "my name is Paris").
        while end < len(tokens) and (kinds[end] in ("name", "unknown") or
                                     (kinds[end] in ("ambiguous", "public") and tokens[end][:1].isupper())):
            end += 1
        span = (0, end) if end else None
    else:
        span = name_span(tokens, cued=True)
    sp = _char_span(tokens, span)
    return (sp[0] + rest_start, sp[1] + rest_start) if sp else None


# Verbs whose object is a person: after them a lowercase first name that is no English word is a name ("ask ahmed",
# "met priya shah"); capitalized names there are the capitalized rule's.
PERSON_VERBS = ("ask", "asked", "told", "texted", "emailed", "messaged", "met", "marry", "married", "dating", "hugged", "kissed",
                "invited")  # not "tell", "thank", "text", "email": "tell me", "thank you" are in most messages
LOWER_PATTERN = r"(?-u:\b)(?:" + "|".join(PERSON_VERBS) + r")[ ]+\p{Ll}[\p{Ll}'’-]+(?:[ ]\p{Ll}[\p{Ll}'’-]+)?"
LOWER_PREFILTER = r"(?-u:\b)(?:" + "|".join(PERSON_VERBS) + r")[ ]"


@lru_cache(maxsize=1 << 16)
def resolve_lowercase(value: str) -> tuple[int, int] | None:
    """Character span of a lowercase name after a person verb: a listed first name that is no common word, no group
    or place, then optionally a listed surname that is none either."""
    first, last, words = lexicon()
    verb, _, rest = value.partition(" ")
    tokens = rest.strip().split(" ")
    offset = len(value) - len(rest.lstrip(" "))

    def plain(t: str, names: frozenset[str]) -> bool:
        s = _strip(t)
        return s in names and s not in words and s not in public_terms() and s not in SENTENCE_WORDS and len(s) >= 3

    if not plain(tokens[0], first):
        return None
    end = 2 if len(tokens) > 1 and (plain(tokens[1], last) or plain(tokens[1], first)) else 1
    sp = _char_span(tokens, (0, end))
    return (sp[0] + offset, sp[1] + offset) if sp else None


def _char_span(tokens: list[str], span: tuple[int, int] | None) -> tuple[int, int] | None:
    if span is None:
        return None
    start = sum(len(t) + 1 for t in tokens[: span[0]])
    text = " ".join(tokens[span[0] : span[1]])
    stripped = re.sub(r"['’]s$", "", text.rstrip(".,;:!?\"")).rstrip("'’")
    if text.endswith(".") and _is_initial(tokens[span[1] - 1]):
        stripped = text
    return (start, start + len(stripped)) if stripped else None


def clear_caches() -> None:
    """Forget every cached decision (after the word lists were swapped, as the fidelity benchmark does)."""
    for fn in (lexicon, public_terms, public_phrases, public_words, places, token_kind, maybe_name, resolve_capitalized, resolve_cued, resolve_lowercase):
        fn.cache_clear()
