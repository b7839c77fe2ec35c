"""Restock from returns: the `order-returns` consumer books a ReturnDisposed's `restock`
lots back into the same SKU x warehouse x lot (expiry kept, held when the lot is blocked,
movement kind `return` with the return id as reference) and fills backorders; other
dispositions leave the ledger alone; a redelivery changes nothing; a lot the ledger
cannot take is dead-lettered."""

from __future__ import annotations

from typing import Any

from services.common import events as ev
from services.common.bus import Bus
from tests.customer.conftest import publish, republish
from tests.harness import RunningService, Stack, auth, eventually
from tests.order.test_lots import set_status
from tests.order.test_stock import (
    in_days,
    ledger_matches_balances,
    lot_of,
    movements,
    reserve,
    stocked,
)


def disposed(return_id: str, *lots: tuple[str, str, int, str]) -> ev.ReturnDisposed:
    """(warehouse, lot, quantity, disposition) of BOLT, one order line."""
    return ev.ReturnDisposed(
        return_id=return_id,
        order_id="o-1",
        customer_id="c-1",
        lots=[
            ev.DisposedLot(
                line_no=1, sku="BOLT", warehouse_id=w, lot=lot, quantity=q, disposition=d
            )
            for w, lot, q, d in lots
        ],
    )


async def returned(order: RunningService, count: int) -> list[dict[str, Any]]:
    async def booked() -> list[dict[str, Any]] | None:
        found = await movements(order, kind="return")
        return found if len(found) >= count else None

    result: list[dict[str, Any]] = await eventually(booked, message=f"{count} return movements")
    return result


async def test_restocked_goods_return_to_their_lot_and_fill_backorders(
    stack: Stack, bus: Bus
) -> None:
    order = await stack.start("order")
    await stocked(order, "BOLT", {("WH-A", "B1"): 2}, shelf_life=False)
    await reserve(order, "o-9", ("BOLT", 3))  # 2 reserved, 1 backordered
    event = disposed(
        "r-1",
        ("WH-A", "B1", 2, "restock"),
        ("WH-A", "B1", 1, "scrap"),
        ("WH-A", "B1", 1, "refurbish"),
    )
    envelope = await publish(bus, event, "r-1")
    [movement] = await returned(order, 1)
    assert (movement["lot"], movement["quantity"], movement["reference"]) == ("B1", 2, "r-1")
    assert movement["on_hand_delta"] == 2
    b1 = await lot_of(order, "BOLT", "WH-A", "B1")
    # 2 back on hand: one fills o-9's backorder, one is available.
    assert (b1["on_hand"], b1["reserved"], b1["available"]) == (4, 3, 1)

    # The same event again, and then a marker on the same entity: the marker is booked,
    # the repeat never was.
    await republish(bus, envelope)
    await publish(bus, disposed("r-2", ("WH-A", "B1", 1, "restock")), "r-1")
    marker = await returned(order, 2)
    assert sorted(m["reference"] for m in marker) == ["r-1", "r-2"]
    assert (await lot_of(order, "BOLT", "WH-A", "B1"))["on_hand"] == 5

    await ledger_matches_balances(order)


async def test_returned_stock_of_a_blocked_lot_arrives_held_with_its_expiry(
    stack: Stack, bus: Bus
) -> None:
    order = await stack.start("order")
    expiry = in_days(40)
    await stocked(order, "BOLT", {}, shelf_life=True)
    r = await order.http.post(
        "/warehouses",
        json={"id": "WH-A", "name": "A", "country": "DE"},
        headers={**auth("coordinator"), "Idempotency-Key": "wh-a"},
    )
    assert r.status_code == 201
    r = await order.http.post(
        "/warehouses",
        json={"id": "WH-B", "name": "B", "country": "DE"},
        headers={**auth("coordinator"), "Idempotency-Key": "wh-b"},
    )
    assert r.status_code == 201
    body = {"warehouse_id": "WH-A", "sku": "BOLT", "lot": "B1", "quantity": 1}
    r = await order.http.post(
        "/stock/receipts",
        json={**body, "expiry": expiry.isoformat()},
        headers={**auth("coordinator"), "Idempotency-Key": "rc"},
    )
    assert r.status_code == 201, r.text
    assert (await set_status(order, "B1", "recalled")).status_code == 200
    # Back into WH-A (known lot) and WH-B (where the lot never lay): both held.
    await publish(
        bus, disposed("r-3", ("WH-A", "B1", 2, "restock"), ("WH-B", "B1", 1, "restock")), "r-3"
    )
    await returned(order, 2)
    a = await lot_of(order, "BOLT", "WH-A", "B1")
    assert (a["on_hand"], a["held"], a["available"], a["expiry"]) == (3, 3, 0, expiry.isoformat())
    b = await lot_of(order, "BOLT", "WH-B", "B1")
    assert (b["on_hand"], b["held"], b["on_hold"], b["expiry"]) == (1, 1, True, expiry.isoformat())
    await ledger_matches_balances(order)


async def test_a_lot_the_ledger_cannot_take_is_dead_lettered(stack: Stack, bus: Bus) -> None:
    order = await stack.start("order")
    await stocked(order, "BOLT", {("WH-A", "B1"): 1})
    await publish(bus, disposed("r-4", ("WH-NOWHERE", "B1", 1, "restock")), "r-4")

    async def listed() -> list[dict[str, Any]] | None:
        r = await order.http.get("/ops/deadletters", headers=auth("ops"))
        items: list[dict[str, Any]] = r.json()["items"]
        mine = [i for i in items if i["consumer"] == "order-order-returns"]
        return mine or None

    [item] = await eventually(listed, message="dead-lettered")
    assert item["error"].startswith("PermanentError: return r-4")
    assert item["attempts"] == 1
    assert await movements(order, kind="return") == []
