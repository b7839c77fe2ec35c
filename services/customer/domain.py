"""Customer rules: contact data validation, search keys and scoring, the credit decision.

Nothing here touches the database or HTTP; api.py and handlers.py call these functions.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Literal

# --- money ----------------------------------------------------------------------

CENT = Decimal("0.01")
MAX_MONEY = Decimal("999999999999.99")  # Numeric(14, 2)


def money(value: Decimal | str | int) -> Decimal:
    """A Decimal rounded to cents; ValueError for anything that is not a finite amount."""
    try:
        amount = Decimal(value) if not isinstance(value, Decimal) else value
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"not an amount: {value!r}") from exc
    if not amount.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    amount = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    if abs(amount) > MAX_MONEY:
        raise ValueError(f"amount out of range: {value!r}")
    return amount


def money_str(value: Decimal | None) -> str | None:
    """Money as events carry it: a string with two decimals, or None."""
    return None if value is None else str(money(value))


# --- contact data ---------------------------------------------------------------

_EMAIL_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOMAIN_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(
    rf"(?P<local>{_EMAIL_ATOM}(?:\.{_EMAIL_ATOM})*)@"
    rf"(?P<domain>(?:{_DOMAIN_LABEL}\.)+(?:[A-Za-z]{{2,63}}|xn--[A-Za-z0-9-]{{1,59}}))"
)


# `_EMAIL` for JSON schemas, with a local part that cannot pass 64 characters (one atom
# of up to 64, or two or three of up to 20): a little narrower than what is accepted.
_EMAIL_CHAR = _EMAIL_ATOM.removesuffix("+")
EMAIL_PATTERN = (
    rf"^(?:{_EMAIL_CHAR}{{1,64}}|{_EMAIL_CHAR}{{1,20}}(?:\.{_EMAIL_CHAR}{{1,20}}){{1,2}})@"
    + re.sub(r"\(\?P<\w+>", "(?:", _EMAIL.pattern.split("@", 1)[1])
    + "$"
)


def normalise_email(raw: str) -> str:
    """A syntactically valid address (dot-atom local part, DNS domain), lower-cased."""
    value = raw.strip()
    if len(value) > 254:
        raise ValueError("email address is longer than 254 characters")
    match = _EMAIL.fullmatch(value)
    if match is None:
        raise ValueError("not a valid email address")
    if len(match["local"]) > 64:
        raise ValueError("the part before @ is longer than 64 characters")
    return value.lower()


_PHONE_PUNCTUATION = re.compile(r"[\s().\-/]")


def normalise_phone(raw: str) -> str:
    """Digits with an optional leading + (E.164-ish): `+44 (20) 7946-0958` -> `+442079460958`.

    Spaces, dots, dashes, slashes and parentheses are dropped; a leading `00` becomes `+`.
    """
    value = _PHONE_PUNCTUATION.sub("", raw.strip())
    if value.startswith("00"):
        value = "+" + value[2:]
    plus = value.startswith("+")
    digits = value[1:] if plus else value
    if not digits.isascii() or not digits.isdigit():
        raise ValueError("a phone number may hold only digits, spaces, ()-./ and a leading +")
    if not 4 <= len(digits) <= 15:
        raise ValueError("a phone number has 4 to 15 digits")
    return ("+" if plus else "") + digits


def phone_digits(phone: str | None) -> str | None:
    """The digits of a stored phone number (what phone search compares)."""
    return phone.lstrip("+") if phone else None


# ISO 3166-1 alpha-2, officially assigned codes.
_COUNTRY_CODES = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO
    BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ
    DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP
    GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG
    KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML
    MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE
    PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL
    SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM
    US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
"""
COUNTRIES = frozenset(_COUNTRY_CODES.split())


def normalise_country(raw: str) -> str:
    """An ISO 3166-1 alpha-2 code, upper-cased."""
    code = raw.strip().upper()
    if code not in COUNTRIES:
        hint = " (the United Kingdom is GB)" if code == "UK" else ""
        raise ValueError(f"'{raw}' is not an ISO 3166-1 alpha-2 country code{hint}")
    return code


# --- search keys ----------------------------------------------------------------

_SEPARATORS = re.compile(r"[\W_]+")


def fold(text: str) -> str:
    """Lower-case, accents stripped, punctuation as single spaces: `Müller & Söhne` ->
    `muller sohne`. The sort key and the unit every text comparison uses."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SEPARATORS.sub(" ", stripped.casefold()).strip()


def word_grams(text: str) -> set[str]:
    """pg_trgm-style trigrams of each word, padded with two spaces before and one after."""
    grams: set[str] = set()
    for word in text.split():
        padded = f"  {word} "
        grams.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return grams


PHONE_GRAM = "#"


def digit_grams(digits: str) -> set[str]:
    """Trigrams of a digit string, marked so they never meet text trigrams."""
    if len(digits) < 3:
        return {PHONE_GRAM + digits} if digits else set()
    return {PHONE_GRAM + digits[i : i + 3] for i in range(len(digits) - 2)}


def customer_grams(name: str, email: str | None, phone: str | None) -> set[str]:
    """Every trigram a customer is found by: its name, its email's words, its phone digits."""
    grams = word_grams(fold(name))
    if email:
        grams |= word_grams(fold(email))
    digits = phone_digits(phone)
    if digits:
        grams |= digit_grams(digits)
    return grams


_PHONE_QUERY = re.compile(r"\+?[\d\s().\-/]+")


