"""The privacy gate: an independent detector that runs on the scrubber's output, plus canaries.

Built differently from the scrubber on purpose: it tokenizes digit runs and normalizes them before
checking structure (instead of matching formatted shapes), uses broader e-mail and secret patterns,
and looks for every planted canary value literally. It shares only the allow-list of surrogates.
If it finds anything, the de-identification asset raises before it returns, so nothing is stored.
"""

from __future__ import annotations

import ipaddress
import math
from collections import Counter
from dataclasses import dataclass

import polars as pl

from depsim_assets.core.privacy.lexicon import lexicon
from depsim_assets.core.privacy.rules import (
    DOC_NETS_V4,
    EXAMPLE_IBANS,
    SECRET_PREFIX,
    SURROGATE_FIRST,
    SURROGATE_LAST,
    TEST_CARDS,
    hmac_hex,
    iban_valid_one,
    luhn_valid,
)

_EMAIL = r"[^\s@<>()\[\]\"',;:]+@[^\s@<>()\[\]\"',;:]+\.[A-Za-z]{2,}"
_SECRET = (
    r"sk-[A-Za-z0-9_-]{16,}|(?:AKIA|ASIA)[0-9A-Z]{12,}|gh[pousr]_[0-9A-Za-z]{30,}|github_pat_\w{30,}"
    r"|xox[abprs]-[\w-]{8,}|AIza[\w-]{30,}|eyJ[\w-]{6,}\.eyJ[\w-]{6,}\.[\w-]{6,}|-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|hooks\.slack\.com/services/[\w/-]{16,}|(?i:secret_access_key\W{1,4}[A-Za-z0-9/+]{30,})"
)
# A date after a birth cue; a surrogate keeps only the year (YYYY-01-01).
_DOB = (r"(?i)(?:date of birth|birth ?date|\bdob|born on)\W{0,3}(\d{1,4}[-/.]\d{1,2}[-/.]\d{2,4}"
        r"|\d{1,2}(?:st|nd|rd|th)? [a-z]{3,9}\.?,? \d{4}|[a-z]{3,9}\.? \d{1,2}(?:st|nd|rd|th)?,? \d{4})")
# Digit runs with common separators, taken whole and judged after stripping the separators.
_DIGIT_RUN = r"\+?\(?\d[\d ().-]{7,24}\d"
_IPV4 = r"(?:\d{1,3}\.){3}\d{1,3}"
_IBAN = r"\b[A-Z]{2}\d{2}[A-Z0-9 ]{11,40}\b"


# Where people name themselves ("name:" and "call me" are not here: "name: str" in code, "call me asap"); whatever word follows, in any case, is a name unless it is a common English word or a
# surrogate (the scrubber decides names by lists and context; this asks only "is this a word?").
_SELF_NAME = r"(?i)(?:\bmy name is|\bmy name's)[ \t]+([\p{L}'’-]{2,}(?:[ \t][\p{L}'’-]{2,})?)"
# A value after a secret's name and "=" or ":", judged by its character entropy, not its shape.
_SECRET_VALUE = r"(?i)(?:key|token|secret|passw(?:or)?d|pwd|credential)s?[\"']?[ \t]*[:=][ \t]*[\"']?([A-Za-z0-9+/=_.\-]{16,})"
_SURROGATE_WORDS = frozenset(w.lower() for w in SURROGATE_FIRST + SURROGATE_LAST)


def _name_findings(values: pl.Series) -> list[Finding]:
    _, _, words = lexicon()
    out = []
    for v in values.to_list():
        tokens = [t.strip("'’-").lower() for t in v.split()]
        if tokens and tokens[0] not in words and not all(t in _SURROGATE_WORDS for t in tokens):
            out.append(Finding("PERSON", v))
    return out


