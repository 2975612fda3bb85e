"""Person-name detection without a model: census name lists, an English word list, cue words, capitals.

Candidates come from polars regexes (capitalized word runs, a cue phrase followed by up to three words, a lowercase
name after a person verb); the decision below runs once per distinct candidate, not per message, and what one token
is comes from `lexicon`. What it misses is listed in the README (lowercase names without a cue, single rare names
at a sentence start, names written in scripts without case).
"""

from __future__ import annotations

import re
from functools import cache, lru_cache

from depsim_assets.core.privacy import lexicon as lexicon_module
from depsim_assets.core.privacy.lexicon import (
    PARTICLES,
    SENTENCE_WORDS,
    census,
    demonym,
    is_initial,
    lexicon,
    places,
    public_phrases,
    public_terms,
    small_places,
    strip_token,
    token_kind,
)

# ASCII word boundaries keep the regex on polars' fast DFA path (a Unicode \b forces a slow engine);
# a capital outside ASCII (Š, Ö, Á) starts a word wherever it stands.
_WORD = r"(?:(?-u:\b)[A-Z]|[\p{Lu}--A-Z])[\p{L}'’-]*"
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
    ("suburbs", "of"), ("mayor", "of"), ("map", "of"), ("weather", "in"), ("people", "from"), ("immigrated", "to from"),
    ("emigrated", "to from"), ("immigrants", "from"), ("refugees", "from")) for prep in preps.split())
PLACE_BEFORE = ("in", "near", "around", "across", "through", "throughout", "outside", "inside", "within", "via", "visit",
                "visiting", "visited", "towards", "toward", "into")
# Only nouns that follow a group or a place, not a person's name: "the Jensen novel", "Smith family", "John Smith
# team" are why novel, family and team are not here (novel cost 11 held-out names when tried).
GROUP_AFTER = tuple(
    "people folks citizens nationals immigrants refugees food foods cuisine dishes recipes culture language languages "
    "government army military politics embassy passport economy wine wines cheese beer dialect "
    "accent currency border troops holidays customs traditions".split())
# After a first name, a capitalized common word is its surname ("Justin Beet", "Moira Pagan") unless it names a place,
# a building or an organisation ("Jordan River", "Grace Church", "Victoria Station").
PLACE_NOUNS = frozenset(
    "street road avenue lane drive boulevard way court place square river lake park beach bay island islands mountain "
    "mountains valley falls springs creek hill hills point port harbor harbour heights station airport bridge hall center "
    "centre house hotel tower university college school academy hospital clinic church chapel cathedral temple mosque "
    "museum library stadium arena mall market county city state national memorial tech institute foundation company inc "
    "corp ltd bank group press records studios airlines motors news times post journal".split())
OFFICES = frozenset("president speaker chairman chair secretary mayor governor senator ambassador minister judge justice".split())
TITLES = ("mr", "mrs", "ms", "miss", "mx", "dr", "prof")
# Generational and professional suffixes are part of the name they follow ("Kevin Veitonen II", "Giovanna Rodrigues MD").
NAME_SUFFIXES = frozenset("jr jr. sr sr. ii iii iv md m.d. phd ph.d. dds esq esq.".split())
# After these, a word that is both a listed name and a common word is the word ("the President", "the South").
DETERMINERS = ("the", "a", "an", "this", "that", "these", "those")
# A run of capitalized words, initials ("N.") and name particles.
# An optional lowercase word end (or comma) and a space before the run marks it as mid-sentence; a place word
# before it, or a group noun after it, is captured whole.
# The context is any one or two lowercase words (an alternation of the place words cost 25% of the rule's time);
# `_context` reads them.
_PARTICLE_ALT = r"(?:" + "|".join(re.escape(p) for p in PARTICLES) + r")(?-u:\b)"
CAPITALIZED = (r"(?:(?-u:\b)\p{Ll}{1,20}[ ](?:\p{Ll}{1,20}[ ])?|[,;][ ])?" + _WORD
               + r"(?:[ ](?:\p{Lu}\.|" + _WORD + r"|" + _PARTICLE_ALT + r")){0,3}:?"
               + r"(?:[ ](?:" + "|".join(GROUP_AFTER) + r")(?-u:\b))?")
