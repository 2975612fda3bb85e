"""Each scrub rule on positive and negative examples; surrogates; the look-alike corpus."""

import re

import polars as pl
import pytest

from depsim_assets.core.privacy.gate import scan
from depsim_assets.core.privacy.names import resolve_capitalized, resolve_cued
from depsim_assets.core.privacy.rules import (
    card_valid,
    hmac_hex,
    iban_valid_one,
    luhn_valid,
    ssn_valid,
)
from depsim_assets.core.privacy.scrub import Scrubber, is_surrogate
from tests.conftest import TESTS

KEY = b"unit-test-key"


def scrub(*texts: str, **kw) -> list[str]:
    out, _ = Scrubber(key=KEY, **kw).scrub(pl.Series("t", list(texts)))
    return out.to_list()


POSITIVE = [
    ("EMAIL", "write to jane.q.public+tag@mail.co.uk today", "jane.q.public+tag@mail.co.uk"),
    ("PHONE intl", "call +44 20 7946 0958 now", "7946 0958"),
    ("PHONE nanp", "my cell is (415) 555-2671.", "555-2671"),
    ("PHONE dots", "fax 01.84.17.61.18 please", "01.84.17.61.18"),
    ("PHONE cue", "phone number: 4155552671", "4155552671"),
    ("CARD spaced", "card 4539 1488 0343 6467 exp 09/27", "4539 1488 0343 6467"),
    ("CARD amex", "amex 3412 345678 90127", "345678"),
    ("IBAN", "IBAN DE44 5001 0517 5407 3249 31 thanks", "DE44 5001 0517 5407 3249 31"),
    ("SSN", "SSN 123-45-6789.", "123-45-6789"),
    ("SSN cue", "social security number 123456789", "123456789"),
    ("IPv4", "ssh into 81.2.69.160 now", "81.2.69.160"),
    ("IPv6", "host fe80::1ff:fe23:4567:890a up", "fe80::1ff:fe23:4567:890a"),
    ("AWS", "key AKIAIOSFODNN7EXAMPLE in env", "AKIAIOSFODNN7EXAMPLE"),
    ("sk-", "OPENAI_API_KEY=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t", "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t"),
    ("GitHub", "token ghp_1234567890abcdefghijABCDEFGHIJ123456", "ghp_1234567890abcdefghijABCDEFGHIJ123456"),
    ("JWT", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N", "dozjgNryP4J3jVmNHl0w5N"),
    ("private key", "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "MIIEow"),
    ("cue secret", "my password: Tr0ub4dor&3xyz", "Tr0ub4dor&3xyz"),
    ("url creds", "clone https://alice:s3cretPw@git.example.io/repo", "alice:s3cretPw"),
    ("url token", "GET https://api.site.io/v1?user=1&access_token=9f8e7d6c5b4a", "9f8e7d6c5b4a"),
    ("address", "ship to 742 Evergreen Terrace, Springfield", "742 Evergreen Terrace"),
    ("name full", "I met Margaret Thornbury at the station", "Margaret Thornbury"),
    ("name cue", "my name is lena andersson", "lena andersson"),
    ("name title", "ask Dr. Okonkwo about it", "Okonkwo"),
    ("name mid", "She named him Frank", "Frank"),
    ("name speaker", "John: You saved my life!", "John"),
    ("IBAN then BIC", "IBAN BE68539007547034 GKCCBEBB please", "BE68539007547034"),
    ("IBAN then word", "pay BE68 5390 0754 7034 today", "5390 0754 7034"),
    ("PHONE 1-digit area", "Tokyo office +81 3-1234-5678", "1234-5678"),
    ("PHONE FR", "appelez +33 1 23 45 67 89", "23 45 67 89"),
    ("PHONE ext", "call +1 415 555 2671 x818", "2671"),
    ("AWS secret", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
    ("Slack webhook", "post to https://hooks.slack.com/services/T0000AAAA/B0000BBBB/XXXXXXXXXXXXXXXXXXXXXXXX", "T0000AAAA"),
    ("token fragment", "redirect https://app.io/cb#access_token=abc123def456&state=1", "abc123def456"),
    ("short password", "my password: hunter2 ok", "hunter2"),
    ("CARD dotted", "card 4539.1488.0343.6467 exp", "1488.0343"),
    ("DOB iso", "date of birth: 1985-03-12", "03-12"),
    ("DOB words", "I was born on March 3rd, 1985", "March 3rd"),
]


@pytest.mark.parametrize(("label", "text", "secret"), POSITIVE, ids=[p[0] for p in POSITIVE])
def test_rule_removes_identifier(label: str, text: str, secret: str) -> None:
    (out,) = scrub(text)
    assert secret not in out, (label, out)
    assert out.strip(), "a scrubbed message must not be emptied"


NEGATIVE = [
    "ISBN 978-3-16-148410-0 is the book",
    "order 4539148803436468 shipped",  # 16 digits failing Luhn
    "released on 2023-04-01 10:22:31",
    "upgrade to version 1.2.3.4 first",
    "it costs $1,299.99 or USD 28390.22",
    "What's the best way to gut a fish?",
    "Will you come in May? Grace under pressure.",
    "Use YouTube or TurboTax for that.",
    "The reply was 'hmm' and then 'okay'.",
    "contact support@example.com or +1-415-555-0142",  # already reserved surrogates
    "I was born in 1985 and the password reset flow is broken",  # a year alone; a cue without a value
    "The pin is in the drawer.",
    "search for weak password vulnerabilities.",  # a word that ends the sentence after a cue is not a secret
    # Look-alike numbers kept whole (the phone rule used to take the first ten digits of each).
    "My Amazon order 114-3941689-8772232 never came.",
    "FedEx tracking number 449044304137 says delayed.",
    "UPS 1Z999AA10123456784 is stuck in Memphis",
    "the book's ISBN is 9780306406157",
    "Invoice no. 20231145 is unpaid",
    "Why can't I reach the router at 192.168.1.10?",
    "ssh to 172.20.4.31 and 10.0.0.254 first",
    "date: 2019-02-03 07:40:55.228475 ok",  # a time with microseconds is no phone number
]


@pytest.mark.parametrize("text", NEGATIVE)
def test_look_alikes_and_surrogates_survive(text: str) -> None:
    assert scrub(text) == [text]


def test_fidelity_corpus_does_not_regress() -> None:
    """The committed corpus of public entities and look-alike numbers (scripts/build_fidelity_corpus.py): the
    figures measured when this filter version was built are the floor (0.41 at depsim-privacy-3, 0.77 at -4)."""
    corpus = pl.read_csv(TESTS / "data" / "fidelity_corpus.tsv", separator="\t", quote_char=None)
    out, _ = Scrubber(key=b"k").scrub(corpus["text"])
    intact = corpus.with_columns(intact=out.str.contains(corpus["item"], literal=True)).group_by("category").agg(pl.col("intact").mean())
    share = dict(intact.iter_rows())
    assert len(corpus) >= 400 and share["number"] == 1.0 and share["capital"] >= 0.96 and share["demonym"] >= 0.92
    assert share["city"] >= 0.98 and share["region"] >= 0.82


def test_a_reference_cue_does_not_shelter_a_card_or_phone_elsewhere() -> None:
    (out,) = scrub("order 114-3941689-8772232, call me on 415 867 5309 or card 4111 1111 1111 1111 no wait 4539 1488 0343 6467")
    assert "114-3941689-8772232" in out and "867 5309" not in out and "4539 1488 0343 6467" not in out


def test_lookalike_corpus_survival() -> None:
    items = [line for line in (TESTS / "data" / "lookalikes.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert len(items) >= 200
    out = scrub(*[f"See {x} for details." for x in items])
    survived = sum(o == f"See {x} for details." for o, x in zip(out, items))
    assert survived / len(items) >= 0.95, survived


def test_surrogates_are_consistent_and_reserved() -> None:
    a, b = scrub("mail bob.jones@gmail.com and call +1 (212) 867-5309", "again: bob.jones@gmail.com, (212) 867-5309")
    email = next(w for w in a.split() if "@" in w)
    assert email.endswith(("@example.com", "@example.net", "@example.org")) and email in b
    assert "555-01" in a and a.split("call ")[1] in b
    other_key, = Scrubber(key=b"another").scrub(pl.Series(["bob.jones@gmail.com"]))[0].to_list()
    assert other_key != email  # the key, not just the value, decides the surrogate


def test_placeholder_mode() -> None:
    (out,) = scrub("mail bob.jones@gmail.com", replacement="placeholder")
    assert out.startswith("mail [EMAIL_ADDRESS_") and out.endswith("]")


def test_hmac_is_stable() -> None:
    # Known value: HMAC-SHA256(key="k", msg="EMAIL_ADDRESS\0a@b.co") computed independently.
    import hashlib
    import hmac

    expected = hmac.new(b"k", b"EMAIL_ADDRESS\x00a@b.co", hashlib.sha256).hexdigest()
    assert hmac_hex(b"k", "EMAIL_ADDRESS", "a@b.co") == expected
    assert hmac_hex(b"k", "EMAIL_ADDRESS", "a@b.co") != hmac_hex(b"k", "PERSON", "a@b.co")


def test_validators_known_values() -> None:
    cands = pl.Series(["4539 1488 0343 6467", "4539 1488 0343 6468", "79927398713", "0000000000000000"])
    assert luhn_valid(cands).to_list() == [True, False, True, True]
    assert card_valid(cands).to_list() == [True, False, False, False]
    assert iban_valid_one("GB82 WEST 1234 5698 7654 32") and not iban_valid_one("GB83 WEST 1234 5698 7654 32")
    assert ssn_valid(pl.Series(["123-45-6789", "000-12-3456", "666-12-3456", "912-12-3456", "123-00-6789"])).to_list() == [True, False, False, False, False]
    assert is_surrogate(pl.Series(["x@example.org", "+1-212-555-0142", "4111111111111111", "x@gmail.com"])).to_list() == [True, True, True, False]


def test_secret_surrogates_are_not_scrubbed_again() -> None:
    # "REDACTED-SECRET-..." holds the cue word "secret" and is a capitalized dashed run: neither the cue rule
    # nor the name rule may take it apart (it came out as "REDACTED-SECRETMorgan3f3cb3bc41").
    for text in ("key AKIAIOSFODNN7EXAMPLE in env", "Password: Tr0ub4dor&3xyz", "token=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t"):
        (out,) = scrub(text)
        assert re.fullmatch(r".*REDACTED-SECRET-[0-9a-f]{12}( in env)?", out), out


def test_gate_leaves_order_numbers_and_private_ips_and_still_finds_cards() -> None:
    kept = pl.Series(["My Amazon order 114-3941689-8772232 and 172-3941689-8772230", "router 192.168.1.10 and 172.20.4.31"])
    assert scan(kept) == []
    found = scan(pl.Series(["card 4539 1488 0343 6467", "card 4539148803436467", "ip 34.12.9.200"]))
    assert sorted(f.kind for f in found) == ["CREDIT_CARD", "CREDIT_CARD", "IP_ADDRESS"]


def test_name_resolution_spans() -> None:
    assert resolve_capitalized("Margaret Thornbury") == (0, 18)
    assert resolve_capitalized("The Great Gatsby") is None
    text = "my name is lena andersson and"
    s, e = resolve_cued(text)
    assert text[s:e] == "lena andersson"


def test_gate_catches_what_passed_it_before() -> None:
    # A +81 number with a one-digit area code, an IBAN followed by its BIC, an AWS secret and a date of birth
    # passed both the scrubber and the gate; the gate now finds them on its own (the scrubber is not asked).
    raw = pl.Series(["call +81 3-1234-5678, IBAN BE68539007547034 GKCCBEBB, aws_secret_access_key = "
                     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, DOB 1985-03-12"])
    assert sorted(f.kind for f in scan(raw)) == ["DATE_OF_BIRTH", "IBAN_CODE", "PHONE_NUMBER", "SECRET"]
    assert scan(pl.Series(scrub(*raw.to_list()))) == []


def test_gate_finds_what_the_scrubber_would_miss() -> None:
    texts = pl.Series(["card 4539148803436467", "ssn 123-45-6789", "mail x@corp.io", "ok x@example.com 4111111111111111", "ip 81.2.69.160"])
    kinds = sorted(f.kind for f in scan(texts, canaries=["Zebulon"]))
    assert kinds == ["CREDIT_CARD", "EMAIL_ADDRESS", "IP_ADDRESS", "US_SSN"]
    assert [f.kind for f in scan(pl.Series(["hello Zebulon"]), canaries=["Zebulon"])] == ["CANARY"]
    assert scan(pl.Series(scrub("card 4539148803436467, ssn 123-45-6789, mail x@corp.io, ip 81.2.69.160"))) == []


def test_gate_finds_names_people_give_and_secrets_by_entropy() -> None:
    found = scan(pl.Series(["my name is tobiah wrenfield", "my name's Okonkwo Adaeze", "db_password = 'k8Tq2vLx9wPz4mNb7R'"]))
    assert sorted(f.kind for f in found) == ["PERSON", "PERSON", "SECRET"]
    # A surrogate, a common word, code and low-entropy values pass; so does the scrubbed text.
    assert scan(pl.Series(["My name is Casey Example.", "my name is not important", "name: str = 'x'",
                           "api_key = settings.OPENAI_API_KEY", "token: REDACTED-SECRET-0a1b2c3d4e5f6a7b"])) == []
    assert scan(pl.Series(scrub("my name is tobiah wrenfield", "db_password = 'k8Tq2vLx9wPz4mNb7R'"))) == []


def test_a_real_name_equal_to_a_surrogate_is_replaced() -> None:
    """Surrogates are a first name and a made-up surname, so a real Taylor or Jordan alone is not mistaken for one."""
    out = scrub("Taylor called me yesterday.", "I met Jordan Example at the gym.", "Tell Casey I said hi.")
    assert not out[0].startswith("Taylor called") and "Jordan Example" in out[1] and "Casey I" not in out[2]
    assert scrub(*out) == out  # what the scrubber wrote is not scrubbed again


@pytest.mark.parametrize("text", [
    "Why do so many Koreans live in Seoul?", "Is it rude to call Canadians polite?", "What do Sikhs believe about charity?",
    "I flew from Nairobi to Oslo via Helsinki.", "Are Catholics allowed to eat meat on Fridays?", "My neighbours are Peruvian.",
    "Why should women not be allowed to open a business on Saturn?", "Is Jupiter bigger than Uranus?",
    # A place word or phrase before an unlisted word, a gazetteer city or a multi-word place; a group noun after.
    "We moved to Ilmenau last spring.", "Is the tap water safe in Rovaniemi?", "What is the population of Oberstdorf?",
    "I live near Houston.", "Cheap flights to Buenos Aires?", "Why do Congolese people speak French?",
    "Is Burkinabe cuisine spicy?", "My Amazon order 114-3941689-8772232 is late and my router is 192.168.0.1.",
    "tell will to come early", "ask mark for the keys", "We visited the Rio de Janeiro carnival.",
    # depsim-privacy-5: cities of 15,000+ people and ISO 3166-2 regions alone; demonyms made from a place's name; a place
    # phrase before a listed surname; an office after a title; a lowercase first name before a common word.
    "Tavira has lovely beaches.", "Is Jinja far from Kampala?", "Ravenna or Salta for a honeymoon?",
    "What do Trinidadian kids learn at school?", "Is Bruneian law strict?", "Are I-Kiribati voters young?",
    "The mayor of Stockwell resigned.", "Mr. President, we need a decision.", "we flew to india last year", "我叫了一辆出租车。",
])
def test_groups_and_places_keep_their_meaning(text: str) -> None:
    scrubbed, counts = Scrubber(key=b"k").scrub(pl.Series([text]))
    assert scrubbed.item() == text and counts.is_empty()


@pytest.mark.parametrize("text, name", [
    ("Please ask Mr. Black about the invoice.", "Black"),  # a group word after a strong cue is a name
    ("Jordan Whitcombe signed the lease.", "Jordan"),  # a country that is a common given name stays a name
    ("Send it to Christian Vogelsang today.", "Vogelsang"),
    ("Venus Okafor paid the deposit.", "Okafor"),  # a planet that is a listed first name stays a name
    # "to" and "from" introduce people as often as places; a listed name after "in" is not a place.
    ("I sent the contract to Dragana Kovačević.", "Kovačević"),
    ("A letter from Okonkwo arrived.", "Okonkwo"),
    ("I believe in Maria.", "Maria"),
    ("Unlike the Okonkwo novel, this one is short.", "Okonkwo"),  # an author's name before "novel"
    ("Contact Maika van de Noort before noon.", "Noort"),  # particles are lowercase inside a name
    ("ask ahmed about the keys", "ahmed"),  # a lowercase first name after a person verb
    ("i emailed jennifer mcallister twice", "mcallister"),
    # depsim-privacy-5
    ("Please correct the account to Lucinda Biscuit.", "Biscuit"),  # a common word after a first name is its surname
    ("Dr. Lantern will see you now.", "Lantern"),  # and after a title
    ("The form says Lorient Ashgrove.", "Lorient"),  # a city's name next to another name-like word
    ("Signed, Harold Pemberton Jr.", "Jr"),  # generational suffix
    ("\"We won,\" says Kuusamo.", "Kuusamo"),  # a name after a speech verb
    ("hi, my name is zaria", "zaria"),  # a city's name when the speaker names themselves
    ("remind me to call marguerite fontaine tomorrow", "fontaine"),  # text without capitals: first name + surname
    ("follow up with marguerite about it", "marguerite"),  # or a Census first name alone
    ("invoice for harold t. pemberton attached", "pemberton"),
    # Scripts without case: after an English cue, and after the cue in the script itself.
    ("My name is 田中太郎.", "田中太郎"),
    ("我叫王小明，今年二十岁。", "王小明"),
    ("私の名前は佐藤花子です。", "佐藤花子"),
    ("मेरा नाम राहुल शर्मा है", "राहुल"),
    ("اسمي أحمد علي", "أحمد"),
    ("שמי דוד כהן", "דוד"),
    ("제 이름은 김민수입니다", "김민수"),
])
def test_names_that_look_like_groups_or_places_are_still_caught(text: str, name: str) -> None:
    scrubbed, _ = Scrubber(key=b"k").scrub(pl.Series([text]))
    assert name not in scrubbed.item()
