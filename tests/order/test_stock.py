"""Stock ledger: receipts, adjustments, holds, availability and movements — each change a
ledger row and an InventoryChanged event on the ORDER stream; quantities never negative."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.bus import Bus
from services.order import stock
from services.order.stock_models import StockBalance, StockMovement
from services.order.stock_schemas import LineRequest
from tests.harness import RunningService, Stack, auth, eventually

COORDINATOR = auth("coordinator", subject="carla")
T = TypeVar("T")


# --- helpers shared with test_reservations ---------------------------------------------


def created(key: str | None = None) -> dict[str, str]:
    return {**COORDINATOR, "Idempotency-Key": key or uuid.uuid4().hex}


def in_days(days: int) -> date:
    return stock.today() + timedelta(days=days)


async def make_sku(order: RunningService, code: str, *, shelf_life: bool = False) -> None:
    body = {
        "code": code,
        "name": code.title(),
        "unit_price": "2.50",
        "weight_grams": 250,
        "shelf_life": shelf_life,
    }
    r = await order.http.post("/catalogue/skus", json=body, headers=created())
    assert r.status_code == 201, r.text


async def make_warehouse(order: RunningService, warehouse_id: str, *, active: bool = True) -> None:
    body = {"id": warehouse_id, "name": warehouse_id.title(), "country": "DE", "active": active}
    r = await order.http.post("/warehouses", json=body, headers=created())
    assert r.status_code == 201, r.text


async def receive(
    order: RunningService,
    warehouse_id: str,
    sku: str,
    lot: str,
    quantity: int,
    expiry: date | None = None,
    **extra: Any,
) -> httpx.Response:
    body: dict[str, Any] = {
        "warehouse_id": warehouse_id,
        "sku": sku,
        "lot": lot,
        "quantity": quantity,
        **extra,
    }
    if expiry is not None:
        body["expiry"] = expiry.isoformat()
    return await order.http.post("/stock/receipts", json=body, headers=created())


async def stocked(
    order: RunningService, sku: str, lots: dict[tuple[str, str], int], *, shelf_life: bool = False
) -> None:
    """Create `sku`, the warehouses named in `lots`, and receive {(warehouse, lot): qty}."""
    await make_sku(order, sku, shelf_life=shelf_life)
    known = {w["id"] for w in (await order.http.get("/warehouses", headers=COORDINATOR)).json()}
    for warehouse_id, lot in lots:
        if warehouse_id not in known:
            await make_warehouse(order, warehouse_id)
            known.add(warehouse_id)
        r = await receive(order, warehouse_id, sku, lot, lots[(warehouse_id, lot)])
        assert r.status_code == 201, r.text


async def availability(order: RunningService, sku: str) -> dict[str, dict[str, Any]]:
    """GET /stock/availability for `sku`, keyed by warehouse."""
    r = await order.http.get("/stock/availability", params={"sku": sku}, headers=auth("ops"))
    assert r.status_code == 200, r.text
    return {item["warehouse_id"]: item for item in r.json()["items"]}


async def lot_of(order: RunningService, sku: str, warehouse_id: str, lot: str) -> dict[str, Any]:
    item = (await availability(order, sku))[warehouse_id]
    return next(x for x in item["lots"] if x["lot"] == lot)


async def movements(order: RunningService, **filters: Any) -> list[dict[str, Any]]:
    r = await order.http.get(
        "/stock/movements", params={"limit": 200, **filters}, headers=auth("ops")
    )
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def in_tx(order: RunningService, fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run a domain call in its own transaction of the order service."""
    async with order.runtime.db.transaction() as session:
        return await fn(session)


async def reserve(order: RunningService, order_id: str, *lines: tuple[str, int]) -> Any:
    """Reserve lines given as (sku, quantity), numbered from 1."""
    requests = [LineRequest(line_no=i, sku=sku, quantity=q) for i, (sku, q) in enumerate(lines, 1)]
    source = order.runtime.source
    return await in_tx(order, lambda s: stock.reserve(s, order_id, requests, source))