# The same run without its context or group noun: cheaper to match, and what `maybe_name` screens.
RUN = _WORD + r"(?:[ ](?:\p{Lu}\.|" + _WORD + r"|" + _PARTICLE_ALT + r")){0,3}:?"
INTERJECTIONS = frozenset("hmm hmmm yeah yep yup nope nah okay lol haha wow oops ugh umm hiya thx pls".split())
# Speech verbs and "known as" take a name after them the way "Dear" does ("says Izumi", "according to Du Cane").
CUES = (
    "my name is", "name is", "names are", "name:", "named", "called", "call me", "calls me", "i am", "i'm", "this is",
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam", "dear", "hi", "hello", "hey", "thanks", "thank you",
    "regards", "sincerely", "cheers", "signed", "contact", "ask for", "guardian", "patient", "client", "customer",
    "wife", "husband", "son", "daughter", "brother", "sister", "mother", "father", "mom", "dad", "friend", "boss",
    "neighbor", "neighbour", "colleague", "coworker", "teacher", "doctor", "manager", "landlord", "partner",
    "boyfriend", "girlfriend", "uncle", "aunt", "cousin", "grandma", "grandpa",
    "says", "said", "asks", "replied", "according to", "known as", "goes by", "aka",
)
# A greeting may open another cue ("hi, my name is zaria"): captured together, or the greeting's match would end
# before the name.
GREETINGS = ("hi", "hello", "hey")
CUE_PATTERN = r"(?i)(?-u:\b)(?:(?:" + "|".join(GREETINGS) + r")[,!.]?[ ]+)?(?:" + "|".join(re.escape(c) + (r"\.?" if len(c) <= 4 and c.isalpha() else "") for c in CUES) + r")[,:]?[ ]+[\p{L}'’-]+(?:[ ][\p{L}'’.-]+){0,2}"
# Prefilter: a cue followed by what the pattern allows after it (a regex with an ASCII word boundary is three times
# faster here than an Aho-Corasick search for every cue with each ending, case-insensitive).
CUE_PREFILTER = r"(?-u:\b)(?i:" + "|".join(re.escape(c) for c in CUES) + r")[ .:,]"
# Strong cues introduce a name even when it is lowercase ("my name is lena andersson").
STRONG_CUES = ("my name is", "name is", "names are", "name:", "named", "called", "call me", "calls me", "mr", "mrs", "ms", "miss", "mx", "dr",
               "prof", "signed", "dear")
# The speaker names themselves: after these, a city's or a region's name is a name too ("my name is vitoria").
SELF_CUES = ("my name is", "name is", "names are", "name:", "call me", "calls me")


def _kinds(tokens: list[str], cued: bool) -> list[str]:
    """Token kinds for `name_span`: groups and countries are words; a city or region is a word alone but may be part
    of a name next to other name-like words or after a cue ("Dreux Joly", "says Iwase"); a capitalized common word
    right after a first name (and its initials) is a surname ("Justin Beet", "Daniela C Capon")."""
    raw = ["initial" if is_initial(t) else ("particle" if t.lower() in PARTICLES else token_kind(t)) for t in tokens]
    several = sum(k in ("name", "ambiguous", "unknown", "place") for k in raw) >= 2
    kinds = ["word" if k == "public" else ("unknown" if cued or several else "word") if k == "place" else k for k in raw]
    first, _, _ = lexicon()
    for i in range(1, len(kinds)):
        before = [(t, k) for t, k in zip(tokens[:i], kinds[:i], strict=True) if k not in ("initial", "particle")]
        if (kinds[i] == "word" and raw[i] == "word" and before and before[-1][1] == "name" and strip_token(before[-1][0]) in first
                and not re.search(r"['’]s$", before[-1][0])  # "Charlotte's Web"
                and _surname_word(tokens[i]) and not strip_token(tokens[i]).endswith("s")):
            kinds[i] = "ambiguous"  # not a plural: "Dallas Mavericks", "Leprino Foods" are teams and firms
            break
    return kinds


