"""Order to delivery through every real part: services, NATS, bridge, Temporal, worker.

The carrier here scans only when the test pushes its webhook, so every path is exact.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.common import telemetry
from services.common.bus import Bus
from services.common.envelope import Envelope
from services.common.workflow_names import OrderWorkflow
from services.order import stock
from tests.conftest import TRACE_DIR
from tests.e2e.conftest import World
from tests.harness import auth, eventually
from workflows.order.models import ShipmentSignal

pytestmark = pytest.mark.settings(
    shipment={"simulator_enabled": False},
    workflows={"backorder_timeout_seconds": 3600, "credit_hold_timeout_seconds": 3600},
)

DELIVER = ("IR", "PU", "AR", "OD", "DL")


async def test_happy_path_to_delivered(world: World) -> None:
    """Placed, confirmed from one warehouse, shipped, tracked, delivered, completed."""
    order_id = await world.place(world.acme, ("COFFEE-1KG", 2), ("MUG-CERAMIC", 1))
    [shipment] = await world.wait_shipments(order_id, 1)
    assert shipment["warehouse_id"] == "WH-NORTH"
    # FEFO: the coffee comes from the lot that expires first.
    assert {(lot["sku"], lot["lot"]) for lot in shipment["lots"]} == {
        ("COFFEE-1KG", "L-2601"),
        ("MUG-CERAMIC", "M-0001"),
    }
    # Packed at the catalogue's weights (2 x 1000 g + 350 g), not the 500 g default.
    detail = await world.api.call("shipment", "GET", f"/shipments/{shipment['shipment_id']}")
    assert [p["weight_grams"] for p in detail["packages"]] == [2350]
    await world.scan(shipment["tracking_number"], *DELIVER)
    await world.wait_status(order_id, "completed")

    async def whole_story() -> dict[str, Any] | None:
        # Tracking history reaches the order service through its own consumer.
        s = await world.status(order_id)
        return s if len(s["shipments"][0]["events"]) == 5 else None

    final = await eventually(whole_story, message="tracking history")
    assert final["outcome"] == "delivered"
    [done] = final["shipments"]
    assert done["status"] == "delivered"
    assert [e["status"] for e in done["events"]] == [
        "info_received",
        "in_transit",
        "in_transit",
        "out_for_delivery",
        "delivered",
    ]
    kinds = [t["kind"] for t in final["timeline"]]
    for kind in (
        "placed",
        "confirmed",
        "shipping",
        "shipment_created",
        "shipment_delivered",
        "completed",
    ):
        assert kind in kinds, kinds
    # The customer asks "where is my order?" and gets the same story; others get 404.
    mine = await world.stack.services["order"].http.get(
        f"/orders/{order_id}/status", headers=auth("customer", customer_id=world.acme)
    )
    assert mine.status_code == 200 and mine.json()["status"] == "completed"
    theirs = await world.stack.services["order"].http.get(
        f"/orders/{order_id}/status", headers=auth("customer", customer_id=world.jane)
    )
    assert theirs.status_code == 404
    await world.keep_history(order_id, "happy_path")

    # An ops engineer follows the order end to end: the placement's trace runs through
    # the outbox, NATS, the bridge and the workflow; every carrier push has its own
    # trace that reaches the workflow as a signal; and each timeline step names its trace.
    telemetry.flush()
    traces = telemetry.traces_about(telemetry.load_spans(TRACE_DIR), order_id)
    names = {tid: {s["name"] for s in spans} for tid, spans in traces.items()}
    placement = final["timeline"][0]["trace_id"]
    assert {"POST /orders", "order.order.placed publish", "RunWorkflow:OrderToDelivery"} <= (
        names[placement]
    )
    pushes = [t for t, n in names.items() if "POST /carriers/{carrier}/webhook" in n]
    assert pushes and all("SignalWorkflow:shipment_status" in names[t] for t in pushes)
    assert {t["trace_id"] for t in final["timeline"]} <= set(traces)


async def test_one_correlation_id_follows_the_order_through_every_service(
    world: World,
) -> None:
    """The caller's X-Correlation-ID rides the order's events, the workflow (a Temporal
    header) and the activities' requests, so events other services stage for the order
    carry it too."""
    order = world.stack.services["order"]
    r = await order.http.post(
        "/orders",
        json={
            "customer_id": world.jane,
            "ship_to": {
                "name": "R",
                "line1": "L",
                "city": "C",
                "postal_code": "1",
                "country": "DE",
            },
            "lines": [{"sku": "MUG-CERAMIC", "quantity": 1}],
        },
        headers={
            **auth("coordinator"),
            "Idempotency-Key": "corr-order",
            "X-Correlation-ID": "ticket-9001",
        },
    )
    assert r.status_code == 201, r.text
    await world.wait_shipments(r.json()["id"], 1)
    bus = Bus(world.stack.nats_url, "corr-test")
    await bus.connect()
    try:
        for stream, subject in (
            ("ORDER", "order.order.placed"),
            ("ORDER", "order.order.confirmed"),
            ("SHIPMENT", "shipment.shipment.created"),
        ):
            msg = await bus.js.get_last_msg(stream, subject)
            envelope = Envelope.model_validate_json(msg.data or b"")
            assert envelope.correlationid == "ticket-9001", subject
    finally:
        await bus.close()


async def test_split_across_two_warehouses(world: World) -> None:
    order_id = await world.place(world.jane, ("MUG-CERAMIC", 1), ("GRINDER-BURR", 1))
    shipments = await world.wait_shipments(order_id, 2)
    assert sorted(s["warehouse_id"] for s in shipments) == ["WH-NORTH", "WH-SOUTH"]
    await world.scan(shipments[0]["tracking_number"], *DELIVER)
    status = await world.status(order_id)
    assert status["status"] == "shipping"
    await world.scan(shipments[1]["tracking_number"], *DELIVER)
    final = await world.wait_status(order_id, "completed")
    assert final["outcome"] == "delivered"
    await world.keep_history(order_id, "split")


async def test_backorder_then_stock_arrival(world: World) -> None:
    order_id = await world.place(world.acme, ("FILTER-PAPER", 5))
    await world.wait_status(order_id, "backordered")
    await world.receive("WH-SOUTH", "FILTER-PAPER", "F-1", 3)
    await asyncio.sleep(0.5)
    assert (await world.status(order_id))["status"] == "backordered"  # 3 of 5 is not enough
    await world.receive("WH-SOUTH", "FILTER-PAPER", "F-2", 10)
    [shipment] = await world.wait_shipments(order_id, 1)
    assert sum(lot["quantity"] for lot in shipment["lots"]) == 5
    await world.scan(shipment["tracking_number"], *DELIVER)
    await world.wait_status(order_id, "completed")
    await world.keep_history(order_id, "backorder")


async def test_a_lot_quarantined_while_the_order_waits_never_ships(world: World) -> None:
    """The coffee is reserved from lot L-2601 while the order waits for filter paper; the
    lot is quarantined; the order ships coffee from another lot."""
    order_id = await world.place(world.acme, ("COFFEE-1KG", 2), ("FILTER-PAPER", 2))
    await world.wait_status(order_id, "backordered")
    held = await world.api.call(
        "order",
        "POST",
        "/stock/holds",
        {"sku": "COFFEE-1KG", "lot": "L-2601", "reason": "supplier recall R-7"},
    )
    assert {"order_id": order_id, "line_no": 1, "quantity": 2, "short": 0} in held[
        "reservations_moved"
    ]
    await world.receive("WH-NORTH", "FILTER-PAPER", "F-5", 2)
    [shipment] = await world.wait_shipments(order_id, 1)
    coffee = {lot["lot"] for lot in shipment["lots"] if lot["sku"] == "COFFEE-1KG"}
    assert coffee == {"L-2602"}
    timeline = (await world.status(order_id))["timeline"]
    [entry] = [t for t in timeline if t["kind"] == "quarantine"]
    assert "L-2601" in entry["detail"] and "2 reserved from other lots" in entry["detail"]


async def test_cancel_before_dispatch_compensates(world: World) -> None:
    """Cancel with the shipment not yet picked up: shipment cancelled, stock back."""
    before = await world.availability("MUG-CERAMIC")
    order_id = await world.place(world.acme, ("MUG-CERAMIC", 4))
    [shipment] = await world.wait_shipments(order_id, 1)
    assert (await world.availability("MUG-CERAMIC"))["WH-NORTH"] == before["WH-NORTH"] - 4
    cancelled = await world.api.call(
        "order", "POST", f"/orders/{order_id}/cancel", {"reason": "customer changed mind"}
    )
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancel_reason"] == "customer changed mind"
    assert (await world.availability("MUG-CERAMIC")) == before
    ship = await world.api.call("shipment", "GET", f"/shipments/{shipment['shipment_id']}")
    assert ship["status"] == "cancelled"


async def test_cancel_after_dispatch_is_refused(world: World) -> None:
    order_id = await world.place(world.acme, ("MUG-CERAMIC", 1))
    [shipment] = await world.wait_shipments(order_id, 1)
    await world.scan(shipment["tracking_number"], "IR", "PU")

    async def dispatched() -> bool:
        # The workflow's own view (it decides the cancel), not the read model's.
        live = await world.api.call(
            "order", "GET", f"/orders/{order_id}/status", params={"live": "true"}
        )
        refs = (live.get("workflow") or {}).get("shipments") or []
        return bool(refs) and refs[0]["status"] == "in_transit"

    await eventually(dispatched, message="the workflow sees the shipment in transit")
    r = await world.stack.services["order"].http.post(
        f"/orders/{order_id}/cancel", json={"reason": "too late"}, headers=auth("coordinator")
    )
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "already_dispatched"
    await world.scan(
        shipment["tracking_number"],
        "OD",
        "DL",
    )
    await world.wait_status(order_id, "completed")
    await world.keep_history(order_id, "cancel_refused")


async def test_cancel_while_backordered(world: World) -> None:
    order_id = await world.place(world.acme, ("FILTER-PAPER", 2))
    await world.wait_status(order_id, "backordered")
    r = await world.api.call("order", "POST", f"/orders/{order_id}/cancel", {"reason": "no wait"})
    assert r["status"] == "cancelled"
    # A later receipt does not resurrect it.
    await world.receive("WH-NORTH", "FILTER-PAPER", "F-9", 5)
    await asyncio.sleep(1)
    assert (await world.status(order_id))["status"] == "cancelled"
    assert (await world.availability("FILTER-PAPER"))["WH-NORTH"] == 5


async def test_credit_hold_then_release(world: World) -> None:
    """Globex has a 100 EUR limit: a 129 EUR order waits for a coordinator."""
    order_id = await world.place(world.globex, ("GRINDER-BURR", 1))
    await world.wait_status(order_id, "credit_hold")
    [task] = (await world.api.call("order", "GET", "/tasks", params={"order_id": order_id}))[
        "items"
    ]
    assert task["kind"] == "credit_hold"
    customer = world.stack.services["order"].http
    denied = await customer.get("/tasks", headers=auth("customer", customer_id=world.globex))
    assert denied.status_code == 403
    released = await world.api.call("order", "POST", f"/orders/{order_id}/release-credit-hold")
    assert released["status"] == "placed"
    closed = await world.api.call(
        "order", "GET", "/tasks", params={"order_id": order_id, "status": "resolved"}
    )
    assert [t["resolution"] for t in closed["items"]] == ["credit released"]
    [shipment] = await world.wait_shipments(order_id, 1)
    await world.scan(shipment["tracking_number"], *DELIVER)
    final = await world.wait_status(order_id, "completed")
    assert [t["kind"] for t in final["timeline"]].index("credit_hold") < [
        t["kind"] for t in final["timeline"]
    ].index("credit_released")
    await world.keep_history(order_id, "credit_hold")


async def test_duplicate_and_out_of_order_tracking(world: World) -> None:
    """Scans pushed twice and a late in_transit after delivery change nothing."""
    order_id = await world.place(world.acme, ("MUG-CERAMIC", 1))
    [shipment] = await world.wait_shipments(order_id, 1)
    tn = shipment["tracking_number"]
    ids = ["e1", "e2", "e3"]
    await world.scan(tn, "IR", "PU", "DL", ids=[f"{tn}-{i}" for i in ids])
    await world.scan(tn, "IR", "PU", "DL", ids=[f"{tn}-{i}" for i in ids])  # duplicates
    final = await world.wait_status(order_id, "completed")
    await world.scan(tn, "AR", start=datetime.now(UTC) - timedelta(hours=1))  # late, older

    async def late_one_recorded() -> dict[str, Any] | None:
        status = await world.status(order_id)
        return status if len(status["shipments"][0]["events"]) == 4 else None

    status = await eventually(late_one_recorded, message="the late scan in the history")
    [s] = status["shipments"]
    assert s["status"] == "delivered"
    assert [e["status"] for e in s["events"]].count("delivered") == 1
    assert len(s["events"]) == 4  # IR, PU, DL, and the late AR kept in history
    assert final["outcome"] == "delivered"


async def test_returned_to_sender_restocks(world: World) -> None:
    before = await world.availability("GRINDER-BURR")
    order_id = await world.place(world.jane, ("GRINDER-BURR", 2))
    [shipment] = await world.wait_shipments(order_id, 1)
    await world.scan(shipment["tracking_number"], "IR", "PU", "EX", "RT", "RS")
    final = await world.wait_status(order_id, "completed")
    assert final["outcome"] == "returned"
    assert "coordinator_task" in [t["kind"] for t in final["timeline"]]
    assert await world.availability("GRINDER-BURR") == before
    # The exception waits on the coordinators' task list until someone resolves it.
    [task] = (await world.api.call("order", "GET", "/tasks", params={"order_id": order_id}))[
        "items"
    ]
    assert task["kind"] == "shipment_exception" and task["status"] == "open"
    resolved = await world.api.call(
        "order", "POST", f"/tasks/{task['id']}/resolve", {"resolution": "customer called"}
    )
    assert resolved["status"] == "resolved" and resolved["resolved_by"] == "e2e"
    left = await world.api.call("order", "GET", "/tasks", params={"order_id": order_id})
    assert left["items"] == []


async def test_concurrent_orders_never_oversell(world: World) -> None:
    """Twenty orders at once for 10 grinders: exactly 10 ship, the rest wait."""
    ids = await asyncio.gather(*(world.place(world.jane, ("GRINDER-BURR", 1)) for _ in range(20)))

    async def settled() -> list[str] | None:
        states = [(await world.status(i))["status"] for i in ids]
        return states if all(s in ("shipping", "backordered") for s in states) else None

    states = await eventually(settled, 60, 0.2, "all orders reserved or backordered")
    assert states.count("shipping") == 10 and states.count("backordered") == 10
    assert (await world.availability("GRINDER-BURR"))["WH-SOUTH"] == 0


@pytest.mark.settings(
    shipment={"simulator_enabled": False},
    workflows={"backorder_timeout_seconds": 1.5, "credit_hold_timeout_seconds": 1.5},
)
async def test_timeouts_cancel_or_ship_partial(world: World) -> None:
    """Credit hold not released in time: cancelled. Backorder not filled in time: what is
    reserved ships; an order with nothing reserved is cancelled."""
    held = await world.place(world.globex, ("GRINDER-BURR", 1))
    partial = await world.place(world.acme, ("MUG-CERAMIC", 1), ("FILTER-PAPER", 3))
    nothing = await world.place(world.acme, ("FILTER-PAPER", 1))
    assert (await world.wait_status(held, "cancelled"))["status"] == "cancelled"
    assert (await world.wait_status(nothing, "cancelled"))["status"] == "cancelled"
    [shipment] = await world.wait_shipments(partial, 1)
    assert {lot["sku"] for lot in shipment["lots"]} == {"MUG-CERAMIC"}
    await world.scan(shipment["tracking_number"], *DELIVER)
    final = await world.wait_status(partial, "completed")
    assert "backorder_dropped" in [t["kind"] for t in final["timeline"]]


async def test_hostile_scan_order_ends_delivered_and_status_pages_agree(world: World) -> None:
    """Scans pushed out of order, stamped against it, and twice: the shipment service
    decides the status, and the workflow and the status page follow it."""
    order_id = await world.place(world.acme, ("MUG-CERAMIC", 1))
    [shipment] = await world.wait_shipments(order_id, 1)
    tn = shipment["tracking_number"]
    now = datetime.now(UTC)
    await world.scan(tn, "IR", "PU", start=now - timedelta(hours=2))
    await world.scan(tn, "OD", start=now + timedelta(hours=1), ids=[f"{tn}-od"])
    await world.scan(tn, "DL", start=now, ids=[f"{tn}-dl"])  # pushed later, stamped earlier
    await world.scan(tn, "OD", start=now + timedelta(hours=1), ids=[f"{tn}-od"])  # duplicate
    await world.scan(tn, "DL", start=now, ids=[f"{tn}-dl"])  # duplicate
    await world.scan(tn, "AR", start=now + timedelta(minutes=30))  # a stray one after it
    final = await world.wait_status(order_id, "completed")
    assert final["outcome"] == "delivered"
    truth = await world.api.call("shipment", "GET", f"/shipments/{shipment['shipment_id']}")
    assert truth["status"] == "delivered"
    [page] = final["shipments"]
    assert page["status"] == truth["status"]
    customer = await world.stack.services["order"].http.get(
        f"/orders/{order_id}/status", headers=auth("customer", customer_id=world.acme)
    )
    assert [s["status"] for s in customer.json()["shipments"]] == ["delivered"]
    await world.keep_history(order_id, "hostile_scans")


async def test_a_lot_expiring_while_the_order_waits_is_replaced_before_it_ships(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The coffee was reserved while the order waited for filter paper; by the time it
    is picked every coffee lot has expired, so the pick backorders it, and the order
    ships once fresh coffee arrives."""
    order_id = await world.place(world.acme, ("COFFEE-1KG", 2), ("FILTER-PAPER", 1))
    await world.wait_status(order_id, "backordered")
    later = stock.today() + timedelta(days=200)  # past every demo coffee lot's expiry
    monkeypatch.setattr(stock, "today", lambda: later)
    await world.receive("WH-NORTH", "FILTER-PAPER", "F-7", 1)

    async def short_at_pick() -> bool:
        kinds = [t["kind"] for t in (await world.status(order_id))["timeline"]]
        return "backordered_at_pick" in kinds

    await eventually(short_at_pick, message="the pick found the coffee expired")
    await world.api.call(
        "order",
        "POST",
        "/stock/receipts",
        {
            "warehouse_id": "WH-NORTH",
            "sku": "COFFEE-1KG",
            "lot": "FRESH",
            "quantity": 5,
            "expiry": (later + timedelta(days=60)).isoformat(),
        },
        key=str(uuid.uuid4()),
    )
    [shipment] = await world.wait_shipments(order_id, 1)
    assert {lot["lot"] for lot in shipment["lots"] if lot["sku"] == "COFFEE-1KG"} == {"FRESH"}
    await world.scan(shipment["tracking_number"], *DELIVER)
    final = await world.wait_status(order_id, "completed")
    assert final["outcome"] == "delivered"
    await world.keep_history(order_id, "backordered_at_pick")


