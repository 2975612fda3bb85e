"""Scrub rules: a polars regex finds candidates, a validator keeps the real ones, a surrogate replaces them.

polars' regex engine has no lookaround, so a rule that needs context captures it in a `lead` group
that is kept verbatim, and checks that need arithmetic (Luhn, IBAN mod-97, SSN ranges) run on the
unique candidate values as polars expressions or small functions, never per message.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

FILTER_VERSION = "depsim-privacy-5"

# Reserved, cannot-be-real surrogate material: the checks allow-list exactly these.
SURROGATE_DOMAINS = ("example.com", "example.net", "example.org")
TEST_CARDS = (
    "4111111111111111", "4242424242424242", "4012888888881881", "5555555555554444",
    "5105105105105100", "378282246310005", "371449635398431", "6011111111111117",
    "3530111333300000", "2223003122003222",
)
EXAMPLE_IBANS = ("GB82WEST12345698765432", "DE89370400440532013000", "FR1420041010050500013M02606", "NL91ABNA0417164300")
DOC_NETS_V4 = ("192.0.2.", "198.51.100.", "203.0.113.")
SURROGATE_FIRST = ("Alex", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Avery", "Quinn", "Rowan", "Sawyer", "Emerson")
SURROGATE_LAST = ("Example", "Sample", "Placeholder", "Testwood", "Mockridge", "Fakely", "Specimen", "Dummyford")
SECRET_PREFIX = "REDACTED-SECRET-"
SURROGATE_STREETS = ("Example Street", "Sample Avenue", "Placeholder Road", "Test Lane")


def hmac_hex(key: bytes, kind: str, value: str) -> str:
    return hmac.new(key, f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()


def _pick(h: str, options: tuple[str, ...], offset: int = 0) -> str:
    return options[int(h[offset : offset + 8], 16) % len(options)]


# --- validators on a Series of unique candidates (vectorized where arithmetic allows) -------------


def luhn_valid(candidates: pl.Series) -> pl.Series:
    """Vectorized Luhn check on candidates with separators stripped."""
    digits = candidates.str.replace_all(r"[^0-9]", "")
    frame = pl.DataFrame({"d": digits}).with_row_index("row")
    per_digit = (
        frame.with_columns(pl.col("d").str.split("").alias("ch"))
        .explode("ch")
        .filter(pl.col("ch") != "")
        .with_columns(v=pl.col("ch").cast(pl.Int32), pos=pl.int_range(pl.len()).reverse().over("row"))
        .with_columns(v=pl.when(pl.col("pos") % 2 == 1).then(pl.col("v") * 2 - pl.when(pl.col("v") >= 5).then(9).otherwise(0)).otherwise(pl.col("v")))
        .group_by("row")
        .agg(total=pl.col("v").sum())
    )
    out = frame.join(per_digit, on="row", how="left").sort("row")
    return (out["total"].fill_null(1) % 10 == 0).alias("valid")


def card_valid(candidates: pl.Series) -> pl.Series:
    digits = candidates.str.replace_all(r"[^0-9]", "")
    # Visa, Mastercard, Amex, Diners, Discover, JCB (incl. 1800/2131), Maestro (50, 56-69), UnionPay.
    iin = digits.str.contains(r"^(?:4|5[0-5]|2[2-7]|3[47]|3[0689]|6|5[6-9]|35|1800|2131)")
    length = digits.str.len_chars().is_between(12, 19)
    return (luhn_valid(candidates) & iin & length).alias("valid")


def iban_valid_one(value: str) -> bool:
    s = value.replace(" ", "").upper()
    if not (15 <= len(s) <= 34) or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    moved = s[4:] + s[:4]
    try:
        return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1
    except ValueError:
        return False


def ssn_valid(candidates: pl.Series) -> pl.Series:
    d = candidates.str.replace_all(r"[^0-9]", "")
    area, group, serial = d.str.slice(0, 3), d.str.slice(3, 2), d.str.slice(5, 4)
    return ((d.str.len_chars() == 9) & ~area.is_in(["000", "666"]) & ~area.str.starts_with("9") & (group != "00") & (serial != "0000")).alias("valid")


def _isbn_valid(value: str, d: str) -> bool:
    if len(d) == 13 and d[:3] in ("978", "979"):
        return sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(d)) % 10 == 0
    # ISBN-10 only in its hyphenated shape (a one-character check group last): a bare 10-digit
    # checksum passes by chance for 1 phone number in 11.
    if len(d) == 10 and "-" in value and len(value.rsplit("-", 1)[-1]) == 1:
        return sum((10 - i) * int(c) for i, c in enumerate(d)) % 11 == 0
    return False


_DATE_LIKE = re.compile(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b|\b\d{1,2}[-/.]\d{1,2}[-/.]\d{4}$")
_DECIMAL = re.compile(r"^\d{1,7}[.,]\d{1,2}$")


def phone_valid_one(value: str) -> bool:
    digits = "".join(c for c in value if c.isdigit())
    if not 7 <= len(digits) <= 15:
        return False
    if value.startswith("+") or "(" in value:
        return True
    if _DATE_LIKE.search(value) or _DECIMAL.match(value):
        return False  # 2023-04-01 10:00 or 28390.22: a timestamp or an amount
    groups = [g for g in value.replace(".", " ").replace("-", " ").split() if g]
    if len(groups) == 3 and len(groups[0]) == 4 and len(groups[1]) <= 2 and len(groups[2]) <= 2:
        return False  # 2023-04-01: a date
    if len(groups) == 3 and len(groups[2]) == 4 and len(groups[0]) <= 2 and len(groups[1]) <= 2:
        return False  # 01.04.2023
    return not _isbn_valid(value, digits)


def ip_valid_one(value: str) -> bool:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    if address.version == 4 and private_ip_one(value):
        return False  # 192.168.1.10 is a router in every home; an IPv6 link-local address can embed a MAC: replaced
    # 1.2.3.4-shaped values are version numbers far more often than hosts (and 8.8.8.8-style
    # single-digit hosts are public resolvers, not personal data).
    return not all(len(octet) == 1 for octet in value.split(".")) if "." in value else True


def entropy_ok_one(value: str) -> bool:
    """A cue-adjacent value looks like a secret: long enough, varied, not a plain word (a word ending a
    sentence, "password vulnerabilities.", is still a word)."""
    value = value.rstrip(".,!?;:")
    if len(value) < 8 or value.isalpha() and value.islower():
        return False
    counts = Counter(value)
    h = -sum(c / len(value) * math.log2(c / len(value)) for c in counts.values())
    classes = sum(any(f(c) for c in value) for f in (str.islower, str.isupper, str.isdigit)) + any(not c.isalnum() for c in value)
    return h >= 3.0 and classes >= 2


def isbn_valid_one(value: str) -> bool:
    return _isbn_valid(value, "".join(c for c in value if c.isdigit()))


def private_ip_one(value: str) -> bool:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local


def _keep(h: str, value: str) -> str:
    return value


def _per_value(fn: Callable[[str], bool]) -> Callable[[pl.Series], pl.Series]:
    return lambda s: pl.Series("valid", [fn(v) for v in s.to_list()], dtype=pl.Boolean)


# --- surrogates: same value + key -> same surrogate; always from reserved ranges ------------------


def surrogate_email(h: str, value: str) -> str:
    return f"{_pick(h, SURROGATE_FIRST).lower()}.{_pick(h, SURROGATE_LAST, 8).lower()}{int(h[16:20], 16) % 100}@{_pick(h, SURROGATE_DOMAINS, 20)}"


def surrogate_phone(h: str, value: str) -> str:
    area = 201 + int(h[:6], 16) % 779
    return f"+1-{area}-555-01{int(h[6:10], 16) % 100:02d}"


def surrogate_card(h: str, value: str) -> str:
    return _pick(h, TEST_CARDS)


def surrogate_iban(h: str, value: str) -> str:
    return _pick(h, EXAMPLE_IBANS)


def surrogate_ssn(h: str, value: str) -> str:
    return f"000-{int(h[:4], 16) % 90 + 10:02d}-{int(h[4:8], 16) % 9000 + 1000:04d}"


def surrogate_ip(h: str, value: str) -> str:
    if ":" in value:
        return f"2001:db8::{int(h[:4], 16):x}:{int(h[4:8], 16):x}"
    return f"{_pick(h, DOC_NETS_V4)}{int(h[8:10], 16) % 254 + 1}"


def surrogate_secret(h: str, value: str) -> str:
    return f"{SECRET_PREFIX}{h[:12]}"


def surrogate_address(h: str, value: str) -> str:
    return f"{int(h[:4], 16) % 9000 + 100} {_pick(h, SURROGATE_STREETS, 4)}"


def surrogate_dob(h: str, value: str) -> str:
    """The year stays (it says how old someone is, and identifies no one on its own); day and month go."""
    year = re.search(r"\d{4}", value)
    return f"{year.group()}-01-01" if year else f"01/01/{value[-2:]}"


def surrogate_person(h: str, value: str) -> str:
    """Always a first name and a made-up surname: a lone first name would be a real one too ("Taylor"), and the
    scrubber could then not tell a surrogate it wrote from a person of that name."""
    return f"{_pick(h, SURROGATE_FIRST)} {_pick(h, SURROGATE_LAST, 8)}"


def ascii_classes(pattern: str) -> str:
    """Rewrite \\d, \\w, \\s and \\b as their ASCII forms.

    polars' regex engine treats them as Unicode classes, which keeps it off its fast DFA path (a
    Unicode \\b in particular); structured identifiers are ASCII, so nothing is lost.
    """
    out, in_class, i = [], False, 0
    outside = {"d": "[0-9]", "w": "[0-9A-Za-z_]", "s": "[\\t\\n\\f\\r ]", "b": "(?-u:\\b)"}
    inside = {"d": "0-9", "w": "0-9A-Za-z_", "s": "\\t\\n\\f\\r "}
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            table = inside if in_class else outside
            out.append(table.get(nxt, ch + nxt))
            i += 2
            continue
        if ch == "[" and not in_class:
            in_class = True
        elif ch == "]" and in_class:
            in_class = False
        out.append(ch)
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class Rule:
    name: str
    entity: str
    pattern: str  # polars regex with a `v` group (the value) and optionally a `lead` group kept verbatim
    surrogate: Callable[[str, str], str]
    prefilter: str | None = None  # cheap regex that every match must contain
    validate: Callable[[pl.Series], pl.Series] | None = None
    # A look-alike that must survive: a valid match is fenced as it is, so no later rule takes it for an identifier.
    keep: bool = False
    literals: tuple[str, ...] = ()  # case-insensitive literal prefilter (Aho-Corasick), instead of `prefilter`

    @property
    def needs_digit(self) -> bool:
        """Every match holds an ASCII digit: the scrubber runs the rule only on rows that have one."""
        return self.name in DIGIT_RULES

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", ascii_classes(self.pattern))
        if self.prefilter:
            object.__setattr__(self, "prefilter", ascii_classes(self.prefilter))


_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DATE = (r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d{2})"
         r"|\d{1,2}(?:st|nd|rd|th)? " + _MONTH + r",? \d{4}|" + _MONTH + r" \d{1,2}(?:st|nd|rd|th)?,? \d{4}")
# "Not preceded by a word char, dot, slash, @, dash or a protected surrogate": no lookbehind in polars.
_B = r"(?P<lead>^|[^\w./@\-\x{E002}$€£¥])"
# Cards also not after "+": "+44 20 7946 0321" is a phone number even when its digits pass Luhn.
_B_NOT_AFTER_PLUS = r"(?P<lead>^|[^\w./@+\-\x{E002}$€£¥])"
# Numbers that look like phones or cards but are not personal: kept before any identifier rule runs.
_REFERENCE_CUE = (r"(?i)(?P<lead>\b(?:tracking|order|invoice|confirmation|reference|ref|booking|reservation|ticket|shipment|parcel|"
                  r"package|waybill|airway bill|po|isbn(?:-1[03])?)\b(?:[ ]?(?:number|no\.?|num|id|code|#))?[ ]?[:#]?[ ]?)")
_LOOKALIKE_SHAPES = (r"\d{3}-\d{7}-\d{7}"  # an Amazon order number
                     r"|1Z[0-9A-Z]{16}"  # a UPS tracking number
                     r"|97[89](?:-?\d){10}"  # an ISBN-13 (validated)
                     r"|(?:10|127|172|192|169)(?:\.\d{1,3}){3}"  # a private-range IPv4 address (validated)
                     r"|\d{1,2}:\d{2}:\d{2}[.,]\d{1,9}")  # a time with fractions of a second ("07:40:55.228475" is no phone)


def lookalike_valid_one(value: str) -> bool:
    if ":" in value:
        return True  # a time of day
    if "." in value:
        return private_ip_one(value)  # 192.168.1.10 identifies no one; a public address is left to the IP rule
    if value.startswith("97") and len(value.replace("-", "")) == 13:
        return isbn_valid_one(value)
    return True


KEEP_RULES: tuple[Rule, ...] = (
    # One pass for every fixed shape; kept whole so the phone and card rules cannot read them.
    Rule("keep_lookalike", "KEPT", r"(?P<lead>^|[^\w.])(?P<v>" + _LOOKALIKE_SHAPES + r")\b", _keep, r"\d\.\d|\d{3}|1Z",
         _per_value(lookalike_valid_one), keep=True),
    # After "tracking number", "order #", "ISBN": the reference itself (digits and capitals, 8-34 long).
    Rule("keep_reference", "KEPT", _REFERENCE_CUE + r"(?P<v>[0-9][0-9A-Z-]{6,33}[0-9A-Z]|[A-Z]{1,4}-?[0-9][0-9A-Z-]{6,30}[0-9A-Z])\b", _keep,
         literals=("tracking", "order ", "order#", "order:", "order no", "invoice", "confirmation", "reference", "ref ", "ref#", "ref:",
                   "ref.", "booking", "reservation", "ticket", "shipment", "parcel", "package", "waybill", "airway bill", "po ",
                   "po#", "po:", "isbn"), keep=True),
)
RULES: tuple[Rule, ...] = (
    *KEEP_RULES,
    Rule("private_key", "SECRET", r"(?s)(?P<v>-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----)", surrogate_secret, "-----BEGIN"),
    Rule("jwt", "SECRET", r"(?P<v>\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})", surrogate_secret, "eyJ"),
    Rule("api_key", "SECRET",
         r"(?P<v>\b(?:sk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_-]{20,}|(?:AKIA|ASIA)[A-Z0-9]{16}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|sk_live_[A-Za-z0-9]{20,}|https://hooks\.slack\.com/services/[A-Za-z0-9/_-]{20,})\b)",
         surrogate_secret, r"sk-|AKIA|ASIA|gh[pousr]_|github_pat_|xox|AIza|sk_live_|hooks\.slack\.com"),
    Rule("url_credentials", "SECRET", r"(?P<lead>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<v>[^\s/:@]+:[^\s/@]+)@", surrogate_secret, "://"),
    Rule("url_token", "SECRET",
         r"(?i)(?P<lead>[?&#](?:access_token|id_token|refresh_token|token|api_key|apikey|key|sig|signature|password|passwd|secret|auth|client_secret|session)=)(?P<v>[^&\s#\"']{6,})",
         surrogate_secret, literals=("token=", "key=", "sig=", "signature=", "password=", "passwd=", "secret=", "auth=", "session=")),  # not "?": every question has one
    # The cue may end a snake_case name (aws_secret_access_key).
    Rule("cue_secret", "SECRET",
         r"(?i)(?P<lead>(?:\b|_)(?:password|passwd|pwd|passcode|secret|token|api[_ -]?key|secret[_ -]?access[_ -]?key|access[_ -]?key|secret[_ -]?key|auth[_ -]?token|bearer)\b[\"']?\s*(?:[:=]|is)?\s*[\"']?)(?P<v>[A-Za-z0-9+/_\-.!@#$%^&*]{8,})",
         surrogate_secret, r"(?i)pass|pwd|secret|token|key|bearer", _per_value(entropy_ok_one)),
    # "password: hunter2": after an explicit separator the next token is the password, however short or plain.
    Rule("password_cue", "SECRET", r"(?i)(?P<lead>\b(?:password|passwd|pwd|passcode|pin)\s*[:=]\s*[\"']?)(?P<v>[^\s\"',;\x{E002}\x{E003}]{4,64})",
         surrogate_secret, r"(?i)pass|pwd|pin"),
    Rule("email", "EMAIL_ADDRESS", r"(?P<v>\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b)", surrogate_email, "@"),
    Rule("iban", "IBAN_CODE", r"(?i)(?P<v>\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b)", surrogate_iban, r"(?i)[A-Z]{2}\d{2}", _per_value(iban_valid_one)),
    Rule("date_of_birth", "DATE_OF_BIRTH",
         r"(?i)(?P<lead>\b(?:date of birth|birth ?date|dob|d\.o\.b\.?|born(?: on)?)\s*[:\-]?\s*)(?P<v>" + _DATE + r")\b",
         surrogate_dob, r"(?i)birth|dob|d\.o\.b|born"),
    Rule("iban_strict", "IBAN_CODE", r"(?P<v>\b[A-Z]{2}\d{2}(?:[A-Z0-9]{10,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)\b)", surrogate_iban,
         r"[A-Z]{2}\d{2}", _per_value(iban_valid_one)),
    Rule("credit_card", "CREDIT_CARD", _B_NOT_AFTER_PLUS + r"(?P<v>\d(?:[ -]?\d){11,18}|\d{4}\.\d{4}\.\d{4}\.\d{1,7})\b", surrogate_card,
         r"\d{4}[ .-]?\d{4}[ .-]?\d{4}", card_valid),
    Rule("ssn", "US_SSN", _B + r"(?P<v>\d{3}[- ]\d{2}[- ]\d{4})\b", surrogate_ssn, r"\d{3}[- ]\d{2}[- ]\d{4}", ssn_valid),
    Rule("ssn_cue", "US_SSN", r"(?i)(?P<lead>\b(?:ssn|social security(?: number| no\.?)?)\W{0,4})(?P<v>\d{9})\b", surrogate_ssn, r"\d{9}", ssn_valid),
    Rule("ipv4", "IP_ADDRESS", _B + r"(?P<v>(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3})\b", surrogate_ip, r"\d\.\d", _per_value(ip_valid_one)),
    Rule("ipv6", "IP_ADDRESS", r"(?P<v>\b(?:[0-9A-Fa-f]{1,4}:){1,7}(?:(?::?[0-9A-Fa-f]{1,4}){1,7}|:))", surrogate_ip, r"[0-9A-Fa-f]:[0-9A-Fa-f:]", _per_value(ip_valid_one)),
    Rule("phone", "PHONE_NUMBER",
         _B + r"(?P<v>(?:\+\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{1,5}|(?:\(\d{1,4}\)[\s.-]?)?\d{2,5})(?:[\s.-]\d{2,6}){0,3}[\s.-]\d{2,8}(?:-\d\b)?(?:\s?(?:x|ext\.?)\s?\d{1,5})?|\+\d{7,15}|\(\d{2,4}\)\s?\d{3,4}[\s.-]?\d{3,4})\b",
         surrogate_phone, r"\d{2}[\s.)-]", _per_value(phone_valid_one)),
    Rule("phone_cue", "PHONE_NUMBER",
         r"(?i)(?P<lead>\b(?:phone|tel|telephone|mobile|cell|call|text|fax|whatsapp|number|contact)\b[^\d\n]{0,20})(?P<v>\+?\d{7,15})\b",
         surrogate_phone, r"\d{7}"),
    Rule("street_address", "STREET_ADDRESS",
         r"(?P<v>\b\d{1,6}(?:[ ][A-Z][\w'.-]*){1,4} (?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Square|Sq|Terrace|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Trail|Crescent|Close)\b\.?(?:,? (?:Apt|Suite|Unit|#)\.? ?\w+)?)",
         surrogate_address, r"\d [A-Z]"),
)
# Every match of these holds an ASCII digit (`ascii_classes` made their \\d [0-9]).
DIGIT_RULES = frozenset({"keep_lookalike", "keep_reference", "iban", "date_of_birth", "iban_strict", "credit_card", "ssn", "ssn_cue",
                         "ipv4", "phone", "phone_cue", "street_address"})
RULES_BY_NAME = {r.name: r for r in RULES}