def _entropy_bits(value: str) -> float:
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def _secret_value_findings(values: pl.Series) -> list[Finding]:
    """High-entropy values (>= 3.5 bits a character, letters and digits mixed) that are no surrogate."""
    return [Finding("SECRET", v) for v in values.to_list()
            if not v.startswith(SECRET_PREFIX) and _entropy_bits(v) >= 3.5 and any(c.isdigit() for c in v) and any(c.isalpha() for c in v)]


@dataclass(frozen=True)
class Finding:
    kind: str
    value: str


def _allowed_email(v: str) -> bool:
    return v.lower().rsplit("@", 1)[-1].rstrip(".") in ("example.com", "example.net", "example.org")


def _digit_findings(runs: pl.Series) -> list[Finding]:
    """Card numbers (Luhn, not a test card) and US SSNs (9 digits in 3-2-4 form, issuable range)."""
    if runs.is_empty():
        return []
    digits = runs.str.replace_all(r"[^0-9]", "")
    out: list[Finding] = []
    is_card_len = digits.str.len_chars().is_between(13, 19) & ~digits.str.starts_with("9")
    # Cards are written whole or in groups of 4 (Amex 4-6-5); an order number's 3-7-7 groups are not a card.
    grouped = runs.str.contains(r"^\d+$") | runs.str.contains(r"^\d{4}(?:[ .-]\d{4}){2,3}(?:[ .-]\d{1,4})?$") | runs.str.contains(r"^\d{4}[ -]\d{6}[ -]\d{5}$")
    cards = runs.filter(is_card_len & grouped & luhn_valid(runs) & ~digits.is_in(list(TEST_CARDS)))
    out += [Finding("CREDIT_CARD", v) for v in cards.to_list()]
    ssn = runs.filter(runs.str.contains(r"^\d{3}-\d{2}-\d{4}$") & ~runs.str.contains(r"^(?:000|666|9)"))
    out += [Finding("US_SSN", v) for v in ssn.to_list()]
    return out


def _phone_findings(runs: pl.Series) -> list[Finding]:
    """International numbers (+country code, 8-15 digits) outside the reserved 555-01xx surrogate range."""
    digits = runs.str.replace_all(r"[^0-9]", "")
    phones = runs.filter(runs.str.starts_with("+") & digits.str.len_chars().is_between(8, 15) & ~runs.str.contains(r"555-01\d\d$")
                         & ~digits.is_in(list(TEST_CARDS)))
    return [Finding("PHONE_NUMBER", v) for v in phones.to_list()]


def _iban_findings(candidates: pl.Series) -> list[Finding]:
    """A valid IBAN at the start of each candidate, trailing words (a BIC, the next word) cut one at a time."""
    out = []
    for value in candidates.to_list():
        tokens = value.split(" ")
        for end in range(len(tokens), 0, -1):
            head = " ".join(tokens[:end])
            if len(head.replace(" ", "")) >= 15 and iban_valid_one(head):
                if head.replace(" ", "") not in EXAMPLE_IBANS:
                    out.append(Finding("IBAN_CODE", head))
                break
    return out


