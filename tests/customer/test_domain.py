"""Customer rules without servers: contact data, search keys and scores, credit decisions."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.customer import domain


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("+44 (20) 7946-0958", "+442079460958"),
        ("0044 20 7946 0958", "+442079460958"),
        ("020.7946.0958", "02079460958"),
        ("+1 555/010 2030", "+15550102030"),
        ("  1234 ", "1234"),
    ],
)
def test_phone_numbers_are_normalised(raw: str, stored: str) -> None:
    assert domain.normalise_phone(raw) == stored


@pytest.mark.parametrize(
    "raw", ["", "+", "123", "12 34 56 78 90 12 34 56", "555-CALL", "++44 1234", "١٢٣٤٥"]
)
def test_bad_phone_numbers_are_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        domain.normalise_phone(raw)


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("Jane.Doe@Example.COM", "jane.doe@example.com"),
        (" ops+eu@acme-logistics.co.uk ", "ops+eu@acme-logistics.co.uk"),
        ("x@xn--mller-kva.de", "x@xn--mller-kva.de"),
    ],
)
def test_valid_emails(raw: str, stored: str) -> None:
    assert domain.normalise_email(raw) == stored


@pytest.mark.parametrize(
    "raw",
    [
        "plain",
        "a@b",
        "a@@b.com",
        "a b@c.com",
        ".a@b.com",
        "a.@b.com",
        "a..b@c.com",
        "a@-b.com",
        "a@b-.com",
        "a@b.c",
        "a@b.123",
        "a" * 65 + "@b.com",
        "a@" + "b" * 250 + ".com",
    ],
)
def test_invalid_emails(raw: str) -> None:
    with pytest.raises(ValueError):
        domain.normalise_email(raw)


def test_countries() -> None:
    assert len(domain.COUNTRIES) == 249
    assert domain.normalise_country(" gb ") == "GB"
    for bad in ("UK", "XX", "EU", "G", "GBR"):
        with pytest.raises(ValueError):
            domain.normalise_country(bad)


def test_fold_and_grams() -> None:
    assert domain.fold("  Müller & Söhne GmbH ") == "muller sohne gmbh"
    assert domain.fold("ÆRØ_Shipping—Co.") == "ærø shipping co"
    assert domain.word_grams("ab") == {"  a", " ab", "ab "}
    assert domain.digit_grams("12345") == {"#123", "#234", "#345"}
    grams = domain.customer_grams("Acme", "ops@acme.io", "+4412")
    assert {"acm", "cme", " op", "#441", "#412"} <= grams


def test_edit_similarity() -> None:
    assert domain.edit_similarity("logistics", "logistics") == 1.0
    assert domain.edit_similarity("logstics", "logistics") == pytest.approx(8 / 9)
    assert domain.edit_similarity("acme", "acem") == 0.75  # a swap is one edit
    assert domain.edit_similarity("jane", "partners") < 0.5


def test_score_tiers() -> None:
    exact_phone = domain.score_customer("+1 555 010 2030", "Zed", None, "+15550102030")
    assert (exact_phone.tier, exact_phone.score) == (0, 1.0)
    prefix_email = domain.score_customer("ops@ac", "Zed", "ops@acme.io", None)
    assert prefix_email.tier == 0
    national = domain.score_customer("020 7946 0958", "Zed", None, "+442079460958")
    assert national.tier == 1 and national.score > 0.9
    by_name = domain.score_customer("acme logstics", "Acme Logistics", None, None)
    assert by_name.tier == 1 and by_name.score > 0.9
    unrelated = domain.score_customer("acme logstics", "Zeta Corp", "jane@zeta.org", None)
    assert unrelated.score < domain.MIN_SCORE


@pytest.mark.parametrize(
    ("limit", "hold", "others", "amount", "decision", "code", "available"),
    [
        (None, False, "5000", "1", "approved", "no_limit", None),
        (None, True, "0", "1", "hold", "credit_hold", None),
        ("1000", True, "0", "1", "hold", "credit_hold", "1000"),
        ("1000", False, "600", "400", "approved", "within_limit", "400"),
        ("1000", False, "600", "400.01", "hold", "over_limit", "400"),
        ("0", False, "0", "0.01", "hold", "over_limit", "0"),
        ("500", False, "600", "1", "hold", "over_limit", "-100"),
    ],
)
def test_credit_decision(
    limit: str | None,
    hold: bool,
    others: str,
    amount: str,
    decision: str,
    code: str,
    available: str | None,
) -> None:
    result = domain.decide_credit(
        credit_limit=None if limit is None else Decimal(limit),
        credit_hold=hold,
        other_open_orders=Decimal(others),
        amount=Decimal(amount),
    )
    assert (result.decision, result.reason_code) == (decision, code)
    assert result.available == (None if available is None else Decimal(available))


def test_money() -> None:
    assert str(domain.money("12.345")) == "12.35"
    assert str(domain.money(Decimal("7"))) == "7.00"
    assert domain.money_str(None) is None
    for bad in ("abc", "NaN", "Infinity", "1e20"):
        with pytest.raises(ValueError):
            domain.money(bad)