async def test_the_workflow_follows_the_highest_revision_never_occurred_at(world: World) -> None:
    """Status signals as the bridge sends them, arriving out of revision order and
    stamped against it: the highest revision wins, whatever its `occurred_at`."""
    order_id = await world.place(world.acme, ("MUG-CERAMIC", 1))
    [shipment] = await world.wait_shipments(order_id, 1)
    handle = world.temporal.get_workflow_handle(OrderWorkflow.id(order_id))
    now = datetime.now(UTC)

    async def signal(revision: int, status: str, minutes: int) -> None:
        await handle.signal(
            OrderWorkflow.SIGNAL_SHIPMENT_STATUS,
            ShipmentSignal(
                event_id=str(uuid.uuid4()),
                shipment_id=shipment["shipment_id"],
                status=status,
                occurred_at=(now + timedelta(minutes=minutes)).isoformat(),
                revision=revision,
            ),
        )

    await signal(2, "out_for_delivery", 0)
    await signal(1, "in_transit", 60)  # an older revision, stamped later
    await signal(3, "delivered", -60)  # the newest revision, stamped earliest
    final = await world.wait_status(order_id, "completed")
    assert final["outcome"] == "delivered"
    # The status page follows the shipment service's own events (none were sent here);
    # what the workflow applied is in its query.
    live = await handle.query(OrderWorkflow.QUERY_STATUS)
    assert [s["status"] for s in live["shipments"]] == ["delivered"]