async def stream_events(bus: Bus, subject: str) -> list[dict[str, Any]]:
    """Every envelope published on `subject` in the ORDER stream, oldest first."""
    try:
        info = await bus.js.stream_info("ORDER")
    except Exception:
        return []
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await bus.js.get_msg("ORDER", seq)
        except Exception:
            continue
        if msg.subject == subject:
            out.append(json.loads(msg.data or b""))
    # The relay publishes a batch concurrently: the stream order is not the staging order.
    return sorted(out, key=lambda e: datetime.fromisoformat(e["time"]))


async def wait_events(
    bus: Bus, subject: str, count: int, where: Callable[[dict[str, Any]], bool] = lambda e: True
) -> list[dict[str, Any]]:
    """Wait until at least `count` matching envelopes are on the stream; return them all."""

    async def enough() -> list[dict[str, Any]] | None:
        found = [e for e in await stream_events(bus, subject) if where(e)]
        return found if len(found) >= count else None

    result: list[dict[str, Any]] = await eventually(enough, message=f"{count} x {subject}")
    return result


async def ledger_matches_balances(order: RunningService) -> None:
    """The movements' bucket deltas sum to every balance row, and no balance is negative."""
    async with order.runtime.db.reading() as session:
        balances = (await session.scalars(sa.select(StockBalance))).all()
        sums = {
            (r.sku, r.warehouse_id, r.lot): (int(r[3]), int(r[4]), int(r[5]))
            for r in await session.execute(
                sa.select(
                    StockMovement.sku,
                    StockMovement.warehouse_id,
                    StockMovement.lot,
                    sa.func.sum(StockMovement.on_hand_delta),
                    sa.func.sum(StockMovement.reserved_delta),
                    sa.func.sum(StockMovement.held_delta),
                ).group_by(StockMovement.sku, StockMovement.warehouse_id, StockMovement.lot)
            )
        }
    for b in balances:
        assert sums[(b.sku, b.warehouse_id, b.lot)] == (b.on_hand, b.reserved, b.held), b.lot
        assert min(b.on_hand, b.reserved, b.held, b.available) >= 0
        assert b.held == (b.on_hand - b.reserved if b.on_hold else 0)


# --- receipts --------------------------------------------------------------------------


async def test_receipt_books_stock_with_ledger_row_and_event(stack: Stack, bus: Bus) -> None:
    order = await stack.start("order")
    await make_sku(order, "RICE-1KG", shelf_life=True)
    await make_warehouse(order, "WH-NORTH")
    r = await receive(order, "WH-NORTH", "RICE-1KG", "L-01", 40, in_days(90), reference="PO-7")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["balance"] == {
        "warehouse_id": "WH-NORTH",
        "sku": "RICE-1KG",
        "lot": "L-01",
        "expiry": in_days(90).isoformat(),
        "on_hand": 40,
        "reserved": 0,
        "held": 0,
        "available": 40,
        "on_hold": False,
    }
    movement = body["movement"]
    assert (movement["kind"], movement["quantity"], movement["on_hand_delta"]) == (
        "receipt",
        40,
        40,
    )
    assert (movement["reference"], movement["actor"]) == ("PO-7", "carla")
    again = await receive(order, "WH-NORTH", "RICE-1KG", "L-01", 2)  # the lot's expiry is known
    assert again.status_code == 201, again.text
    assert again.json()["balance"]["on_hand"] == 42

    [one, two] = await wait_events(bus, "order.inventory.changed", 2)
    assert one["type"] == "order.inventory.changed.v1"
    assert one["source"] == "/waybill/order"
    assert one["subject"] == "RICE-1KG@WH-NORTH"
    assert one["data"] == {
        "sku": "RICE-1KG",
        "warehouse_id": "WH-NORTH",
        "on_hand": 40,
        "reserved": 0,
        "held": 0,
        "available": 40,
        "reason": "receipt",
        "backordered": 0,
        "receipts": [],  # no purchase order named
    }
    assert two["data"]["on_hand"] == 42
    assert [m["quantity"] for m in await movements(order, sku="RICE-1KG")] == [2, 40]
    await ledger_matches_balances(order)


