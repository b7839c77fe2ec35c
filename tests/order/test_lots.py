"""Lot status in the ledger: only released lots are reserved or picked; leaving
`released` holds the lot's stock everywhere and moves its open reservations (other lots,
else a backorder, else a coordinator task); stock of the lot arriving later is held; a
status change is a history row and a LotStatusChanged event; a repeat changes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from services.common.bus import Bus
from services.order import orders, stock
from services.order.stock_models import StockBalance
from tests.harness import RunningService, Stack, auth
from tests.order.test_stock import (
    COORDINATOR,
    in_tx,
    ledger_matches_balances,
    lot_of,
    movements,
    receive,
    reserve,
    stocked,
    stream_events,
    wait_events,
)

SERVICE = auth("service", subject="recall-workflow")


async def set_status(
    order: RunningService,
    lot: str,
    status: str,
    *,
    sku: str = "BOLT",
    reason: str = "supplier notice SN-4",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> httpx.Response:
    body = {"status": status, "reason": reason, **extra}
    return await order.http.post(
        f"/stock/lots/{sku}/{lot}/status", json=body, headers=headers or COORDINATOR
    )


async def lot_detail(order: RunningService, lot: str, sku: str = "BOLT") -> dict[str, Any]:
    r = await order.http.get(f"/stock/lots/{sku}/{lot}", headers=auth("ops"))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_recall_holds_the_lot_everywhere_and_moves_its_reservations(
    stack: Stack, bus: Bus
) -> None:
    """Recalling B1: its stock in every warehouse is held, the reservation on it moves
    to B2 (6 units) and backorders the rest (2); later receipts of B1 arrive held; new
    reservations never take B1."""
    order = await stack.start("order")
    await stocked(order, "BOLT", {("WH-A", "B1"): 10, ("WH-B", "B1"): 4, ("WH-A", "B2"): 6})
    await reserve(order, "o-1", ("BOLT", 8))  # WH-A, B1 first (lot order without expiry)
    r = await set_status(
        order, "B1", "recalled", recall_id="rc-1", headers=SERVICE, reason="recall RC-1"
    )
    assert r.status_code == 200, r.text
    result = r.json()
    assert (result["sku"], result["lot"], result["status"]) == ("BOLT", "B1", "recalled")
    assert result["warehouses"] == [
        {"warehouse_id": "WH-A", "on_hand": 10, "reserved": 0, "held": 10},
        {"warehouse_id": "WH-B", "on_hand": 4, "reserved": 0, "held": 4},
    ]
    assert result["reservations_moved"] == [
        {"order_id": "o-1", "line_no": 1, "quantity": 8, "short": 2}
    ]
    held = await in_tx(order, lambda s: stock.reservations_of(s, "o-1"))
    assert [(a.lot, a.quantity) for a in held] == [("B2", 6)]

    # Nothing new is reserved from B1; stock of B1 arriving later is held too.
    assert (await reserve(order, "o-2", ("BOLT", 3))).status == "backordered"
    arrived = (await receive(order, "WH-A", "BOLT", "B1", 5)).json()["balance"]
    assert (arrived["held"], arrived["on_hold"], arrived["available"]) == (15, True, 0)

    [event] = await wait_events(bus, "order.lot.status_changed", 1)
    assert event["subject"] == "BOLT/B1"
    assert event["data"] == {
        "sku": "BOLT",
        "lot": "B1",
        "status": "recalled",
        "previous": "released",
        "reason": "recall RC-1",
        "changed_by": "recall-workflow",
        "recall_id": "rc-1",
    }
    detail = await lot_detail(order, "B1")
    assert detail["status"] == "recalled" and detail["expiry"] is None
    [change] = detail["history"]
    assert (change["previous"], change["status"], change["recall_id"]) == (
        "released",
        "recalled",
        "rc-1",
    )
    await ledger_matches_balances(order)


async def test_the_same_status_again_changes_nothing(stack: Stack, bus: Bus) -> None:
    order = await stack.start("order")
    await stocked(order, "BOLT", {("WH-A", "B1"): 5})
    assert (await set_status(order, "B1", "quarantined")).status_code == 200
    again = await set_status(order, "B1", "quarantined", reason="another reason")
    assert again.status_code == 200
    assert again.json()["reservations_moved"] == []
    detail = await lot_detail(order, "B1")
    assert len(detail["history"]) == 1 and detail["history"][0]["reason"] == "supplier notice SN-4"
    assert len(await movements(order, kind="hold")) == 1
    # A later change is on the stream after it; the repeat never was.
    assert (await set_status(order, "B1", "on_hold")).status_code == 200
    events = await wait_events(bus, "order.lot.status_changed", 2)
    assert [e["data"]["status"] for e in events] == ["quarantined", "on_hold"]
    assert len(await stream_events(bus, "order.lot.status_changed")) == 2


async def test_released_again_frees_the_stock_and_fills_backorders(stack: Stack) -> None:
    """Between blocked statuses the stock stays held; back to `released` it is available
    again and fills the backorder that the recall caused."""
    order = await stack.start("order")
    await stocked(order, "BOLT", {("WH-A", "B1"): 10})
    await reserve(order, "o-1", ("BOLT", 4))
    moved = (await set_status(order, "B1", "on_hold")).json()["reservations_moved"]
    assert moved == [{"order_id": "o-1", "line_no": 1, "quantity": 4, "short": 4}]
    assert (await set_status(order, "B1", "quarantined")).json()["warehouses"][0]["held"] == 10
    r = await set_status(order, "B1", "released", reason="cleared by QA")
    assert r.status_code == 200, r.text
    assert r.json()["warehouses"] == [
        {"warehouse_id": "WH-A", "on_hand": 10, "reserved": 4, "held": 0}
    ]
    held = await in_tx(order, lambda s: stock.reservations_of(s, "o-1"))
    assert [(a.lot, a.quantity) for a in held] == [("B1", 4)]
    history = (await lot_detail(order, "B1"))["history"]
    assert [(h["previous"], h["status"]) for h in history] == [
        ("released", "on_hold"),
        ("on_hold", "quarantined"),
        ("quarantined", "released"),
    ]
    await ledger_matches_balances(order)


async def test_holds_and_lot_status_are_one_rule(stack: Stack) -> None:
    """A lot stays blocked while either blocks it: lifting the hold of a recalled lot
    keeps it held, and releasing the lot while a hold stands keeps it held too."""
    order = await stack.start("order")
    await stocked(order, "BOLT", {("WH-A", "B1"): 3})
    hold = {"sku": "BOLT", "lot": "B1", "reason": "damaged pallet"}
    assert (await order.http.post("/stock/holds", json=hold, headers=COORDINATOR)).is_success
    assert (await set_status(order, "B1", "recalled")).status_code == 200
    lift = {"sku": "BOLT", "lot": "B1"}
    r = await order.http.post("/stock/holds/release", json=lift, headers=COORDINATOR)
    assert r.status_code == 200, r.text
    assert (await lot_of(order, "BOLT", "WH-A", "B1"))["held"] == 3
    assert (await set_status(order, "B1", "released")).status_code == 200
    b1 = await lot_of(order, "BOLT", "WH-A", "B1")
    assert (b1["held"], b1["on_hold"], b1["available"]) == (0, False, 3)

    assert (await order.http.post("/stock/holds", json=hold, headers=COORDINATOR)).is_success
    assert (await set_status(order, "B1", "recalled")).status_code == 200
    assert (await set_status(order, "B1", "released")).status_code == 200
    assert (await lot_of(order, "BOLT", "WH-A", "B1"))["held"] == 3  # the hold still stands
    await ledger_matches_balances(order)


async def test_a_lot_given_a_status_before_its_stock_arrives(stack: Stack) -> None:
    """A recall may name a lot no warehouse holds now: stock of it received later
    arrives held, and goods shipped and put back (unissued) return held as well."""
    order = await stack.start("order")
    await stocked(order, "BOLT", {("WH-A", "B2"): 2})
    assert (await set_status(order, "B7", "recalled")).status_code == 200
    assert (await lot_detail(order, "B7"))["warehouses"] == []
    arrived = (await receive(order, "WH-A", "BOLT", "B7", 4)).json()["balance"]
    assert (arrived["held"], arrived["on_hold"]) == (4, True)

    await reserve(order, "o-1", ("BOLT", 2))
    source = order.runtime.source
    await in_tx(order, lambda s: stock.issue(s, "o-1", "WH-A", "shp-1", source))
    assert (await set_status(order, "B2", "quarantined")).status_code == 200
    await in_tx(order, lambda s: stock.unissue(s, "shp-1", source))
    b2 = await lot_of(order, "BOLT", "WH-A", "B2")
    assert (b2["on_hand"], b2["held"], b2["available"]) == (2, 2, 0)
    await ledger_matches_balances(order)


async def test_a_reservation_found_on_a_blocked_lot_is_swapped_at_pick(stack: Stack) -> None:
    """Defence at pick time, like an expired lot: a reserved lot that is blocked is not
    picked; the warehouse's other lots take its place."""
    order = await stack.start("order")
    await stocked(order, "BOLT", {("WH-A", "B1"): 5, ("WH-A", "B2"): 5})
    await reserve(order, "o-1", ("BOLT", 2))

    async def block_behind_the_ledgers_back(session: Any) -> None:
        await session.execute(
            sa.update(StockBalance)
            .where(StockBalance.lot == "B1")
            .values(on_hold=True, held=StockBalance.on_hand - StockBalance.reserved)
        )

    await in_tx(order, block_behind_the_ledgers_back)
    source = order.runtime.source
    pick = await in_tx(order, lambda s: stock.issue(s, "o-1", "WH-A", "shp-1", source))
    assert [(p.lot, p.quantity) for p in pick.picked] == [("B2", 2)]
    [off] = await movements(order, kind="unreserve")
    assert off["note"] == "lot B1 blocked before picking"