def _surname_word(token: str) -> bool:
    """A capitalized common word that can be a surname after a first name or a title ("Justin Beet", "Dr. Wells"): not
    a sentence word, an acronym, a place or building noun, or an office ("Mr. President")."""
    word = strip_token(token)
    return (token[:1].isupper() and not token.strip(".,;:!?").isupper() and word not in SENTENCE_WORDS and word not in PLACE_NOUNS
            and word not in OFFICES)


def name_span(tokens: list[str], cued: bool) -> tuple[int, int] | None:
    """The [start, end) token range that is a person's name, or None.

    A run counts when it holds a listed, non-ambiguous name; or two or more capitalized tokens none of
    which is a common word (foreign names missing from the lists); or, after a cue, words that are
    capitalized or listed. Ambiguous tokens (Grace, Brown) count only next to a stronger token.
    """
    kinds = _kinds(tokens, cued)
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
    if (strong and (capitalized or cued)) or (capitalized and unknown >= 2 and (end - start) >= 2) \
            or (capitalized and unknown >= 1 and (strong or "ambiguous" in core or "initial" in core)) \
            or (cued and capitalized and (unknown or "ambiguous" in core)) \
            or (capitalized and "initial" in core and "ambiguous" in core and set(core) <= {"ambiguous", "initial"}):
        # The last: only ambiguous names and initials, with at least one of each ("Will H. Young").
        while end < len(tokens) and strip_token(tokens[end]) in NAME_SUFFIXES:
            end += 1
        return start, end
    return None


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
    return all(k in ("unknown", "public", "place", "word") or strip_token(t) in places() or t in PARTICLES
               for t, k in zip(tokens, map(token_kind, tokens), strict=True))


@lru_cache(maxsize=1 << 16)
def maybe_name(run: str) -> bool:
    """Whether a capitalized run (`RUN`) can be a name in some context: only if one of its words is a listed name, a
    place (part of a name next to another) or no common word. A run of common words, groups and countries ("I",
    "What", "Human:", "China") is none in any context, so the words before it need no look."""
    return any(token_kind(t) in ("name", "ambiguous", "unknown", "place") for t in run.rstrip(":").split(" ")
               if t not in PARTICLES and not is_initial(t))


def _single(token: str, mid: bool) -> bool:
    """A lone capitalized token is a name when listed (ambiguous ones only mid-sentence: "him Frank") or when no list
    has it and it follows a word or is long enough not to be an interjection ("early Yefremova", "Djevad says")."""
    word = strip_token(token)
    if len(word) < 3:
        return False
    kind = token_kind(token)
    return kind == "name" or (kind == "ambiguous" and mid) or (kind == "unknown" and (mid or len(word) >= 4) and word not in INTERJECTIONS)