async def test_receipt_is_validated(stack: Stack) -> None:
    """Unknown SKU or warehouse, missing or past expiry, a lot's expiry changing, an
    inactive warehouse, a bad quantity: refused, and nothing is booked."""
    order = await stack.start("order")
    await make_sku(order, "MILK", shelf_life=True)
    await make_sku(order, "BOLT")
    await make_warehouse(order, "WH-A")
    await make_warehouse(order, "WH-OFF", active=False)
    assert (await receive(order, "WH-A", "MILK", "M1", 5, in_days(3))).status_code == 201

    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"sku": "NOPE", "lot": "X"}, 422, "unknown_sku"),
        ({"warehouse_id": "WH-Z", "lot": "X"}, 422, "unknown_warehouse"),
        ({"warehouse_id": "WH-OFF", "lot": "X"}, 409, "warehouse_inactive"),
        ({"lot": "M2", "expiry": None}, 422, "expiry_required"),
        ({"lot": "M2", "expiry": in_days(-1).isoformat()}, 422, "expiry_in_past"),
        ({"lot": "M1", "expiry": in_days(4).isoformat()}, 409, "lot_expiry_mismatch"),
        ({"lot": "M2", "quantity": 0}, 422, "validation_error"),
        ({"lot": "M2", "quantity": -3}, 422, "validation_error"),
        ({"lot": "bad lot!"}, 422, "validation_error"),
    ]
    for change, status, code in cases:
        body = {
            "warehouse_id": "WH-A",
            "sku": "MILK",
            "lot": "M1",
            "quantity": 1,
            "expiry": in_days(3).isoformat(),
            **change,
        }
        r = await order.http.post("/stock/receipts", json=body, headers=created())
        assert (r.status_code, r.json()["code"]) == (status, code), change
    # A lot received into a second warehouse keeps its expiry there too.
    await make_warehouse(order, "WH-B")
    elsewhere = await receive(order, "WH-B", "MILK", "M1", 1, in_days(9))
    assert elsewhere.status_code == 409
    # No shelf life: an expiry is optional.
    assert (await receive(order, "WH-A", "BOLT", "B1", 10)).status_code == 201
    assert len(await movements(order)) == 2
    keyless = await order.http.post(
        "/stock/receipts",
        json={"warehouse_id": "WH-A", "sku": "BOLT", "lot": "B1", "quantity": 1},
        headers=COORDINATOR,
    )
    assert keyless.status_code == 400


