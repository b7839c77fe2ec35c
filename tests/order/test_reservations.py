"""Reservations: FEFO lots, fewest warehouses, backorders filled first in first out,
idempotent reserve / issue / unissue / restock, release, and no oversell under concurrency."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
import sqlalchemy as sa

from services.common.bus import Bus
from services.common.problems import Conflict, Unprocessable
from services.order import stock
from services.order.stock_models import StockBackorder, StockBalance
from services.order.stock_schemas import Allocation, LineRequest, Missing, ReservationResult
from tests.harness import RunningService, Stack, auth
from tests.order.test_stock import (
    availability,
    in_days,
    in_tx,
    ledger_matches_balances,
    make_sku,
    make_warehouse,
    movements,
    receive,
    reserve,
    stocked,
    stream_events,
    wait_events,
)


def lots(allocations: list[Allocation]) -> list[tuple[int, str, str, int]]:
    """(line, warehouse, lot, quantity) of each allocation, in the order given."""
    return [(a.line_no, a.warehouse_id, a.lot, a.quantity) for a in allocations]


async def held_by(order: RunningService, order_id: str) -> list[tuple[int, str, str, int]]:
    return lots(await in_tx(order, lambda s: stock.reservations_of(s, order_id)))


async def open_backorders(order: RunningService, **filters: Any) -> list[dict[str, Any]]:
    r = await order.http.get("/stock/backorders", params=filters, headers=auth("ops"))
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def issue(order: RunningService, order_id: str, warehouse_id: str, shipment: str) -> Any:
    """The lots picked (the test orders' lots never expire, so nothing is backordered)."""
    source = order.runtime.source
    pick = await in_tx(order, lambda s: stock.issue(s, order_id, warehouse_id, shipment, source))
    assert not pick.backordered
    return pick.picked


# --- lot and warehouse choice ------------------------------------------------------------


async def test_fefo_takes_the_earliest_expiry_first(stack: Stack) -> None:
    """Earliest expiry first, lots without expiry last, whatever their names or the order
    they arrived in."""
    order = await stack.start("order")
    await make_sku(order, "SAUCE")
    await make_warehouse(order, "WH-A")
    for lot, quantity, expiry in (
        ("LOT-A", 5, in_days(30)),
        ("LOT-B", 3, in_days(20)),
        ("LOT-C", 10, None),
        ("LOT-D", 4, in_days(10)),
    ):
        assert (await receive(order, "WH-A", "SAUCE", lot, quantity, expiry)).status_code == 201
    first = await reserve(order, "o-1", ("SAUCE", 6))
    assert first.status == "reserved"
    assert lots(first.allocations) == [(1, "WH-A", "LOT-D", 4), (1, "WH-A", "LOT-B", 2)]
    assert first.allocations[0].expiry == in_days(10)
    second = await reserve(order, "o-2", ("SAUCE", 9))
    assert lots(second.allocations) == [
        (1, "WH-A", "LOT-B", 1),
        (1, "WH-A", "LOT-A", 5),
        (1, "WH-A", "LOT-C", 3),
    ]
    assert second.allocations[-1].expiry is None
    listed = (await availability(order, "SAUCE"))["WH-A"]["lots"]
    assert [(x["lot"], x["available"]) for x in listed] == [
        ("LOT-D", 0),
        ("LOT-B", 0),
        ("LOT-A", 0),
        ("LOT-C", 7),
    ]


async def test_expired_and_held_lots_are_never_reserved(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = await stack.start("order")
    await make_sku(order, "MILK", shelf_life=True)
    await make_warehouse(order, "WH-A")
    for lot, quantity, days in (("M-TODAY", 5, 0), ("M-HELD", 5, 5), ("M-OK", 2, 9)):
        assert (await receive(order, "WH-A", "MILK", lot, quantity, in_days(days))).is_success
    held = await order.http.post(
        "/stock/holds",
        json={"sku": "MILK", "lot": "M-HELD", "reason": "lab test"},
        headers=auth("coordinator"),
    )
    assert held.status_code == 200
    result = await reserve(order, "o-1", ("MILK", 6))
    assert result.status == "partial"
    assert lots(result.allocations) == [(1, "WH-A", "M-OK", 2)]
    assert result.missing == [Missing(line_no=1, sku="MILK", quantity=4)]

    # Time passes: on its expiry date a lot is no longer reserved either. Without the
    # clock moving, FEFO would take M-SOON before M-LATER.
    await receive(order, "WH-A", "MILK", "M-LATER", 5, in_days(20))
    assert await held_by(order, "o-1") == [(1, "WH-A", "M-OK", 2), (1, "WH-A", "M-LATER", 4)]
    await receive(order, "WH-A", "MILK", "M-SOON", 3, in_days(12))
    later = in_days(12)
    monkeypatch.setattr(stock, "today", lambda: later)
    result = await reserve(order, "o-2", ("MILK", 2))
    assert result.status == "partial"
    assert lots(result.allocations) == [(1, "WH-A", "M-LATER", 1)]
    by_lot = {x["lot"]: x for x in (await availability(order, "MILK"))["WH-A"]["lots"]}
    assert (by_lot["M-SOON"]["available"], by_lot["M-SOON"]["expired"]) == (3, True)
    assert by_lot["M-LATER"]["expired"] is False


async def test_one_warehouse_when_one_can_fill_every_line(stack: Stack) -> None:
    """The biggest stock of one SKU does not win if it cannot fill the other line; among
    warehouses that can fill everything, the one with most availability wins."""
    order = await stack.start("order")
    await stocked(order, "SKU-X", {("WH-A", "A"): 100, ("WH-B", "B"): 3, ("WH-C", "C"): 5})
    await stocked(order, "SKU-Y", {("WH-B", "B"): 3, ("WH-C", "C"): 4, ("WH-D", "D"): 50})
    result = await reserve(order, "o-1", ("SKU-X", 3), ("SKU-Y", 3))
    assert result.status == "reserved"
    assert lots(result.allocations) == [(1, "WH-C", "C", 3), (2, "WH-C", "C", 3)]


async def test_equal_warehouses_tie_break_on_id(stack: Stack) -> None:
    order = await stack.start("order")
    await stocked(order, "SKU-X", {("WH-B", "B"): 5, ("WH-A", "A"): 5})
    result = await reserve(order, "o-1", ("SKU-X", 2))
    assert lots(result.allocations) == [(1, "WH-A", "A", 2)]


async def test_split_across_warehouses_greedily(stack: Stack) -> None:
    """No warehouse holds 8: the one covering most (WH-C, 5) is chosen first, then the
    next best (WH-A, 4), and WH-B is left alone."""
    order = await stack.start("order")
    await stocked(order, "SKU-X", {("WH-A", "A"): 4, ("WH-B", "B"): 3, ("WH-C", "C"): 5})
    result = await reserve(order, "o-1", ("SKU-X", 8))
    assert result.status == "reserved"
    assert lots(result.allocations) == [(1, "WH-A", "A", 3), (1, "WH-C", "C", 5)]
    assert (await availability(order, "SKU-X"))["WH-B"]["reserved"] == 0


async def test_split_picks_the_fewest_warehouses_for_several_lines(stack: Stack) -> None:
    """WH-C holds some of both SKUs but covers less (4) than WH-A (all of X, 5) or WH-B
    (all of Y, 5): two warehouses, WH-C untouched."""
    order = await stack.start("order")
    await stocked(order, "SKU-X", {("WH-A", "A"): 5, ("WH-C", "C"): 2})
    await stocked(order, "SKU-Y", {("WH-B", "B"): 5, ("WH-C", "C"): 2})
    result = await reserve(order, "o-1", ("SKU-X", 5), ("SKU-Y", 5))
    assert lots(result.allocations) == [(1, "WH-A", "A", 5), (2, "WH-B", "B", 5)]


async def test_inactive_warehouse_is_not_reserved_until_reactivated(stack: Stack) -> None:
    order = await stack.start("order")
    await stocked(order, "SKU-X", {("WH-A", "A"): 5})
    off = await order.http.patch(
        "/warehouses/WH-A", json={"active": False}, headers=auth("coordinator")
    )
    assert off.status_code == 200
    assert (await reserve(order, "o-1", ("SKU-X", 2))).status == "backordered"
    assert (await availability(order, "SKU-X"))["WH-A"]["reservable"] == 0
    await order.http.patch("/warehouses/WH-A", json={"active": True}, headers=auth("coordinator"))
    assert await held_by(order, "o-1") == [(1, "WH-A", "A", 2)]


# --- backorders --------------------------------------------------------------------------


async def test_backorders_are_filled_first_in_first_out(stack: Stack, bus: Bus) -> None:
    """o-1 is partly backordered, then o-2 fully; receipts fill o-1 first, then o-2, and
    each completed order gets one OrderBackorderFilled."""
    order = await stack.start("order")
    await stocked(order, "SKU-X", {("WH-A", "L1"): 6})
    await make_warehouse(order, "WH-B")
    first = await reserve(order, "o-1", ("SKU-X", 10))
    assert (first.status, lots(first.allocations)) == ("partial", [(1, "WH-A", "L1", 6)])
    assert first.missing == [Missing(line_no=1, sku="SKU-X", quantity=4)]
    second = await reserve(order, "o-2", ("SKU-X", 3))
    assert (second.status, second.allocations) == ("backordered", [])
    queue = await open_backorders(order, sku="SKU-X")
    assert [(b["order_id"], b["quantity"]) for b in queue] == [("o-1", 4), ("o-2", 3)]

    r = await receive(order, "WH-A", "SKU-X", "L2", 5)
    assert r.json()["backorders_filled"] == ["o-1"]
    assert await held_by(order, "o-1") == [(1, "WH-A", "L1", 6), (1, "WH-A", "L2", 4)]
    assert await held_by(order, "o-2") == [(1, "WH-A", "L2", 1)]
    assert [(b["order_id"], b["quantity"]) for b in await open_backorders(order)] == [("o-2", 2)]
    [filled] = await wait_events(bus, "order.order.backorder_filled", 1)
    assert filled["subject"] == "o-1"
    assert filled["data"] == {
        "order_id": "o-1",
        "allocations": [
            {"line_no": 1, "sku": "SKU-X", "warehouse_id": "WH-A", "lot": "L2", "quantity": 4}
        ],
    }

    r = await receive(order, "WH-B", "SKU-X", "L3", 2)
    assert r.json()["backorders_filled"] == ["o-2"]
    assert await open_backorders(order) == []
    assert [b["order_id"] for b in await open_backorders(order, status="filled")] == [
        "o-1",
        "o-2",
    ]
    events = await wait_events(bus, "order.order.backorder_filled", 2)
    assert events[1]["data"]["allocations"] == [
        {"line_no": 1, "sku": "SKU-X", "warehouse_id": "WH-A", "lot": "L2", "quantity": 1},
        {"line_no": 1, "sku": "SKU-X", "warehouse_id": "WH-B", "lot": "L3", "quantity": 2},
    ]
    await ledger_matches_balances(order)


async def test_an_order_is_filled_only_when_every_backordered_line_is(
    stack: Stack, bus: Bus
) -> None:
    order = await stack.start("order")
    await stocked(order, "SKU-X", {})
    await stocked(order, "SKU-Y", {})
    await make_warehouse(order, "WH-A")
    result = await reserve(order, "o-1", ("SKU-X", 2), ("SKU-Y", 2))
    assert result.status == "backordered"
    assert len(result.missing) == 2
    assert (await receive(order, "WH-A", "SKU-X", "X1", 5)).json()["backorders_filled"] == []
    assert await held_by(order, "o-1") == [(1, "WH-A", "X1", 2)]
    assert (await receive(order, "WH-A", "SKU-Y", "Y1", 1)).json()["backorders_filled"] == []
    assert (await receive(order, "WH-A", "SKU-Y", "Y1", 1)).json()["backorders_filled"] == ["o-1"]
    [event] = await wait_events(bus, "order.order.backorder_filled", 1)
    assert [(a["sku"], a["quantity"]) for a in event["data"]["allocations"]] == [
        ("SKU-X", 2),
        ("SKU-Y", 2),
    ]


async def test_fill_backorders_directly(stack: Stack) -> None:
    """Called on its own (as other writers do), it returns the completed orders."""
    order = await stack.start("order")
    await stocked(order, "SKU-X", {("WH-A", "L1"): 1})
    await reserve(order, "o-1", ("SKU-X", 3))
    source = order.runtime.source
    assert await in_tx(order, lambda s: stock.fill_backorders(s, "SKU-X", source)) == []
    async with order.runtime.db.transaction() as session:  # stock appears behind the ledger
        await session.execute(
            sa.update(StockBalance).where(StockBalance.lot == "L1").values(on_hand=3)
        )
    filled = await in_tx(order, lambda s: stock.fill_backorders(s, "SKU-X", source))
    assert [(o, lots(a)) for o, a in filled] == [("o-1", [(1, "WH-A", "L1", 2)])]


# --- idempotence, release, drop ------------------------------------------------------------


async def test_reserve_is_idempotent_and_incremental(stack: Stack) -> None:
    order = await stack.start("order")
    await stocked(order, "SKU-X", {("WH-A", "A"): 10})
    await stocked(order, "SKU-Y", {("WH-A", "A"): 10})
    once = await reserve(order, "o-1", ("SKU-X", 4))
    twice = await reserve(order, "o-1", ("SKU-X", 4))
    assert once == twice
    assert len(await movements(order, order_id="o-1")) == 1
    grown = await reserve(order, "o-1", ("SKU-X", 4), ("SKU-Y", 2))
    assert lots(grown.allocations) == [(1, "WH-A", "A", 4), (2, "WH-A", "A", 2)]
    assert len(await movements(order, order_id="o-1")) == 2
    assert (await availability(order, "SKU-X"))["WH-A"]["reserved"] == 4

    short = await reserve(order, "o-2", ("SKU-X", 10))
    again = await reserve(order, "o-2", ("SKU-X", 10))
    assert short == again
    assert (short.status, short.missing[0].quantity) == ("partial", 4)
    assert [b["quantity"] for b in await open_backorders(order, order_id="o-2")] == [4]
    assert (await availability(order, "SKU-X"))["WH-A"]["reserved"] == 10

    # What is issued still counts: reserving again after picking adds nothing.
    await issue(order, "o-1", "WH-A", "s-1")
    after = await reserve(order, "o-1", ("SKU-X", 4), ("SKU-Y", 2))
    assert (after.status, after.allocations, after.missing) == ("reserved", [], [])
    assert len(await movements(order, order_id="o-1")) == 4
    await ledger_matches_balances(order)


async def test_bad_requests_are_refused(stack: Stack) -> None:
    order = await stack.start("order")
    await stocked(order, "SKU-X", {("WH-A", "A"): 10})
    with pytest.raises(Unprocessable) as unknown:
        await reserve(order, "o-1", ("SKU-X", 1), ("NOPE", 1))
    assert unknown.value.code == "unknown_sku"
    dupes = [LineRequest(line_no=1, sku="SKU-X", quantity=1)] * 2
    with pytest.raises(Unprocessable):
        await in_tx(order, lambda s: stock.reserve(s, "o-1", dupes, "test"))
    assert await held_by(order, "o-1") == []
    empty = await in_tx(order, lambda s: stock.reserve(s, "o-1", [], "test"))
    assert empty == ReservationResult(status="reserved", allocations=[], missing=[])


async def test_release_frees_stock_and_cancels_backorders(stack: Stack, bus: Bus) -> None:
    """Cancelling o-1 frees its 8 units; they go to o-2's backorder first (FIFO)."""
    order = await stack.start("order")
    await stocked(order, "SKU-X", {("WH-A", "A"): 10})
    await reserve(order, "o-1", ("SKU-X", 8))
    assert (await reserve(order, "o-2", ("SKU-X", 5))).missing[0].quantity == 3
    assert (await reserve(order, "o-3", ("SKU-X", 4))).status == "backordered"
    source = order.runtime.source
    await in_tx(order, lambda s: stock.release(s, "o-1", source))
    assert await held_by(order, "o-1") == []
    assert await held_by(order, "o-2") == [(1, "WH-A", "A", 5)]
    assert await held_by(order, "o-3") == [(1, "WH-A", "A", 4)]
    x = (await availability(order, "SKU-X"))["WH-A"]
    assert (x["reserved"], x["available"]) == (9, 1)
    await wait_events(bus, "order.order.backorder_filled", 2)
    filled = await stream_events(bus, "order.order.backorder_filled")
    assert sorted(e["subject"] for e in filled) == ["o-2", "o-3"]
    unreserve = await movements(order, kind="unreserve")
    assert [(m["order_id"], m["quantity"]) for m in unreserve] == [("o-1", -8)]

    again = await movements(order)
    await in_tx(order, lambda s: stock.release(s, "o-1", source))
    assert await movements(order) == again

    # Releasing an order with open backorders cancels them: later stock skips it.
    await reserve(order, "o-4", ("SKU-X", 3))
    assert [b["order_id"] for b in await open_backorders(order)] == ["o-4"]
    await in_tx(order, lambda s: stock.release(s, "o-4", source))
    assert await open_backorders(order) == []
    assert [b["order_id"] for b in await open_backorders(order, status="cancelled")] == ["o-4"]
    await receive(order, "WH-A", "SKU-X", "B", 5)
    assert await held_by(order, "o-4") == []
    await ledger_matches_balances(order)


async def test_drop_backorders(stack: Stack) -> None:
    order = await stack.start("order")
    await stocked(order, "SKU-X", {("WH-A", "A"): 6})
    await stocked(order, "SKU-Y", {})
    await reserve(order, "o-1", ("SKU-X", 10), ("SKU-Y", 1))
    dropped = await in_tx(order, lambda s: stock.drop_backorders(s, "o-1", "/tests"))
    assert dropped == [
        Missing(line_no=1, sku="SKU-X", quantity=4),
        Missing(line_no=2, sku="SKU-Y", quantity=1),
    ]
    assert await in_tx(order, lambda s: stock.drop_backorders(s, "o-1", "/tests")) == []
    await receive(order, "WH-A", "SKU-X", "B", 5)
    assert await held_by(order, "o-1") == [(1, "WH-A", "A", 6)]
    assert (await availability(order, "SKU-X"))["WH-A"]["available"] == 5


async def test_inventory_changes_carry_the_skus_open_backorders(stack: Stack, bus: Bus) -> None:
    """Backorders are per SKU: each InventoryChanged carries the SKU's open backorder units,
    and a change of backorders alone (no stock moved) is announced in every warehouse
    holding the SKU, or every active warehouse when none does (the supplier service's
    inventory position subtracts them)."""
    order = await stack.start("order")
    await stocked(order, "SKU-X", {("WH-A", "L1"): 2, ("WH-B", "L2"): 1})
    await stocked(order, "SKU-Y", {})

    def of(sku: str, reason: str) -> Any:
        return lambda e: e["data"]["sku"] == sku and e["data"]["reason"] == reason

    def seen(events: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
        return sorted(
            (e["data"]["warehouse_id"], e["data"]["reserved"], e["data"]["backordered"])
            for e in events
        )

    await reserve(order, "o-1", ("SKU-X", 10))  # 3 reserved, 7 backordered
    assert seen(await wait_events(bus, "order.inventory.changed", 2, of("SKU-X", "reserve"))) == [
        ("WH-A", 2, 7),
        ("WH-B", 1, 7),
    ]
    await reserve(order, "o-2", ("SKU-X", 4))  # nothing to reserve: backorders alone
    events = await wait_events(bus, "order.inventory.changed", 4, of("SKU-X", "reserve"))
    assert seen(events[2:]) == [("WH-A", 2, 11), ("WH-B", 1, 11)]
    await in_tx(order, lambda s: stock.drop_backorders(s, "o-2", "/tests"))
    dropped = await wait_events(bus, "order.inventory.changed", 2, of("SKU-X", "backorder_drop"))
    assert seen(dropped) == [("WH-A", 2, 7), ("WH-B", 1, 7)]
    await reserve(order, "o-3", ("SKU-Y", 1))  # no balance anywhere: every active warehouse
    assert seen(await wait_events(bus, "order.inventory.changed", 2, of("SKU-Y", "reserve"))) == [
        ("WH-A", 0, 1),
        ("WH-B", 0, 1),
    ]
    await in_tx(order, lambda s: stock.release(s, "o-1", order.runtime.source))
    released = await wait_events(bus, "order.inventory.changed", 2, of("SKU-X", "unreserve"))
    assert seen(released) == [("WH-A", 0, 0), ("WH-B", 0, 0)]


# --- issue, unissue, restock ----------------------------------------------------------------


async def test_issue_unissue_restock(stack: Stack, bus: Bus) -> None:
    order = await stack.start("order")
    await stocked(order, "SKU-X", {("WH-A", "A"): 5, ("WH-B", "B"): 5})
    result = await reserve(order, "o-1", ("SKU-X", 8))
    assert lots(result.allocations) == [(1, "WH-A", "A", 5), (1, "WH-B", "B", 3)]
    source = order.runtime.source

    picked = await issue(order, "o-1", "WH-A", "s-1")
    assert lots(picked) == [(1, "WH-A", "A", 5)]
    a = (await availability(order, "SKU-X"))["WH-A"]
    assert (a["on_hand"], a["reserved"], a["available"]) == (0, 0, 0)
    [moved] = await movements(order, kind="issue")
    assert (moved["shipment_id"], moved["order_id"], moved["on_hand_delta"]) == ("s-1", "o-1", -5)
    assert moved["reserved_delta"] == -5
    # Idempotent per shipment; a shipment id belongs to one order and warehouse.
    ledger = await movements(order)
    assert await issue(order, "o-1", "WH-A", "s-1") == picked
    assert await movements(order) == ledger
    with pytest.raises(Conflict):
        await issue(order, "o-2", "WH-A", "s-1")
    assert await issue(order, "o-1", "WH-Z", "s-9") == []
    assert await held_by(order, "o-1") == [(1, "WH-B", "B", 3)]

    # Shipment cancelled before dispatch: the stock is back and free, not re-reserved.
    await in_tx(order, lambda s: stock.unissue(s, "s-1", source))
    a = (await availability(order, "SKU-X"))["WH-A"]
    assert (a["on_hand"], a["reserved"], a["available"]) == (5, 0, 5)
    await in_tx(order, lambda s: stock.unissue(s, "s-1", source))
    assert [m["quantity"] for m in await movements(order, kind="unissue")] == [5]
    assert await held_by(order, "o-1") == [(1, "WH-B", "B", 3)]

    # Returned to sender: the lots come back on hand, once.
    assert lots(await issue(order, "o-1", "WH-B", "s-2")) == [(1, "WH-B", "B", 3)]
    assert (await availability(order, "SKU-X"))["WH-B"]["on_hand"] == 2
    back = await in_tx(order, lambda s: stock.restock(s, "s-2", source))
    assert lots(back) == [(1, "WH-B", "B", 3)]
    assert await in_tx(order, lambda s: stock.restock(s, "s-2", source)) == back
    assert [m["quantity"] for m in await movements(order, kind="restock")] == [3]
    b = (await availability(order, "SKU-X"))["WH-B"]
    assert (b["on_hand"], b["reserved"], b["available"]) == (5, 0, 5)
    assert await in_tx(order, lambda s: stock.restock(s, "s-1", source)) == []  # unissued

    await wait_events(bus, "order.inventory.changed", 1, lambda e: e["data"]["reason"] == "restock")
    reasons = [e["data"]["reason"] for e in await stream_events(bus, "order.inventory.changed")]
    assert {"issue", "unissue", "restock"} <= set(reasons)
    await ledger_matches_balances(order)


async def test_restock_fills_backorders(stack: Stack) -> None:
    order = await stack.start("order")
    await stocked(order, "SKU-X", {("WH-A", "A"): 5})
    await reserve(order, "o-1", ("SKU-X", 5))
    await issue(order, "o-1", "WH-A", "s-1")
    empty = (await availability(order, "SKU-X"))["WH-A"]
    assert (empty["on_hand"], empty["lots"]) == (0, [])  # an empty lot is not listed
    assert (await reserve(order, "o-2", ("SKU-X", 3))).status == "backordered"
    source = order.runtime.source
    await in_tx(order, lambda s: stock.restock(s, "s-1", source))
    assert await held_by(order, "o-2") == [(1, "WH-A", "A", 3)]
    assert (await availability(order, "SKU-X"))["WH-A"]["available"] == 2


# --- concurrency ---------------------------------------------------------------------------


async def balances_of(order: RunningService, sku: str) -> list[StockBalance]:
    async with order.runtime.db.reading() as session:
        rows = await session.scalars(sa.select(StockBalance).where(StockBalance.sku == sku))
        return list(rows)


async def open_quantity(order: RunningService, order_id: str) -> int:
    async with order.runtime.db.reading() as session:
        total = await session.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(StockBackorder.quantity), 0)).where(
                StockBackorder.order_id == order_id, StockBackorder.status == "open"
            )
        )
    return int(total or 0)


