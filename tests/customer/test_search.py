"""Fuzzy customer search: misspellings, accents, email fragments, phones with punctuation."""

from __future__ import annotations

from typing import Any

import pytest

from tests.customer.conftest import body, create
from tests.harness import RunningService, Stack, auth

CUSTOMERS = [
    body("Acme Logistics Ltd", email="ops@acme-logistics.com", phone="+1 (555) 010-2030"),
    body("Acme Freight", email="acme@acmefreight.io", phone="+44 20 7946 0958", kind="b2c"),
    # An exact name: scores 1.0 for "acme", yet ranks after the email prefix hit above.
    body("Acme"),
    body("Logistics Partners", email="info@lp.example", phone="+33 1 23 45 67 89"),
    body("Zeta Corp", email="jane.doe@zeta.org"),
    body("Müller Spedition", email="kontakt@spedition-berlin.de"),
    body("Acme Logistics Holdings International"),
    # Would out-score the real owner of ops@acme-logistics.com on name alone.
    body("Ops Acme Logistics Com"),
    *(body(f"Northwind Traders {n}", phone=f"+1 212 555 01{n:02d}") for n in range(12)),
]


@pytest.fixture
async def directory(stack: Stack) -> tuple[RunningService, dict[str, str]]:
    svc = await stack.start("customer")
    ids = {}
    for payload in CUSTOMERS:
        ids[payload["name"]] = (await create(svc, payload))["id"]
    return svc, ids


async def search(svc: RunningService, q: str, **params: Any) -> list[dict[str, Any]]:
    r = await svc.http.get("/customers", params={"q": q, **params}, headers=auth("coordinator"))
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def names(items: list[dict[str, Any]]) -> list[str]:
    return [item["name"] for item in items]


@pytest.mark.parametrize(
    ("query", "best"),
    [
        ("acme logstics", "Acme Logistics Ltd"),
        ("ACME-Logistcs ltd", "Acme Logistics Ltd"),
        ("acme frieght", "Acme Freight"),
        ("logistcs partnrs", "Logistics Partners"),
        ("muller spedition", "Müller Spedition"),
        ("Mueller Speditoin", "Müller Spedition"),
        ("zeta", "Zeta Corp"),
    ],
)
async def test_misspelled_names_find_the_customer_first(
    directory: tuple[RunningService, dict[str, str]], query: str, best: str
) -> None:
    svc, _ = directory
    items = await search(svc, query)
    assert items, f"nothing found for {query!r}"
    assert items[0]["name"] == best, names(items)
    assert items[0]["score"] >= 0.5
    assert all(not n.startswith("Northwind") for n in names(items)), names(items)


async def test_results_are_ranked_and_unrelated_customers_left_out(
    directory: tuple[RunningService, dict[str, str]],
) -> None:
    svc, _ = directory
    items = await search(svc, "acme logistics")
    found = names(items)
    # The closest name first, longer names holding both words next, then a customer
    # sharing one word; customers sharing next to nothing are not results at all.
    assert found[0] == "Acme Logistics Ltd"
    assert set(found[1:3]) == {"Acme Logistics Holdings International", "Ops Acme Logistics Com"}
    assert "Logistics Partners" in found[3:]
    for unrelated in ("Zeta Corp", "Müller Spedition", "Acme Freight", "Northwind Traders 1"):
        assert unrelated not in found
    scores = [item["score"] for item in items]
    assert scores == sorted(scores, reverse=True)
    assert all(0 < s <= 1 for s in scores)
    assert await search(svc, "qqxxzz") == []


@pytest.mark.parametrize(
    ("query", "best"),
    [
        ("jane.doe@", "Zeta Corp"),
        ("jane.doe@zeta.org", "Zeta Corp"),
        ("JANE", "Zeta Corp"),
        ("acmefreight", "Acme Freight"),
        ("zeta.org", "Zeta Corp"),
        ("spedition-berlin", "Müller Spedition"),
        ("lp.example", "Logistics Partners"),
    ],
)
async def test_email_fragments_find_the_customer(
    directory: tuple[RunningService, dict[str, str]], query: str, best: str
) -> None:
    svc, _ = directory
    items = await search(svc, query)
    assert items and items[0]["name"] == best, names(items)


@pytest.mark.parametrize(
    ("query", "best"),
    [
        ("+1 (555) 010-2030", "Acme Logistics Ltd"),
        ("555-010-2030", "Acme Logistics Ltd"),
        ("1 555 010", "Acme Logistics Ltd"),
        ("+44 20 7946 0958", "Acme Freight"),
        ("020 7946 0958", "Acme Freight"),  # national format, trunk 0, no country code
        ("0044 20 7946", "Acme Freight"),  # a prefix typed with an international 00
        ("+33 1 23 45 67 89", "Logistics Partners"),
        ("33.1.23.45", "Logistics Partners"),
        ("212-555-0107", "Northwind Traders 7"),
    ],
)
async def test_phones_typed_with_punctuation(
    directory: tuple[RunningService, dict[str, str]], query: str, best: str
) -> None:
    svc, _ = directory
    items = await search(svc, query)
    assert items and items[0]["name"] == best, names(items)


async def test_exact_email_and_phone_rank_before_name_matches(
    directory: tuple[RunningService, dict[str, str]],
) -> None:
    svc, _ = directory
    items = await search(svc, "ops@acme-logistics.com")
    assert names(items)[0] == "Acme Logistics Ltd"
    assert "Ops Acme Logistics Com" in names(items)
    assert items[0]["score"] == 1.0

    # A prefix of an email outranks even an exact name.
    items = await search(svc, "acme")
    assert names(items)[:2] == ["Acme Freight", "Acme"]
    assert items[0]["score"] < items[1]["score"] == 1.0

    # Every Northwind phone starts +1 212 555 01..: all are prefix hits, in name order,
    # before any customer found by name alone.
    items = await search(svc, "+1 212 555 01", limit=200)
    assert names(items)[:12] == sorted(f"Northwind Traders {n}" for n in range(12))


async def test_search_pages_and_filters(
    directory: tuple[RunningService, dict[str, str]],
) -> None:
    svc, _ = directory
    everything = await search(svc, "acme", limit=200)
    assert len(everything) >= 4
    walked: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"q": "acme", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        r = await svc.http.get("/customers", params=params, headers=auth("ops"))
        page = r.json()
        walked.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [i["id"] for i in walked] == [i["id"] for i in everything]

    b2c = await search(svc, "acme", kind="b2c")
    assert names(b2c) == ["Acme Freight"]
    held = await search(svc, "acme", credit_hold="true")
    assert held == []