async def test_receipt_replay_books_once(stack: Stack, bus: Bus) -> None:
    order = await stack.start("order")
    await make_sku(order, "BOLT")
    await make_warehouse(order, "WH-A")
    body = {"warehouse_id": "WH-A", "sku": "BOLT", "lot": "B1", "quantity": 7}
    headers = created("receipt-1")
    first = await order.http.post("/stock/receipts", json=body, headers=headers)
    again = await order.http.post("/stock/receipts", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert (await lot_of(order, "BOLT", "WH-A", "B1"))["on_hand"] == 7
    assert len(await movements(order)) == 1
    await wait_events(bus, "order.inventory.changed", 1)
    assert len(await stream_events(bus, "order.inventory.changed")) == 1


async def test_stock_is_staff_only(stack: Stack) -> None:
    order = await stack.start("order")
    await stocked(order, "BOLT", {("WH-A", "B1"): 5})
    customer = auth("customer", customer_id="c1")
    supplier = auth("supplier", supplier_id="s1")
    for headers in (customer, supplier):
        for path in ("/stock/availability?sku=BOLT", "/stock/movements", "/stock/backorders"):
            assert (await order.http.get(path, headers=headers)).status_code == 403
    body = {"warehouse_id": "WH-A", "sku": "BOLT", "lot": "B1", "quantity": 1}
    for headers in (auth("ops"), customer):
        r = await order.http.post(
            "/stock/receipts", json=body, headers={**headers, "Idempotency-Key": "k"}
        )
        assert r.status_code == 403
    service = await order.http.post(
        "/stock/receipts", json=body, headers={**auth("service"), "Idempotency-Key": "k"}
    )
    assert service.status_code == 201  # receiving workflows book goods in
    for role in ("ops", "service", "coordinator"):
        r = await order.http.get("/stock/availability?sku=BOLT", headers=auth(role))
        assert r.status_code == 200


# --- adjustments -----------------------------------------------------------------------


async def adjust(
    order: RunningService, lot: str, delta: int, reason: str = "count_correction", **extra: Any
) -> httpx.Response:
    body = {
        "warehouse_id": "WH-A",
        "sku": "BOLT",
        "lot": lot,
        "quantity_delta": delta,
        "reason": reason,
        **extra,
    }
    return await order.http.post("/stock/adjustments", json=body, headers=created())


async def test_adjustments(stack: Stack, bus: Bus) -> None:
    """Counted corrections both ways, each a ledger row with its reason and an event."""
    order = await stack.start("order")
    await stocked(order, "BOLT", {("WH-A", "B1"): 10})
    down = await adjust(order, "B1", -3, "damage", note="forklift")
    assert down.status_code == 201, down.text
    assert down.json()["balance"]["on_hand"] == 7
    movement = down.json()["movement"]
    assert (movement["kind"], movement["quantity"], movement["reason"], movement["note"]) == (
        "adjustment",
        -3,
        "damage",
        "forklift",
    )
    up = await adjust(order, "B1", 5, "found")
    assert up.json()["balance"]["on_hand"] == 12
    events = await wait_events(bus, "order.inventory.changed", 3)
    assert [(e["data"]["on_hand"], e["data"]["reason"]) for e in events] == [
        (10, "receipt"),
        (7, "adjustment"),
        (12, "adjustment"),
    ]
    await ledger_matches_balances(order)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"reason": None}, "validation_error"),
        ({"reason": "theft"}, "validation_error"),
        ({"quantity_delta": 0}, "validation_error"),
        ({"quantity_delta": 2, "reason": "damage"}, "validation_error"),
        ({"quantity_delta": -2, "reason": "found"}, "validation_error"),
        ({"lot": "NEW-LOT"}, "unknown_lot"),
        ({"sku": "NOPE"}, "unknown_sku"),
        ({"warehouse_id": "WH-Z"}, "unknown_warehouse"),
    ],
)
async def test_invalid_adjustment_is_422(stack: Stack, change: dict[str, Any], code: str) -> None:
    order = await stack.start("order")
    await stocked(order, "BOLT", {("WH-A", "B1"): 10})
    body = {
        "warehouse_id": "WH-A",
        "sku": "BOLT",
        "lot": "B1",
        "quantity_delta": -1,
        "reason": "loss",
        **change,
    }
    if body["reason"] is None:
        del body["reason"]
    r = await order.http.post("/stock/adjustments", json=body, headers=created())
    assert (r.status_code, r.json()["code"]) == (422, code)
    assert (await lot_of(order, "BOLT", "WH-A", "B1"))["on_hand"] == 10


async def test_adjustment_below_reserved_is_409_and_writes_nothing(stack: Stack, bus: Bus) -> None:
    """10 on hand, 8 reserved: removing 3 would leave less than is reserved."""
    order = await stack.start("order")
    await stocked(order, "BOLT", {("WH-A", "B1"): 10})
    assert (await reserve(order, "o-1", ("BOLT", 8))).status == "reserved"
    await wait_events(bus, "order.inventory.changed", 2)
    before = await movements(order)

    r = await adjust(order, "B1", -3, "loss")
    assert r.status_code == 409
    assert r.json()["code"] == "insufficient_stock"
    assert "8 reserved" in r.json()["detail"]
    lot = await lot_of(order, "BOLT", "WH-A", "B1")
    assert (lot["on_hand"], lot["reserved"], lot["available"]) == (10, 8, 2)
    assert await movements(order) == before

    ok = await adjust(order, "B1", -2, "loss")
    assert ok.status_code == 201
    assert ok.json()["balance"]["available"] == 0
    assert (await adjust(order, "B1", -1, "loss")).status_code == 409
    await wait_events(bus, "order.inventory.changed", 3)
    assert len(await stream_events(bus, "order.inventory.changed")) == 3
    await ledger_matches_balances(order)