async def test_an_order_about_to_ship_left_short_gets_a_coordinator_task(
    stack: Stack,
) -> None:
    """A confirmed order whose only lot is recalled is backordered by the ledger; it was
    not waiting on stock, so a coordinator is asked to look at it."""
    from tests.order.test_orders import body, seeded

    order = await seeded(stack)
    r = await receive(order, "WH-NORTH", "MUG-CERAMIC", "M-9", 5)
    assert r.status_code == 201, r.text
    placed = await order.http.post(
        "/orders",
        json=body(lines=[{"sku": "MUG-CERAMIC", "quantity": 2}]),
        headers={**COORDINATOR, "Idempotency-Key": "recall-short"},
    )
    order_id = placed.json()["id"]
    source = order.runtime.source

    async def confirm(session: Any) -> Any:
        return await orders.reserve(session, source, await orders.for_update(session, order_id))

    assert (await in_tx(order, confirm)).status == "reserved"
    r = await set_status(order, "M-9", "recalled", sku="MUG-CERAMIC")
    assert r.json()["reservations_moved"] == [
        {"order_id": order_id, "line_no": 1, "quantity": 2, "short": 2}
    ]
    tasks = await order.http.get("/tasks", params={"order_id": order_id}, headers=COORDINATOR)
    [task] = tasks.json()["items"]
    assert task["kind"] == "quarantine_short" and "recalled" in task["detail"]


