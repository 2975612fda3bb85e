"""The vectorized scrubber: every rule runs as a few polars passes over the message texts.

Per rule: (1) rows that may match are picked with a cheap prefilter; (2) one `replace_all` wraps each
candidate in private-use markers; (3) the distinct wrapped candidates are resolved once each
(validate, then a keyed-hash surrogate); (4) one `replace_many` swaps them in. Wrapping makes the
literal swap hit only the matched occurrences, never the same letters inside another word, and
replacements are fenced so later rules do not re-scrub a surrogate.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

import polars as pl

from depsim_assets.core.privacy import names
from depsim_assets.core.privacy.rules import (
    DOC_NETS_V4,
    EXAMPLE_IBANS,
    RULES,
    SECRET_PREFIX,
    SURROGATE_DOMAINS,
    SURROGATE_FIRST,
    SURROGATE_LAST,
    TEST_CARDS,
    Rule,
    hmac_hex,
    surrogate_person,
)

OPEN, CLOSE = "\ue000", "\ue001"  # wrap a candidate for the duration of one rule
PROTECT_OPEN, PROTECT_CLOSE = "\ue002", "\ue003"  # fence a finished replacement until the end
MARKERS = f"[{OPEN}{CLOSE}{PROTECT_OPEN}{PROTECT_CLOSE}]"
# A wrapped candidate after a fence's opening and before its close: group 1 is everything up to the candidate.
_FENCED_CANDIDATE = f"({PROTECT_OPEN}[^{PROTECT_CLOSE}{OPEN}]*){OPEN}([^{CLOSE}]*){CLOSE}"
PARALLEL_SLICE = 50_000  # below this many messages per core, threads cost more than they save
COUNTS_SCHEMA = pl.Schema({"group": pl.String, "rule": pl.String, "entity": pl.String, "count": pl.UInt32})

SURROGATE_PATTERN = (
    r"(?i)(?:@(?:" + "|".join(d.replace(".", r"\.") for d in SURROGATE_DOMAINS) + r")\b"
    r"|555-01\d\d|" + SECRET_PREFIX + r"|^000-\d\d-\d{4}$|^2001:db8:|^\d{4}-01-01$|^01/01/\d\d$"
    r"|^(?:" + "|".join(d.replace(".", r"\.") for d in DOC_NETS_V4) + r")"
    r"|^(?:" + "|".join(TEST_CARDS + EXAMPLE_IBANS) + r")$)"
)
# Only first name + made-up surname: a real "Taylor" or "Jordan" alone is replaced like any other name.
SURROGATE_NAMES = frozenset(f"{f} {last}" for f in SURROGATE_FIRST for last in SURROGATE_LAST)


def is_surrogate(values: pl.Series) -> pl.Series:
    return values.str.replace_all(r"[ -]", "").is_in(list(TEST_CARDS + EXAMPLE_IBANS)) | values.str.contains(SURROGATE_PATTERN) | values.is_in(list(SURROGATE_NAMES))


def canonical(entity: str, value: str) -> str:
    """The form a value is keyed by, so "+1 (212) 867-5309" and "212.867.5309" get one surrogate."""
    if entity in ("PHONE_NUMBER", "CREDIT_CARD", "US_SSN"):
        digits = "".join(c for c in value if c.isdigit())
        return digits[1:] if entity == "PHONE_NUMBER" and len(digits) == 11 and digits.startswith("1") else digits
    if entity in ("EMAIL_ADDRESS", "IBAN_CODE"):
        return value.replace(" ", "").lower()
    return value


@dataclass(frozen=True)
class NameRule:
    """Person names: a candidate regex plus a span resolver (see names.py)."""

    name: str
    source: str | Callable[[], str]  # the candidate regex, or a function building it from the word lists on first use
    resolve: Callable[[str], tuple[int, int] | None]
    entity: str = "PERSON"
    prefilter: str | None = None
    literals: tuple[str, ...] = ()  # case-insensitive literal prefilter (faster than a regex one)
    # A cheaper pattern whose matches contain the candidates' names, and a test of one match: rows where no match
    # passes are skipped before the candidate regex (with its context capture) runs.
    screen: str | None = None
    screen_keep: Callable[[str], bool] | None = None
    without: str | None = None  # rows that match this are skipped (the lowercase-run rule reads only text without capitals)

    @property
    def pattern(self) -> str:
        return self.source if isinstance(self.source, str) else self.source()


NAME_RULES = (
    NameRule("person_cue", r"(?P<v>" + names.CUE_PATTERN + ")", names.resolve_cued, prefilter=names.CUE_PREFILTER),
    NameRule("person", r"(?P<v>" + names.CAPITALIZED + ")", names.resolve_capitalized, prefilter=r"\p{Lu}",
             screen=names.RUN, screen_keep=names.maybe_name),
    NameRule("person_lowercase", r"(?P<v>" + names.LOWER_PATTERN + ")", names.resolve_lowercase, prefilter=names.LOWER_PREFILTER),
    # Where a writer capitalizes nothing, case cannot mark a name: a listed first name and the word after it decide.
    NameRule("person_lowercase_run", names.lower_run_pattern, names.resolve_lowercase_run, without=r"\p{Lu}"),
    NameRule("person_native_cue", r"(?P<v>" + names.NATIVE_PATTERN + ")", names.resolve_native_cue, prefilter="|".join(names.NATIVE_CUES)),
)
ALL_RULES: tuple[Rule | NameRule, ...] = (*RULES, *NAME_RULES)


@dataclass
class Scrubber:
    key: bytes
    replacement: str = "surrogate"  # or "placeholder": [EMAIL_ADDRESS_3f2a]
    disabled: frozenset[str] = frozenset()
    rules: tuple[Rule | NameRule, ...] = field(default=ALL_RULES)

    def __post_init__(self) -> None:
        unknown = set(self.disabled) - {r.name for r in self.rules}
        if unknown:
            raise ValueError(f"unknown scrub rules in privacy.disabled_rules: {sorted(unknown)}")

    def _surrogate(self, rule: Rule | NameRule, value: str) -> str:
        h = hmac_hex(self.key, rule.entity, canonical(rule.entity, value))
        if self.replacement == "placeholder":
            return f"[{rule.entity}_{h[:6]}]"
        return surrogate_person(h, value) if isinstance(rule, NameRule) else rule.surrogate(h, value)

    @staticmethod
    def _name_span(rule: NameRule, value: str) -> tuple[int, int] | None:
        span = rule.resolve(value)
        return span if span and value[span[0] : span[1]] not in SURROGATE_NAMES else None

    def _resolve(self, rule: Rule | NameRule, values: pl.Series) -> tuple[list[str], list[bool]]:
        """Replacement text for each distinct candidate, and whether it was an identifier."""
        if isinstance(rule, NameRule):
            out, hit = [], []
            for v in values.to_list():
                span = self._name_span(rule, v)
                if span is None:
                    out.append(v)
                    hit.append(False)
                else:
                    name = v[span[0] : span[1]]
                    out.append(f"{v[: span[0]]}{PROTECT_OPEN}{self._surrogate(rule, name)}{PROTECT_CLOSE}{v[span[1]:]}")
                    hit.append(True)
            return out, hit
        valid = rule.validate(values) if rule.validate else pl.Series([True] * len(values))
        if rule.keep:
            return [f"{PROTECT_OPEN}{v}{PROTECT_CLOSE}" if ok else v for v, ok in zip(values.to_list(), valid.to_list())], valid.to_list()
        valid = (valid & ~is_surrogate(values)).to_list()
        out = [f"{PROTECT_OPEN}{self._surrogate(rule, v)}{PROTECT_CLOSE}" if ok else v for v, ok in zip(values.to_list(), valid)]
        return out, valid

    def scrub(self, texts: pl.Series, groups: pl.Series | None = None) -> tuple[pl.Series, pl.DataFrame]:
        """Scrubbed texts, and counts of replaced occurrences per (group, rule, entity).

        Large inputs are cut into one slice per core and scrubbed in threads: polars releases the GIL
        inside its string kernels, and a single-chunk column would otherwise use one core.
        """
        groups = groups if groups is not None else pl.Series("group", [""] * len(texts), dtype=pl.String)
        workers = min(os.cpu_count() or 1, max(1, len(texts) // PARALLEL_SLICE))
        if workers == 1:
            return self._scrub_slice(texts, groups)
        bounds = [len(texts) * i // workers for i in range(workers + 1)]
        slices = [(texts.slice(a, b - a), groups.slice(a, b - a)) for a, b in zip(bounds, bounds[1:])]
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(lambda tg: self._scrub_slice(*tg), slices))
        counts = pl.concat([c for _, c in parts]).group_by("group", "rule", "entity").agg(pl.col("count").sum()).sort("group", "rule")
        return pl.concat([t for t, _ in parts]), counts

    def _scrub_slice(self, texts: pl.Series, groups: pl.Series) -> tuple[pl.Series, pl.DataFrame]:
        frame = pl.DataFrame({"text": texts.str.replace_all(MARKERS, "").fill_null(""), "group": groups, "null": texts.is_null()})
        frame = frame.with_row_index("row")
        stats: list[pl.DataFrame] = []
        active = [r for r in self.rules if r.name not in self.disabled]
        # Most messages hold no digit: rules whose every match holds one run on the rows that do.
        for digits, group in groupby(active, key=lambda r: isinstance(r, Rule) and r.needs_digit):
            has = frame["text"].str.contains("[0-9]") if digits else None
            part = frame.filter(has) if has is not None else frame
            for rule in group:
                part, counts = self._apply(rule, part)
                stats.append(counts)
            frame = frame.filter(~has).vstack(part).rechunk() if has is not None else part
        out = frame.sort("row").select(
            pl.when(pl.col("null")).then(None).otherwise(pl.col("text").str.replace_all(MARKERS, "")).alias(texts.name or "text")
        ).to_series()
        counts = pl.concat(stats) if stats else COUNTS_SCHEMA.to_frame()
        return out, counts.group_by("group", "rule", "entity").agg(pl.col("count").sum()).sort("group", "rule")

    def _apply(self, rule: Rule | NameRule, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        if rule.literals:
            maybe = pl.col("text").str.contains_any(list(rule.literals), ascii_case_insensitive=True)
        else:
            maybe = pl.col("text").str.contains(rule.prefilter) if rule.prefilter else pl.lit(True)
        if isinstance(rule, NameRule) and rule.without:
            maybe = maybe & ~pl.col("text").str.contains(rule.without)
        empty = COUNTS_SCHEMA.to_frame()
        if isinstance(rule, NameRule):
            # Most capitalized runs are not names: find the distinct candidates first and rewrite only the rows
            # that hold one resolved as a name (wrapping every row with a capital cost a third of the filter's time).
            rows = frame.filter(maybe).select("row", "text")
            if rule.screen and rule.screen_keep:
                rows = _rows_with(rows, rule.screen, rule.screen_keep)
            rows = _rows_with(rows, rule.pattern, lambda v: self._name_span(rule, v) is not None)
            if rows.is_empty():
                return frame, empty
            maybe = pl.col("row").is_in(rows["row"].implode())
        hit = frame.filter(maybe)
        if hit.is_empty():
            return frame, empty
        repl = "${lead}" + OPEN + "${v}" + CLOSE if "(?P<lead>" in rule.pattern else OPEN + "${v}" + CLOSE
        wrapped = hit.with_columns(pl.col("text").str.replace_all(rule.pattern, repl))
        # A candidate inside a finished replacement is part of a surrogate ("REDACTED-SECRET-..." holds the cue word
        # "secret" and a capitalized dashed run): unwrap it, one candidate per fence per pass.
        while True:
            inside = wrapped["text"].str.contains(_FENCED_CANDIDATE)
            if not inside.any():
                break
            wrapped = wrapped.with_columns(pl.when(inside).then(pl.col("text").str.replace_all(_FENCED_CANDIDATE, "${1}${2}"))
                                           .otherwise(pl.col("text")))
        found = wrapped.select("group", pl.col("text").str.extract_all(OPEN + "[^" + CLOSE + "]*" + CLOSE).alias("c")).explode("c").drop_nulls("c")
        if found.is_empty():
            return frame, empty
        distinct = found["c"].unique()
        replacement, identified = self._resolve(rule, distinct.str.slice(1, distinct.str.len_chars() - 2))
        mapping = pl.DataFrame({"c": distinct, "r": replacement, "identified": identified})
        # Only identifiers are swapped; every other wrapped candidate just loses its markers, which keeps
        # the Aho-Corasick automaton small (most capitalized runs are not names).
        swap = mapping.filter("identified")
        text = pl.col("text").str.replace_many(swap["c"].to_list(), swap["r"].to_list()) if len(swap) else pl.col("text")
        wrapped = wrapped.with_columns(text.str.replace_all(f"[{OPEN}{CLOSE}]", ""))
        if isinstance(rule, Rule) and rule.keep:  # kept look-alikes are not replacements
            return _merge(frame, maybe, wrapped), empty
        counts = (
            found.join(swap, on="c")
            .group_by("group")
            .agg(pl.len().alias("count"))
            .with_columns(rule=pl.lit(rule.name), entity=pl.lit(rule.entity))
            .select("group", "rule", "entity", "count")
        )
        return _merge(frame, maybe, wrapped), counts


def _merge(frame: pl.DataFrame, changed: pl.Expr, rewritten: pl.DataFrame) -> pl.DataFrame:
    """The frame with the changed rows replaced, in one chunk: polars compiles a regex once per chunk, and the
    candidate patterns are large enough that fifty chunks made the name rule four times slower."""
    if len(rewritten) == len(frame):
        return rewritten.select(frame.columns)
    return frame.filter(~changed).vstack(rewritten.select(frame.columns)).rechunk()


def _rows_with(rows: pl.DataFrame, pattern: str, keep: Callable[[str], bool]) -> pl.DataFrame:
    """The rows holding a match of `pattern` that `keep` accepts (called once per distinct match)."""
    found = rows.select("row", pl.col("text").str.extract_all(pattern).alias("c")).explode("c").drop_nulls("c")
    kept = pl.Series([v for v in found["c"].unique().to_list() if keep(v)], dtype=pl.String)
    ids = found.filter(pl.col("c").is_in(kept.implode()))["row"].unique()
    return rows.filter(pl.col("row").is_in(ids.implode()))


def study_scrubber(key: bytes, privacy: Any) -> Scrubber:
    """The scrubber a study's `privacy:` section configures (replacement style, disabled rules)."""
    return Scrubber(key=key, replacement=privacy.replacement, disabled=frozenset(privacy.disabled_rules))