async def test_concurrent_orders_never_oversell(stack: Stack) -> None:
    """40 orders for 1-3 units each race for 25 units in three warehouses, each in its own
    transaction: exactly 25 are reserved, nothing goes negative, and every order's
    reserved plus backordered quantity is its demand."""
    order = await stack.start("order", relay_enabled=False)
    await stocked(
        order,
        "SKU-X",
        {("WH-A", "A1"): 8, ("WH-A", "A2"): 4, ("WH-B", "B1"): 6, ("WH-C", "C1"): 7},
    )
    rng = random.Random(20251125)
    demand = {f"o-{i:02d}": rng.randint(1, 3) for i in range(40)}
    results = await asyncio.gather(*(reserve(order, o, ("SKU-X", q)) for o, q in demand.items()))

    reserved_total = 0
    for (order_id, wanted), result in zip(demand.items(), results, strict=True):
        got = sum(a.quantity for a in result.allocations)
        missing = sum(m.quantity for m in result.missing)
        assert got + missing == wanted
        assert result.status == ("reserved" if not missing else "partial" if got else "backordered")
        assert sum(q for *_, q in await held_by(order, order_id)) == got
        assert await open_quantity(order, order_id) == missing
        reserved_total += got
    assert reserved_total == min(sum(demand.values()), 25) == 25
    balances = await balances_of(order, "SKU-X")
    assert sum(b.reserved for b in balances) == 25
    assert all(b.available == 0 for b in balances)
    await ledger_matches_balances(order)