@pytest.mark.parametrize(
    ("path", "payload", "status"),
    [
        ("/stock/lots/BOLT/B1/status", {"status": "destroyed", "reason": "x"}, 422),
        ("/stock/lots/BOLT/B1/status", {"status": "recalled", "reason": ""}, 422),
        ("/stock/lots/BOLT/B1/status", {"status": "recalled", "reason": "x" * 501}, 422),
        ("/stock/lots/BOLT/B1/status", {"status": "recalled"}, 422),
        (
            "/stock/lots/BOLT/B1/status",
            {"status": "recalled", "reason": "x", "recall_id": "r" * 37},
            422,
        ),
        ("/stock/lots/BOLT/B1/status", {"status": "recalled", "reason": "x", "extra": 1}, 422),
        ("/stock/lots/NOPE/B1/status", {"status": "recalled", "reason": "x"}, 404),
        ("/stock/lots/BOLT/%20bad/status", {"status": "recalled", "reason": "x"}, 422),
    ],
)
async def test_bad_lot_status_requests_are_problems(
    stack: Stack, path: str, payload: dict[str, Any], status: int
) -> None:
    order = await stack.start("order")
    await stocked(order, "BOLT", {("WH-A", "B1"): 1})
    r = await order.http.post(path, json=payload, headers=COORDINATOR)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert (await lot_of(order, "BOLT", "WH-A", "B1"))["on_hold"] is False


async def test_lot_routes_are_staff_only(stack: Stack) -> None:
    order = await stack.start("order")
    await stocked(order, "BOLT", {("WH-A", "B1"): 1})
    change = {"status": "recalled", "reason": "x"}
    for headers in (auth("customer", customer_id="c-1"), auth("ops")):
        r = await order.http.post("/stock/lots/BOLT/B1/status", json=change, headers=headers)
        assert r.status_code == 403, r.text
    r = await order.http.get("/stock/lots/BOLT/B1", headers=auth("customer", customer_id="c-1"))
    assert r.status_code == 403
    assert (await order.http.get("/stock/lots/BOLT/B9", headers=auth("ops"))).status_code == 404