@lru_cache(maxsize=1 << 16)
def resolve_capitalized(value: str) -> tuple[int, int] | None:
    """Character span of the name inside a capitalized run, or None.

    A run a place word or phrase introduces can be a place; a run a group noun follows is an adjective (see
    `CAPITALIZED`); a listed multi-word place, public figure or organisation, or a demonym of one ("Saint Lucian"),
    is none; else `name_span` decides, and a single token left after common words is judged alone (`_single`).
    """
    tail = value.rsplit(" ", 1)
    if len(tail) == 2 and tail[1] in GROUP_AFTER:
        return None  # "Togolese people", "Grenadian novel": the run describes a group or a thing
    body, context, offset = _context(value)
    speaker = body.endswith(":")  # "John: You saved my life!" - a transcript's speaker label
    body = body.rstrip(":")
    tokens = body.split(" ")
    if context == "determiner" and len(tokens) == 1 and token_kind(tokens[0]) == "ambiguous":
        return None  # "the President", "the South", "a Rose": the common word
    words = [strip_token(t) for t in tokens]
    while words and words[0] in SENTENCE_WORDS:  # "The Rio de Janeiro carnival": the phrase without "the"
        words = words[1:]
    phrase = " ".join(words)
    if (context == "place" and _is_place(tokens)) or phrase in public_phrases() or (len(words) > 1 and demonym(phrase)):
        return None
    if context == "phrase" and not re.search(r"['’]s$", body):
        return None  # "moved to Callosa de Segura", "population of Moncada": no one has a population (but "drive to Sarah's")
    span = name_span(tokens, cued=False)
    if span is None and len(tokens) == 1 and _single(tokens[0], bool(context) or speaker):
        span = (0, 1)  # not the first of several followed by common words: "Veritas Capital", "Star Wars" are no names
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
    while rest_start < len(value) and value[rest_start] in ".,:! ":
        rest_start += 1
    if cue in GREETINGS and any(low[rest_start:].startswith(c + " ") for c in CUES):
        inner = resolve_cued(value[rest_start:])
        return (inner[0] + rest_start, inner[1] + rest_start) if inner else None
    tokens = value[rest_start:].split(" ")
    if cue not in STRONG_CUES and not tokens[0][:1].isupper():
        return None
    if cue in STRONG_CUES:
        # After "my name is", lowercase listed names count too, and initials between them ("hyuuma t. maida"); stop at
        # the first common word. A capitalized group or place word is a name here ("Mr. Black", "my name is Paris"),
        # and a place even lowercase when the speaker names themselves ("my name is vitoria").
        # After a title or a first name, one capitalized common word is a surname ("Dr. Wells", "Dr. Justin Beet").
        kinds = [token_kind(t) for t in tokens]
        end, surname = 0, False
        while end < len(tokens) and strip_token(tokens[end]) not in OFFICES:  # "Mr. President"
            if kinds[end] == "word" and not surname and (cue in TITLES or (end and kinds[end - 1] in ("name", "unknown"))) and _surname_word(tokens[end]):
                surname = True
            elif not (kinds[end] in ("name", "unknown") or (end and len(tokens[end].rstrip(".")) == 1 and tokens[end][:1].isalpha())
                      or (kinds[end] == "place" and cue in SELF_CUES)
                      or (kinds[end] == "ambiguous" and tokens[end][:1].isupper())
                      or (kinds[end] in ("public", "place") and tokens[end][:1].isupper() and cue in SELF_CUES + TITLES)):
                break  # "a company called Google", "a town called Tavira": the public name
            end += 1
        if " ".join(strip_token(t) for t in tokens[:end]) in public_phrases():
            return None  # "named Monica Lewinsky"
        while end and len(tokens[end - 1].rstrip(".")) == 1 and kinds[end - 1] not in ("name", "unknown"):
            end -= 1  # a trailing one-letter word is no initial ("my name is anna a")
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


@cache
def lower_run_pattern() -> str:
    """Lowercase first names that are no common word, sentence word, group or place, each optionally followed by a
    word (and an initial): the candidates of `resolve_lowercase_run`. Built on first use, not at import: it needs
    every word list (about 0.1 s), which a process that never scrubs should not load."""
    first, _, _ = lexicon()
    listed = sorted(f for f in first if f.isalpha() and len(f) >= 3 and _plain(f, first))
    return r"(?P<v>(?-u:\b)(?:" + "|".join(listed) + r")(?:[ ](?:\p{Ll}\.?[ ])?\p{Ll}[\p{Ll}'’-]+)?(?-u:\b))"


def _plain(token: str, listed: frozenset[str]) -> bool:
    """A lowercase token in `listed` that is no common word, group, place or sentence word."""
    s = strip_token(token)
    _, _, words = lexicon()
    return s in listed and s not in words and s not in public_terms() and s not in small_places() and s not in SENTENCE_WORDS and len(s) >= 3


