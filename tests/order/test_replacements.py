"""Replacement orders: `POST /internal/replacements` places a free order for the same
customer and ship-to as the original, linked by `replacement_for_return_id`, announced
by OrderPlaced (so the normal workflow runs it); one per return, whatever the key."""

from __future__ import annotations

from typing import Any

import pytest

from services.common.bus import Bus
from tests.harness import RunningService, Stack, auth
from tests.order.test_orders import ADDRESS, body, seeded
from tests.order.test_stock import wait_events

SERVICE = auth("service", subject="return-workflow")


async def original(order: RunningService, customer: str = "c-1") -> dict[str, Any]:
    ship_to = {**ADDRESS, "name": "Dock 4"}
    r = await order.http.post(
        "/orders",
        json=body(customer, ship_to=ship_to),
        headers={**auth("coordinator"), "Idempotency-Key": f"orig-{customer}"},
    )
    assert r.status_code == 201, r.text
    placed: dict[str, Any] = r.json()
    return placed


def replacement(order_id: str, return_id: str = "ret-1", **changes: Any) -> dict[str, Any]:
    return {
        "return_id": return_id,
        "original_order_id": order_id,
        "customer_id": "c-1",
        "lines": [{"sku": "MUG-CERAMIC", "quantity": 1}],
        **changes,
    }


async def replace(order: RunningService, payload: dict[str, Any], key: str) -> Any:
    return await order.http.post(
        "/internal/replacements", json=payload, headers={**SERVICE, "Idempotency-Key": key}
    )


async def test_a_free_replacement_for_the_same_customer_and_address(stack: Stack, bus: Bus) -> None:
    order = await seeded(stack)
    first = await original(order)
    r = await replace(order, replacement(first["id"]), "k-1")
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["id"] != first["id"]
    assert (made["customer_id"], made["ship_to"], made["status"]) == (
        "c-1",
        first["ship_to"],
        "placed",
    )
    assert made["replacement_for_return_id"] == "ret-1"
    assert (made["total"], [ln["unit_price"] for ln in made["lines"]]) == ("0.00", ["0.00"])
    got = await order.http.get(f"/orders/{made['id']}", headers=auth("coordinator"))
    assert got.json()["replacement_for_return_id"] == "ret-1"
    assert (await order.http.get(f"/orders/{first['id']}", headers=auth("coordinator"))).json()[
        "replacement_for_return_id"
    ] is None
    # The customer sees the replacement among their orders.
    mine = await order.http.get(
        f"/orders/{made['id']}", headers=auth("customer", customer_id="c-1")
    )
    assert mine.status_code == 200
    status = await order.http.get(
        f"/orders/{made['id']}/status", headers=auth("customer", customer_id="c-1")
    )
    assert "This order replaces goods you returned" in [
        t["detail"] for t in status.json()["timeline"]
    ]

    # One per return: another key (even other lines) answers the same order.
    again = await replace(
        order, replacement(first["id"], lines=[{"sku": "COFFEE-1KG", "quantity": 3}]), "k-2"
    )
    assert (again.status_code, again.json()["id"]) == (201, made["id"])
    assert (await replace(order, replacement(first["id"]), "k-1")).json()["id"] == made["id"]

    # Announced like any order: the bridge starts the normal workflow with a zero total.
    events = await wait_events(
        bus, "order.order.placed", 1, lambda e: e["data"]["order_id"] == made["id"]
    )
    [placed] = events
    assert placed["data"]["total"] == "0.00"
    assert placed["data"]["lines"] == [
        {
            "line_no": 1,
            "sku": "MUG-CERAMIC",
            "quantity": 1,
            "unit_price": "0.00",
            "category": None,
        }
    ]


async def test_order_placed_lines_carry_the_sku_category(stack: Stack, bus: Bus) -> None:
    order = await seeded(stack)
    r = await order.http.patch(
        "/catalogue/skus/MUG-CERAMIC", json={"category": "kitchenware"}, headers=auth("coordinator")
    )
    assert r.status_code == 200, r.text
    assert r.json()["category"] == "kitchenware"
    first = await original(order)
    [placed] = await wait_events(
        bus, "order.order.placed", 1, lambda e: e["data"]["order_id"] == first["id"]
    )
    assert {ln["sku"]: ln["category"] for ln in placed["data"]["lines"]} == {
        "MUG-CERAMIC": "kitchenware",
        "COFFEE-1KG": None,
    }
    cleared = await order.http.patch(
        "/catalogue/skus/MUG-CERAMIC", json={"category": None}, headers=auth("coordinator")
    )
    assert cleared.json()["category"] is None
    too_long = await order.http.patch(
        "/catalogue/skus/MUG-CERAMIC", json={"category": "x" * 65}, headers=auth("coordinator")
    )
    assert too_long.status_code == 422


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"customer_id": "c-2"}, 422, "customer_mismatch"),
        ({"original_order_id": "no-such-order"}, 422, "unknown_order"),
        ({"lines": []}, 422, None),
        ({"lines": [{"sku": "MUG-CERAMIC", "quantity": 0}]}, 422, None),
        ({"lines": [{"sku": "NOPE", "quantity": 1}]}, 422, "unknown_sku"),
        ({"return_id": "r" * 37}, 422, None),
        ({"return_id": ""}, 422, None),
        ({"surprise": True}, 422, None),
    ],
)
async def test_bad_replacement_requests_are_problems(
    stack: Stack, change: dict[str, Any], status: int, code: str | None
) -> None:
    order = await seeded(stack)
    first = await original(order)
    r = await replace(order, replacement(first["id"], **change), "bad")
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    if code:
        assert r.json()["code"] == code
    listed = await order.http.get("/orders", headers=auth("coordinator"))
    assert [o["id"] for o in listed.json()["items"]] == [first["id"]]


async def test_only_waybill_processes_place_replacements(stack: Stack) -> None:
    order = await seeded(stack)
    first = await original(order)
    for role in ("coordinator", "ops"):
        r = await order.http.post(
            "/internal/replacements",
            json=replacement(first["id"]),
            headers={**auth(role), "Idempotency-Key": role},
        )
        assert r.status_code == 403
    customer = {**auth("customer", customer_id="c-1"), "Idempotency-Key": "c"}
    r = await order.http.post(
        "/internal/replacements", json=replacement(first["id"]), headers=customer
    )
    assert r.status_code == 403
    r = await order.http.post(
        "/internal/replacements", json=replacement(first["id"]), headers=SERVICE
    )
    assert 400 <= r.status_code < 500  # the Idempotency-Key is required