async def test_check_constraints_are_the_last_line_of_defence(stack: Stack) -> None:
    """Even a direct UPDATE cannot make a balance negative or reserve what is not there."""
    order = await stack.start("order")
    await stocked(order, "BOLT", {("WH-A", "B1"): 5})
    where = (StockBalance.sku == "BOLT") & (StockBalance.lot == "B1")
    for values in (
        {"on_hand": -1},
        {"reserved": -1},
        {"held": -1},
        {"reserved": 6},
        {"reserved": 3, "held": 3},
    ):
        with pytest.raises(IntegrityError):
            async with order.runtime.db.transaction() as session:
                await session.execute(sa.update(StockBalance).where(where).values(**values))
    lot = await lot_of(order, "BOLT", "WH-A", "B1")
    assert (lot["on_hand"], lot["reserved"], lot["held"]) == (5, 0, 0)


# --- holds -----------------------------------------------------------------------------


async def hold(order: RunningService, lot: str, **extra: Any) -> httpx.Response:
    body = {"sku": "BOLT", "lot": lot, "reason": "supplier recall R-12", **extra}
    return await order.http.post("/stock/holds", json=body, headers=COORDINATOR)


async def release_hold(order: RunningService, lot: str, **extra: Any) -> httpx.Response:
    body = {"sku": "BOLT", "lot": lot, **extra}
    return await order.http.post("/stock/holds/release", json=body, headers=COORDINATOR)


async def test_hold_quarantines_the_lot_everywhere(stack: Stack, bus: Bus) -> None:
    """A lot held in all warehouses: all its stock is held, later receipts of the lot
    arrive held (even in a new warehouse), other lots are untouched."""
    order = await stack.start("order")
    await stocked(order, "BOLT", {("WH-B", "B1"): 4, ("WH-A", "B2"): 6})
    r = await hold(order, "B1")
    assert r.status_code == 200, r.text
    result = r.json()
    [record] = result["holds"]
    assert (record["warehouse_id"], record["held_by"]) == (None, "carla")
    [b1] = result["balances"]
    assert (b1["warehouse_id"], b1["held"], b1["available"], b1["on_hold"]) == (
        "WH-B",
        4,
        0,
        True,
    )
    assert result["reservations_moved"] == []
    [held_move] = await movements(order, kind="hold")
    assert (held_move["warehouse_id"], held_move["quantity"], held_move["held_delta"]) == (
        "WH-B",
        4,
        4,
    )
    assert (await lot_of(order, "BOLT", "WH-A", "B2"))["held"] == 0

    # Holding it again changes nothing.
    again = await hold(order, "B1", warehouse_id="WH-B")
    assert again.status_code == 200
    assert [h["id"] for h in again.json()["holds"]] == [record["id"]]
    assert len(await movements(order, kind="hold")) == 1

    # New stock of the lot is quarantined on arrival, also in a warehouse new to it.
    assert (await receive(order, "WH-A", "BOLT", "B1", 5)).json()["balance"]["held"] == 5
    await make_warehouse(order, "WH-C")
    fresh = (await receive(order, "WH-C", "BOLT", "B1", 2)).json()["balance"]
    assert (fresh["held"], fresh["on_hold"], fresh["available"]) == (2, True, 0)

    events = await wait_events(
        bus, "order.inventory.changed", 1, lambda e: e["data"]["reason"] == "hold"
    )
    assert events[0]["data"] == {
        "sku": "BOLT",
        "warehouse_id": "WH-B",
        "on_hand": 4,
        "reserved": 0,
        "held": 4,
        "available": 0,
        "reason": "hold",
        "backordered": 0,
        "receipts": [],
    }
    await ledger_matches_balances(order)