@lru_cache(maxsize=1 << 16)
def resolve_lowercase(value: str) -> tuple[int, int] | None:
    """Character span of a lowercase name after a person verb: a listed first name that is no common word, no group
    or place, then optionally a listed surname that is none either."""
    first, last, _ = lexicon()
    verb, _, rest = value.partition(" ")
    tokens = rest.strip().split(" ")
    offset = len(value) - len(rest.lstrip(" "))
    if not _plain(tokens[0], first):
        return None
    end = 2 if len(tokens) > 1 and (_plain(tokens[1], last) or _plain(tokens[1], first)) else 1
    sp = _char_span(tokens, (0, end))
    return (sp[0] + offset, sp[1] + offset) if sp else None


@lru_cache(maxsize=1 << 16)
def resolve_lowercase_run(value: str) -> tuple[int, int] | None:
    """Character span of a lowercase name in text written without capitals: a first name and a surname ("follow up
    with patricia desrosiers", "eric g. samoylova's"; the surname a listed one or no common word, group or place), or
    a listed first name of four letters or more alone ("martha had given sofie")."""
    _, _, words = lexicon()
    tokens = value.split(" ")
    surname = strip_token(tokens[-1])
    if " ".join(strip_token(t) for t in tokens) in public_phrases():
        return None
    if len(tokens) > 1 and surname not in SENTENCE_WORDS and surname not in words and len(surname) >= 2 and token_kind(surname) in ("name", "unknown"):
        return _char_span(tokens, (0, len(tokens)))
    # Alone (or before a common word): a Census first name of four letters or more that no list calls a word (the
    # world lists hold slang and foreign words: "hella", "fella", "mora").
    alone = strip_token(tokens[0])
    return _char_span(tokens, (0, 1)) if len(alone) >= 4 and alone in census()[0] and alone not in places() else None  # not "india"


# "My name is" in scripts without case, where no capital marks a name: the name right after (Han 2-4 characters,
# kana, Hangul 2-3 syllables, or one or two words in Devanagari, Arabic or Hebrew).
NATIVE_CUES = ("我的名字是", "我的名字叫", "我名叫", "我叫", "私の名前は", "わたしの名前は", "僕の名前は", "मेरा नाम", "اسمي", "إسمي", "שמי",
               "제 이름은", "내 이름은")
NATIVE_PATTERN = ("(?:" + "|".join(NATIVE_CUES) + r")[ ]?(?:\p{Han}{2,4}|[\p{Hiragana}\p{Katakana}]{2,8}|\p{Hangul}{2,3}"
                  r"|[\p{Devanagari}\p{Arabic}\p{Hebrew}]+(?:[ ][\p{Devanagari}\p{Arabic}\p{Hebrew}]+)?)")
# After 我叫 a verb reading ("I called", "I ordered") starts with one of these: no name follows.
_NOT_A_NAME_START = tuple("了你他她它们过着的辆个")


@lru_cache(maxsize=1 << 16)
def resolve_native_cue(value: str) -> tuple[int, int] | None:
    """Character span of the name after a native-script "my name is"."""
    cue = max((c for c in NATIVE_CUES if value.startswith(c)), key=len, default=None)
    if cue is None:
        return None
    start = len(cue) + (value[len(cue) : len(cue) + 1] == " ")
    return None if value[start:].startswith(_NOT_A_NAME_START) else (start, len(value))


def _char_span(tokens: list[str], span: tuple[int, int] | None) -> tuple[int, int] | None:
    if span is None:
        return None
    start = sum(len(t) + 1 for t in tokens[: span[0]])
    text = " ".join(tokens[span[0] : span[1]])
    stripped = re.sub(r"['’]s$", "", text.rstrip(".,;:!?\"")).rstrip("'’")
    if text.endswith(".") and (is_initial(tokens[span[1] - 1]) or strip_token(tokens[span[1] - 1]) in NAME_SUFFIXES):
        stripped = text
    return (start, start + len(stripped)) if stripped else None


def clear_caches() -> None:
    """Forget every cached decision, the word lists' included (after they were swapped, as the fidelity benchmark does)."""
    lexicon_module.clear_caches()
    for fn in (lower_run_pattern, maybe_name, resolve_capitalized, resolve_cued, resolve_lowercase, resolve_lowercase_run, resolve_native_cue):
        fn.cache_clear()
