"""Orders API: placing (Idempotency-Key), reading, listing, scoping to the caller."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cli.demo import SKUS, WAREHOUSES
from tests.harness import RunningService, Stack, auth

ADDRESS = {
    "name": "Jane",
    "line1": "Via Roma 1",
    "city": "Milano",
    "postal_code": "20121",
    "country": "IT",
}


async def seeded(stack: Stack, **overrides: Any) -> RunningService:
    """The order service with the demo warehouses and catalogue."""
    svc = await stack.start("order", **overrides)
    staff = auth("coordinator")
    for wh in WAREHOUSES:
        r = await svc.http.post(
            "/warehouses", json=wh, headers={**staff, "Idempotency-Key": wh["id"]}
        )
        assert r.status_code == 201, r.text
    for sku in SKUS:
        r = await svc.http.post(
            "/catalogue/skus", json=sku, headers={**staff, "Idempotency-Key": sku["code"]}
        )
        assert r.status_code == 201, r.text
    return svc


@pytest.fixture
async def order(stack: Stack) -> RunningService:
    return await seeded(stack)


def body(customer: str = "c-1", **changes: Any) -> dict[str, Any]:
    return {
        "customer_id": customer,
        "ship_to": ADDRESS,
        "lines": [{"sku": "MUG-CERAMIC", "quantity": 2}, {"sku": "COFFEE-1KG", "quantity": 1}],
        **changes,
    }


async def test_place_prices_lines_from_the_catalogue(order: RunningService) -> None:
    r = await order.http.post(
        "/orders", json=body(), headers={**auth("coordinator"), "Idempotency-Key": "o-1"}
    )
    assert r.status_code == 201, r.text
    placed = r.json()
    assert placed["status"] == "placed"
    assert [(ln["line_no"], ln["sku"], ln["unit_price"]) for ln in placed["lines"]] == [
        (1, "MUG-CERAMIC", "6.90"),
        (2, "COFFEE-1KG", "18.50"),
    ]
    assert placed["total"] == "32.30" and placed["currency"] == "EUR"
    got = await order.http.get(f"/orders/{placed['id']}", headers=auth("coordinator"))
    assert got.json() == placed


async def test_idempotent_place(order: RunningService) -> None:
    """Same key and body: the same order; another body: 422; no key: 400."""
    headers = {**auth("coordinator"), "Idempotency-Key": "o-2"}
    first = await order.http.post("/orders", json=body(), headers=headers)
    again = await order.http.post("/orders", json=body(), headers=headers)
    assert again.status_code == 201 and again.json() == first.json()
    other = await order.http.post("/orders", json=body(customer="c-2"), headers=headers)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    missing = await order.http.post("/orders", json=body(), headers=auth("coordinator"))
    assert missing.status_code == 400
    listed = await order.http.get("/orders", headers=auth("coordinator"))
    assert len(listed.json()["items"]) == 1


async def test_concurrent_replays_place_one_order(order: RunningService) -> None:
    headers = {**auth("coordinator"), "Idempotency-Key": "o-race"}
    answers = await asyncio.gather(
        *(order.http.post("/orders", json=body(), headers=headers) for _ in range(10))
    )
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"lines": [{"sku": "NOPE", "quantity": 1}]}, "unknown_sku"),
        ({"lines": [{"sku": "MUG-CERAMIC", "quantity": 0}]}, "validation_error"),
        ({"lines": []}, "validation_error"),
        ({"lines": [{"sku": "MUG-CERAMIC", "quantity": 1}] * 2}, "duplicate_sku"),
        ({"ship_to": {**ADDRESS, "country": "Italy"}}, "validation_error"),
    ],
)
async def test_bad_orders_are_422_and_write_nothing(
    order: RunningService, change: dict[str, Any], code: str
) -> None:
    r = await order.http.post(
        "/orders", json=body(**change), headers={**auth("coordinator"), "Idempotency-Key": code}
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == code
    assert (await order.http.get("/orders", headers=auth("coordinator"))).json()["items"] == []


async def test_customers_see_only_their_orders(order: RunningService) -> None:
    mine = auth("customer", customer_id="c-1")
    placed = (
        await order.http.post("/orders", json=body("c-1"), headers={**mine, "Idempotency-Key": "a"})
    ).json()
    foreign = await order.http.post(
        "/orders", json=body("c-2"), headers={**mine, "Idempotency-Key": "b"}
    )
    assert foreign.status_code == 404
    other = auth("customer", customer_id="c-2")
    for path in (f"/orders/{placed['id']}", f"/orders/{placed['id']}/status"):
        assert (await order.http.get(path, headers=mine)).status_code == 200
        assert (await order.http.get(path, headers=other)).status_code == 404
    assert (await order.http.get("/orders", headers=other)).json()["items"] == []
    peek = await order.http.get("/orders", params={"customer_id": "c-1"}, headers=other)
    assert peek.json()["items"] == []
    assert (
        await order.http.get("/orders", headers=auth("supplier", supplier_id="s"))
    ).status_code == 403


async def test_list_filters_and_pages(order: RunningService) -> None:
    staff = auth("coordinator")
    ids = []
    for i in range(5):
        r = await order.http.post(
            "/orders", json=body(f"c-{i % 2}"), headers={**staff, "Idempotency-Key": f"p{i}"}
        )
        ids.append(r.json()["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "customer_id": "c-0"}
        if cursor:
            params["cursor"] = cursor
        page = (await order.http.get("/orders", params=params, headers=staff)).json()
        seen += [o["id"] for o in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [ids[4], ids[2], ids[0]]
    bad = await order.http.get("/orders", params={"cursor": "!!"}, headers=staff)
    assert bad.status_code == 400


async def test_cancel_without_the_workflow_engine_is_503(stack: Stack) -> None:
    """Temporal unreachable: a clear 503 with Retry-After, and the order untouched."""
    svc = await seeded(stack, temporal_address="127.0.0.1:9")
    staff = auth("coordinator")
    placed = (
        await svc.http.post("/orders", json=body(), headers={**staff, "Idempotency-Key": "t"})
    ).json()
    r = await svc.http.post(f"/orders/{placed['id']}/cancel", json={}, headers=staff)
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "unavailable" and r.headers["retry-after"] == "5"
    got = await svc.http.get(f"/orders/{placed['id']}", headers=staff)
    assert got.json()["status"] == "placed"