def query_digits(query: str) -> str | None:
    """The digits of a query typed like a phone number (at least 3), else None."""
    text = query.strip()
    if not _PHONE_QUERY.fullmatch(text):
        return None
    digits = re.sub(r"\D", "", text)
    if text.startswith("00"):
        digits = digits[2:]
    return digits if len(digits) >= 3 else None


def query_email(query: str) -> str | None:
    """The query as an email fragment (one token, lower-cased), else None."""
    text = query.strip().lower()
    return text if text and not any(ch.isspace() for ch in text) else None


def query_grams(query: str) -> set[str]:
    grams = word_grams(fold(query))
    digits = query_digits(query)
    if digits:
        grams |= digit_grams(digits)
    return grams


def trigram_similarity(a: str, b: str) -> float:
    """pg_trgm's similarity: shared trigrams over all trigrams of both strings."""
    ga, gb = word_grams(a), word_grams(b)
    if not ga or not gb:
        return 0.0
    return len(ga & gb) / len(ga | gb)


def edit_similarity(a: str, b: str) -> float:
    """1 - (optimal string alignment distance / longer length): typos and swapped letters
    cost one edit each, so `logstics` ~ `logistics` (0.89) but `jane` !~ `partners`."""
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], prev2[j - 2] + 1)
        prev2, prev = prev, row
    return 1.0 - prev[-1] / max(len(a), len(b))


def _word_score(query_word: str, words: list[str]) -> float:
    best = 0.0
    for word in words:
        if word == query_word:
            return 1.0
        if len(query_word) >= 2 and word.startswith(query_word):
            best = max(best, 0.9 + 0.1 * len(query_word) / len(word))
            continue
        best = max(best, edit_similarity(query_word, word))
    return best


def name_similarity(query: str, name: str) -> float:
    """How well a folded query matches a folded name, 0..1.

    Each query word is matched to its best name word (exact, prefix, or edit-similar),
    weighted by length; the whole-string ratio rewards names without extra words.
    """
    if not query or not name:
        return 0.0
    if query == name:
        return 1.0
    words = name.split()
    query_words = query.split()
    total = sum(len(w) for w in query_words)
    per_word = sum(len(w) * _word_score(w, words) for w in query_words) / total
    whole = difflib.SequenceMatcher(None, query, name).ratio()
    return min(0.99, max(0.8 * per_word + 0.2 * whole, trigram_similarity(query, name)))


@dataclass(frozen=True)
class Match:
    """A search hit's rank: tier 0 is an exact or prefix email/phone match (always first)."""

    tier: int
    score: float

    @property
    def sort_key(self) -> tuple[int, float]:
        return (self.tier, -self.score)


MIN_SCORE = 0.5


def score_customer(query: str, name: str, email: str | None, phone: str | None) -> Match:
    """Rank a customer for a query over its name, email and phone."""
    best = Match(1, name_similarity(fold(query), fold(name)))

    def consider(match: Match) -> None:
        nonlocal best
        if match.sort_key < best.sort_key:
            best = match

    digits = query_digits(query)
    stored = phone_digits(phone)
    if digits and stored:
        if stored == digits:
            consider(Match(0, 1.0))
        elif stored.startswith(digits):
            consider(Match(0, 0.9 + 0.09 * len(digits) / len(stored)))
        else:
            # A national number typed without its country code, or with a trunk 0.
            national = digits.lstrip("0")
            if len(national) >= 4 and national in stored:
                consider(Match(1, 0.7 + 0.29 * len(national) / len(stored)))
    fragment = query_email(query)
    if fragment and email:
        if email == fragment:
            consider(Match(0, 1.0))
        elif email.startswith(fragment) and len(fragment) >= 3:
            consider(Match(0, 0.9 + 0.09 * len(fragment) / len(email)))
        elif len(fragment) >= 3 and fragment in email:
            consider(Match(1, 0.6 + 0.39 * len(fragment) / len(email)))
        else:
            consider(Match(1, name_similarity(fold(fragment), fold(email)) * 0.9))
    return Match(best.tier, round(best.score, 4))


# --- credit ---------------------------------------------------------------------

Decision = Literal["approved", "hold"]


@dataclass(frozen=True)
class CreditDecision:
    decision: Decision
    reason_code: str
    reason: str
    available: Decimal | None


def decide_credit(
    *,
    credit_limit: Decimal | None,
    credit_hold: bool,
    other_open_orders: Decimal,
    amount: Decimal,
) -> CreditDecision:
    """Hold when the customer is on credit hold or the order would take the open order value
    past the limit; approve otherwise (no limit approves unless on hold). A free order
    (amount 0) takes no credit and is always approved.

    `available` is the headroom before this order: limit minus the other open orders
    (negative when the customer is already over the limit), None without a limit.
    """
    available = None if credit_limit is None else credit_limit - other_open_orders
    if amount == 0:
        return CreditDecision("approved", "free_order", "a free order takes no credit", available)
    if credit_hold:
        return CreditDecision("hold", "credit_hold", "the customer is on credit hold", available)
    if credit_limit is None:
        return CreditDecision("approved", "no_limit", "the customer has no credit limit", None)
    assert available is not None
    if other_open_orders + amount > credit_limit:
        return CreditDecision(
            "hold",
            "over_limit",
            f"open orders {other_open_orders} plus this order {amount} exceed "
            f"the credit limit {credit_limit}",
            available,
        )
    return CreditDecision(
        "approved",
        "within_limit",
        f"this order {amount} is within the available credit {available}",
        available,
    )