async def test_hold_moves_reservations_off_the_quarantined_lot(stack: Stack) -> None:
    """Quarantined goods must not ship: a reservation on the held lot is released into
    quarantine and re-reserved from the SKU's other lots; what they cannot cover is
    backordered, and filled when stock arrives."""
    order = await stack.start("order")
    await stocked(order, "BOLT", {("WH-A", "B1"): 10, ("WH-B", "B1"): 4, ("WH-A", "B2"): 6})
    await reserve(order, "o-1", ("BOLT", 13))  # WH-A has 16: takes B1 10 then B2 3
    r = await hold(order, "B1")
    assert r.status_code == 200, r.text
    # B2 had 3 more units: 10 came off B1, 3 were reserved again, 7 wait.
    assert r.json()["reservations_moved"] == [
        {"order_id": "o-1", "line_no": 1, "quantity": 10, "short": 7}
    ]
    b1 = await lot_of(order, "BOLT", "WH-A", "B1")
    assert (b1["on_hand"], b1["reserved"], b1["held"]) == (10, 0, 10)
    b2 = await lot_of(order, "BOLT", "WH-A", "B2")
    assert (b2["reserved"], b2["available"]) == (6, 0)
    [off] = [m for m in await movements(order, kind="unreserve") if m["order_id"] == "o-1"]
    assert (off["lot"], off["reserved_delta"], off["held_delta"]) == ("B1", -10, 10)
    assert off["note"] == "quarantined: supplier recall R-12"
    source = order.runtime.source
    reserved = await in_tx(order, lambda s: stock.reservations_of(s, "o-1"))
    assert [(a.lot, a.quantity) for a in reserved] == [("B2", 6)]

    # Stock arriving in another lot fills the backorder; nothing is ever taken from B1.
    await receive(order, "WH-A", "BOLT", "B3", 7)
    reserved = await in_tx(order, lambda s: stock.reservations_of(s, "o-1"))
    assert sorted((a.lot, a.quantity) for a in reserved) == [("B2", 6), ("B3", 7)]
    pick = await in_tx(order, lambda s: stock.issue(s, "o-1", "WH-A", "shp-1", source))
    picked = pick.picked
    assert "B1" not in {a.lot for a in picked}
    assert sum(a.quantity for a in picked) == 13
    await ledger_matches_balances(order)


async def test_release_hold(stack: Stack, bus: Bus) -> None:
    """Release one warehouse's hold, then an all-warehouse one (which a per-warehouse
    release may not lift); the stock becomes available again with release_hold rows."""
    order = await stack.start("order")
    await stocked(order, "BOLT", {("WH-A", "B1"): 10, ("WH-B", "B1"): 4})
    assert (await hold(order, "B1", warehouse_id="WH-A")).json()["balances"][0]["held"] == 10
    assert (await lot_of(order, "BOLT", "WH-B", "B1"))["available"] == 4
    r = await release_hold(order, "B1", warehouse_id="WH-A")
    assert r.status_code == 200, r.text
    assert r.json()["holds"] == []
    assert (await lot_of(order, "BOLT", "WH-A", "B1"))["available"] == 10

    await hold(order, "B1")
    blocked = await release_hold(order, "B1", warehouse_id="WH-B")
    assert blocked.status_code == 409
    assert blocked.json()["code"] == "held_everywhere"
    assert (await lot_of(order, "BOLT", "WH-B", "B1"))["held"] == 4
    done = await release_hold(order, "B1")
    assert done.status_code == 200
    assert {b["warehouse_id"]: b["available"] for b in done.json()["balances"]} == {
        "WH-A": 10,
        "WH-B": 4,
    }
    assert [m["quantity"] for m in await movements(order, kind="release_hold")] == [-4, -10, -10]
    # Releasing an unheld lot changes nothing.
    assert (await release_hold(order, "B1")).status_code == 200
    assert len(await movements(order, kind="release_hold")) == 3
    listed = await order.http.get(
        "/stock/holds", params={"sku": "BOLT", "active": False}, headers=auth("ops")
    )
    assert [h["released_by"] for h in listed.json()] == ["carla", "carla"]
    reasons = [
        e["data"]["reason"]
        for e in await wait_events(
            bus, "order.inventory.changed", 3, lambda e: e["data"]["reason"] == "release_hold"
        )
    ]
    assert reasons == ["release_hold"] * 3
    unknown = await order.http.post(
        "/stock/holds", json={"sku": "NOPE", "lot": "B1", "reason": "x"}, headers=COORDINATOR
    )
    assert unknown.status_code == 422
    await ledger_matches_balances(order)