def scan(texts: pl.Series, canaries: list[str] = ()) -> list[Finding]:
    """Every identifier or canary found in `texts` (surrogates from reserved ranges are allowed)."""
    texts = texts.drop_nulls()
    findings: list[Finding] = []
    if canaries:
        hit = texts.str.contains_any(list(canaries))
        found = texts.filter(hit).str.extract_many(list(canaries)).explode().drop_nulls().unique()
        findings += [Finding("CANARY", v) for v in found.to_list()]
    emails = texts.str.extract_all(_EMAIL).explode().drop_nulls().unique()
    findings += [Finding("EMAIL_ADDRESS", v) for v in emails.to_list() if not _allowed_email(v)]
    secrets = texts.str.extract_all(_SECRET).explode().drop_nulls().unique()
    findings += [Finding("SECRET", v) for v in secrets.to_list()]
    runs = texts.str.extract_all(_DIGIT_RUN).explode().drop_nulls().unique().str.strip_chars(" .-()")
    findings += _digit_findings(runs) + _phone_findings(runs)
    births = texts.str.extract_all(_DOB).explode().drop_nulls().unique()
    births = births.str.extract(_DOB, 1)
    findings += [Finding("DATE_OF_BIRTH", v) for v in births.drop_nulls().to_list() if not v.endswith("-01-01")]
    ips = texts.str.extract_all(_IPV4).explode().drop_nulls().unique()
    for ip in ips.to_list():
        octets = ip.split(".")
        if all(o.isdigit() and int(o) <= 255 for o in octets) and not ip.startswith(DOC_NETS_V4) and not all(len(o) == 1 for o in octets):
            if not ipaddress.ip_address(".".join(str(int(o)) for o in octets)).is_private and not ip.startswith("0."):
                findings.append(Finding("IP_ADDRESS", ip))  # private and loopback ranges identify no one
    ibans = texts.str.extract_all(_IBAN).explode().drop_nulls().unique()
    findings += _iban_findings(ibans)
    findings += _name_findings(texts.str.extract_all(_SELF_NAME).explode().drop_nulls().unique().str.extract(_SELF_NAME, 1))
    known = [f.value for f in findings if f.kind == "SECRET"]
    findings += [f for f in _secret_value_findings(texts.str.extract_all(_SECRET_VALUE).explode().drop_nulls().unique().str.extract(_SECRET_VALUE, 1))
                 if not any(f.value in k for k in known)]  # one finding per secret that a known prefix also found
    return findings


class PrivacyGateError(RuntimeError):
    """Raised inside the de-identification asset when residual PII or a canary survives scrubbing."""


# --- canaries -------------------------------------------------------------------------------------


def _luhn_complete(prefix: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(prefix + "0")):
        v = int(ch)
        if i % 2 == 1:
            v = v * 2 - 9 if v * 2 > 9 else v * 2
        total += v
    return prefix + str((10 - total % 10) % 10)


def canary_values(key: bytes, index: int) -> dict[str, str]:
    """Known PII for canary `index`, derived from the key so it differs per deployment."""
    h = hmac_hex(key, "canary", str(index))
    n = [int(h[i : i + 2], 16) for i in range(0, 40, 2)]
    digits = "".join(str(x % 10) for x in n)
    return {
        "PERSON": f"Margarethe {('Vollstedt', 'Quincannon', 'Abernathy')[index % 3]}",
        "EMAIL_ADDRESS": f"m.canary{h[:6]}@mailbox-{h[6:10]}.com",
        "PHONE_NUMBER": f"+44 20 7946 {digits[:4]}",
        "CREDIT_CARD": _luhn_complete("4" + digits[:14]),
        "US_SSN": f"{123 + n[0] % 500:03d}-{10 + n[1] % 80:02d}-{1000 + int(h[10:14], 16) % 8999:04d}",
        "IP_ADDRESS": f"{11 + n[2] % 80}.{n[3]}.{n[4]}.{10 + n[5] % 200}",
        "SECRET": f"AKIA{h[14:30].upper()}",
    }


def canary_conversations(key: bytes, count: int) -> list[dict[str, object]]:
    rows = []
    for i in range(count):
        v = canary_values(key, i)
        user = (
            f"Hi, I'm {v['PERSON']}. Email me at {v['EMAIL_ADDRESS']} or call {v['PHONE_NUMBER']}. "
            f"My card is {v['CREDIT_CARD']}, SSN {v['US_SSN']}, my server is {v['IP_ADDRESS']} and the key is {v['SECRET']}."
        )
        rows.append({"conversation_id": f"__canary__:{i}", "values": v, "messages": [
            {"role": "user", "content": user, "tool_calls": None, "tool_call_id": None, "name": None},
            {"role": "assistant", "content": f"Thanks {v['PERSON'].split()[0]}, noted.", "tool_calls": None, "tool_call_id": None, "name": None},
        ]})
    return rows