async def test_concurrent_mixed_writers_keep_the_books(stack: Stack) -> None:
    """Reservations of two SKUs (lines in either order), receipts, releases and issues all
    at once: no deadlock, no oversell, and no backorder waits while stock is reservable."""
    order = await stack.start("order", relay_enabled=False)
    await stocked(order, "SKU-X", {("WH-A", "A"): 10, ("WH-B", "B"): 5})
    await stocked(order, "SKU-Y", {("WH-A", "A"): 6, ("WH-B", "B"): 8})
    source = order.runtime.source
    await make_warehouse(order, "WH-C")
    rng = random.Random(7)
    demand: dict[str, dict[str, int]] = {}
    for i in range(30):
        lines = {"SKU-X": rng.randint(1, 3), "SKU-Y": rng.randint(1, 3)}
        if rng.random() < 0.5:
            lines = dict(reversed(list(lines.items())))
        demand[f"o-{i:02d}"] = lines
    await asyncio.gather(*(reserve(order, o, *lines.items()) for o, lines in demand.items()))

    cancelled = [f"o-{i:02d}" for i in range(0, 30, 3)]
    shipped = [f"o-{i:02d}" for i in range(1, 12, 3)]
    more = {f"o-{i}": {"SKU-X": rng.randint(1, 4)} for i in range(30, 40)}
    demand.update(more)

    async def release(order_id: str) -> None:
        await in_tx(order, lambda s: stock.release(s, order_id, source))

    async def ship(order_id: str) -> None:
        for warehouse_id in ("WH-A", "WH-B"):
            await issue(order, order_id, warehouse_id, f"{order_id}/{warehouse_id}")

    async def book(sku: str, warehouse_id: str, lot: str, quantity: int) -> None:
        r = await receive(order, warehouse_id, sku, lot, quantity)
        assert r.status_code == 201, r.text

    await asyncio.gather(
        *(release(o) for o in cancelled),
        *(ship(o) for o in shipped),
        *(reserve(order, o, *lines.items()) for o, lines in more.items()),
        book("SKU-X", "WH-A", "A2", 7),
        book("SKU-X", "WH-B", "B2", 4),
        book("SKU-Y", "WH-A", "A2", 5),
        book("SKU-Y", "WH-C", "C1", 3),
        book("SKU-X", "WH-C", "C1", 2),
    )

    async with order.runtime.db.reading() as session:
        for order_id, lines in demand.items():
            for line_no, (sku, wanted) in enumerate(lines.items(), 1):
                rows = await session.execute(
                    sa.text(
                        "SELECT status, SUM(quantity) FROM stock_allocations "
                        "WHERE order_id = :o AND line_no = :l GROUP BY status"
                    ),
                    {"o": order_id, "l": line_no},
                )
                held = {status: int(q) for status, q in rows}
                waiting = await session.scalar(
                    sa.select(sa.func.coalesce(sa.func.sum(StockBackorder.quantity), 0)).where(
                        StockBackorder.order_id == order_id,
                        StockBackorder.line_no == line_no,
                        StockBackorder.status == "open",
                    )
                )
                live = held.get("reserved", 0) + held.get("issued", 0) + int(waiting or 0)
                if order_id in cancelled:
                    assert held.get("reserved", 0) == 0 and not waiting, order_id
                else:
                    assert live == wanted, (order_id, sku, held, waiting)
    for sku in ("SKU-X", "SKU-Y"):
        balances = await balances_of(order, sku)
        reservable = sum(b.available for b in balances)
        assert min(b.available for b in balances) >= 0
        waiting_skus = await open_backorders(order, sku=sku)
        assert not (waiting_skus and reservable), (sku, reservable, waiting_skus)
    await ledger_matches_balances(order)