async def test_held_stock_can_be_written_off(stack: Stack) -> None:
    """Scrapping quarantined goods takes them out of the held quantity, down to nothing."""
    order = await stack.start("order")
    await stocked(order, "BOLT", {("WH-A", "B1"): 10})
    await reserve(order, "o-1", ("BOLT", 4))
    await hold(order, "B1")  # the reservation moves off (to a backorder)
    r = await adjust(order, "B1", -5, "damage")
    assert r.status_code == 201, r.text
    b = r.json()["balance"]
    assert (b["on_hand"], b["reserved"], b["held"]) == (5, 0, 5)
    assert r.json()["movement"]["held_delta"] == -5
    assert (await adjust(order, "B1", -5, "damage")).status_code == 201
    assert (await adjust(order, "B1", -1, "damage")).status_code == 409
    await ledger_matches_balances(order)


# --- availability and movements ----------------------------------------------------------


async def test_availability_per_warehouse_and_lot(stack: Stack) -> None:
    order = await stack.start("order")
    await make_sku(order, "MILK", shelf_life=True)
    await make_warehouse(order, "WH-A")
    await make_warehouse(order, "WH-B")
    for warehouse_id, lot, quantity, days in (
        ("WH-A", "M-LATE", 5, 30),
        ("WH-A", "M-SOON", 3, 5),
        ("WH-A", "M-TODAY", 2, 0),
        ("WH-B", "M-LATE", 7, 30),
    ):
        r = await receive(order, warehouse_id, "MILK", lot, quantity, in_days(days))
        assert r.status_code == 201, r.text
    await reserve(order, "o-1", ("MILK", 4))
    assert (await hold(order, "M-LATE", warehouse_id="WH-B", sku="MILK")).status_code == 200

    items = await availability(order, "MILK")
    a = items["WH-A"]
    assert (a["on_hand"], a["reserved"], a["held"], a["available"], a["reservable"]) == (
        10,
        4,
        0,
        6,
        4,
    )
    assert [(x["lot"], x["reserved"], x["expired"]) for x in a["lots"]] == [
        ("M-TODAY", 0, True),  # expires today: never reserved
        ("M-SOON", 3, False),
        ("M-LATE", 1, False),
    ]
    b = items["WH-B"]
    assert (b["held"], b["available"], b["reservable"], b["lots"][0]["on_hold"]) == (
        7,
        0,
        0,
        True,
    )

    one = await order.http.get(
        "/stock/availability", params={"sku": "MILK", "warehouse_id": "WH-B"}, headers=COORDINATOR
    )
    assert [i["warehouse_id"] for i in one.json()["items"]] == ["WH-B"]
    by_wh = await order.http.get(
        "/stock/availability", params={"warehouse_id": "WH-A"}, headers=COORDINATOR
    )
    assert [i["sku"] for i in by_wh.json()["items"]] == ["MILK"]
    nothing = await order.http.get("/stock/availability", headers=COORDINATOR)
    assert nothing.status_code == 400
    for params in ({"sku": "NOPE"}, {"warehouse_id": "WH-Z"}):
        r = await order.http.get("/stock/availability", params=params, headers=COORDINATOR)
        assert r.status_code == 404


async def test_movements_filter_and_paginate(stack: Stack) -> None:
    order = await stack.start("order")
    await stocked(order, "BOLT", {("WH-A", "B1"): 10, ("WH-B", "B2"): 10})
    await stocked(order, "NUT", {("WH-A", "N1"): 10})
    await reserve(order, "o-1", ("BOLT", 2), ("NUT", 1))
    for _ in range(3):
        assert (await adjust(order, "B1", 1)).status_code == 201

    everything = await movements(order)
    assert len(everything) == 8
    assert [m["id"] for m in everything] == sorted((m["id"] for m in everything), reverse=True)
    assert {m["kind"] for m in await movements(order, order_id="o-1")} == {"reserve"}
    assert len(await movements(order, order_id="o-1")) == 2
    assert len(await movements(order, sku="BOLT", warehouse_id="WH-A")) == 5
    assert len(await movements(order, kind="adjustment")) == 3

    pages: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await order.http.get("/stock/movements", params=params, headers=COORDINATOR)).json()
        pages += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == [m["id"] for m in everything]
    bad = await order.http.get("/stock/movements", params={"cursor": "abc"}, headers=COORDINATOR)
    assert bad.status_code == 400
