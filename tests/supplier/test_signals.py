"""Replenishment signals from real ORDER events on NATS: one signal with hand-checked
numbers however often the events arrive, on the domain subject and the supplier's own;
open purchase orders count as on order; periodic review; cancelling."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from nats.aio.msg import Msg

from services.common.bus import Bus
from services.common.envelope import Envelope
from services.common.tables import outbox
from services.supplier.models import DemandDaily, PurchaseOrder
from tests.customer.conftest import republish, stream_events
from tests.harness import RunningService, Stack, eventually
from tests.supplier.helpers import (
    COORD,
    SERVICE,
    add_item,
    create_supplier,
    inventory,
    publish_confirmed,
    publish_inventory,
    put_policy,
    settled,
    signals_of,
    supplier,
    tea_setup,
)


@pytest.fixture
async def svc(stack: Stack) -> RunningService:
    return await stack.start("supplier")


async def test_inventory_and_demand_raise_one_signal_with_the_hand_checked_numbers(
    svc: RunningService, bus: Bus
) -> None:
    """Demand: 50 units today over a 10-day history, so d = 5/day and sigma = 15 (the
    population standard deviation of nine 0s and one 50). Lead time 5 days, no lead-time
    variability, z(95 %) = 1.6449:
    safety stock = 1.6449 * sqrt(5 * 15^2) = 55.17 -> 56;
    reorder point = 5 * 5 + 55.17 = 80.17 -> 81 = target (continuous review);
    position = 100 on hand - 50 reserved = 50 <= 81: needed;
    quantity = 81 - 50 = 31 (no order cost: EOQ 0), >= MOQ 10, in packs of 12 -> 36;
    need by today (the position is below the safety stock already)."""
    await tea_setup(svc)
    copies: list[Msg] = []
    subscription = await bus.nc.subscribe("supplier.ACME.signals", cb=_keep(copies))

    confirmed = await publish_confirmed(bus, "o-1", ("TEA", "WH-A", 50))
    await settled(svc, 1)
    first = await publish_inventory(bus, inventory("TEA", "WH-A", on_hand=100, reserved=50))
    await settled(svc, 2)
    # The same events again (redelivered copies), and more inventory changes after them.
    await republish(bus, confirmed)
    await republish(bus, first)
    # The signal's PO (36, waiting for approval) is on order: position 86 and 91 > 81.
    await publish_inventory(bus, inventory("TEA", "WH-A", on_hand=100, reserved=50))
    await publish_inventory(bus, inventory("TEA", "WH-A", on_hand=100, reserved=40, held=5))
    await settled(svc, 4)

    [signal] = await signals_of(svc, "ACME")
    today = datetime.now(UTC).date().isoformat()
    assert {
        k: signal[k]
        for k in (
            "status",
            "origin",
            "sku",
            "warehouse_id",
            "on_hand",
            "reserved",
            "on_order",
            "position",
            "forecast_method",
            "forecast_daily_mean",
            "forecast_daily_sigma",
            "safety_stock",
            "reorder_point",
            "target",
            "eoq",
            "quantity",
            "need_by",
            "lead_time_days",
        )
    } == {
        "status": "ordered",
        "origin": "policy",
        "sku": "TEA",
        "warehouse_id": "WH-A",
        "on_hand": 100,
        "reserved": 50,
        "on_order": 0,
        "position": 50,
        "forecast_method": "mean",
        "forecast_daily_mean": 5.0,
        "forecast_daily_sigma": 15.0,
        "safety_stock": 56,
        "reorder_point": 81,
        "target": 81,
        "eoq": 0,
        "quantity": 36,
        "need_by": today,
        "lead_time_days": 5,
    }
    assert [h["status"] for h in signal["history"]] == ["open", "ordered"]
    async with svc.runtime.db.reading() as session:
        demand = (await session.execute(sa.select(DemandDaily.quantity))).scalars().all()
    assert demand == [50]  # the redelivered confirmation counted once

    # Published once on the domain subject and once, under its own id, on the supplier's.
    await eventually(lambda: copies, message="the copy on supplier.ACME.signals")
    [domain] = await eventually(
        lambda: stream_events(bus, "SUPPLIER", "supplier.signal.raised"),
        message="the signal on supplier.signal.raised",
    )
    [copy] = [Envelope.model_validate(json.loads(m.data)) for m in copies]
    assert copy.id != domain.id
    assert copy.type == domain.type == "supplier.signal.raised.v1"
    assert copy.subject == domain.subject == signal["id"]
    assert copy.data == domain.data
    assert (copy.data["signal_id"], copy.data["quantity"], copy.data["reorder_point"]) == (
        signal["id"],
        36,
        81,
    )
    assert copy.data["supplier_part_number"] == "T-1"
    await subscription.unsubscribe()
    await asyncio.sleep(0)  # let the subscription's task see it


def _keep(into: list[Msg]) -> Any:
    async def keep(msg: Msg) -> None:
        into.append(msg)

    return keep


async def _purchase_order(svc: RunningService, status: str, quantity: int) -> None:
    now = datetime.now(UTC)
    async with svc.runtime.db.transaction() as session:
        session.add(
            PurchaseOrder(
                id=f"po-{status}",
                supplier_id="ACME",
                signal_id=None,
                sku="TEA",
                warehouse_id="WH-A",
                quantity=quantity,
                unit_cost=Decimal("2.00"),
                currency="EUR",
                status=status,
                quantity_received=10,
                created_at=now,
                updated_at=now,
            )
        )


async def test_an_open_purchase_order_stops_a_second_signal(svc: RunningService, bus: Bus) -> None:
    await tea_setup(svc)
    await publish_confirmed(bus, "o-1", ("TEA", "WH-A", 50))
    await publish_inventory(bus, inventory("TEA", "WH-A", on_hand=100, reserved=50))
    await settled(svc, 2)
    [first] = await signals_of(svc, "ACME")
    assert first["status"] == "ordered"
    listed = await svc.http.get("/purchase-orders", params={"sku": "TEA"}, headers=COORD)
    [po] = listed.json()["items"]
    assert (po["signal_id"], po["status"], po["quantity"]) == (first["id"], "pending_approval", 36)
    path = f"/purchase-orders/{po['id']}/cancel"
    cancelled = await svc.http.post(path, json={"reason": "ordered by phone"}, headers=COORD)
    assert cancelled.status_code == 200, cancelled.text
    assert [h["status"] for h in cancelled.json()["history"]] == ["pending_approval", "cancelled"]
    again = await svc.http.post(path, json={"reason": "again"}, headers=COORD)
    assert (again.status_code, again.json()["code"]) == (409, "invalid_transition")

    # The phone order is a PO acknowledged, 10 of its 110 received but not yet booked into
    # stock by the order service (all 110 on order), and another waits for approval (500):
    # both are on order.
    await _purchase_order(svc, "acknowledged", 110)
    await _purchase_order(svc, "pending_approval", 500)
    await publish_inventory(bus, inventory("TEA", "WH-A", on_hand=100, reserved=60))
    await settled(svc, 3)
    assert [s["status"] for s in await signals_of(svc, "ACME")] == ["ordered"]
    inv = (await svc.http.get("/suppliers/ACME/inventory", headers=COORD)).json()
    [row] = inv["items"]
    assert (row["on_order"], row["position"]) == (610, 650)

    # Without them the same change raises a signal again: the POs were what kept it quiet.
    async with svc.runtime.db.transaction() as session:
        for po_id, status, booked in (
            ("po-acknowledged", "received", 10),  # its 10 in stock now
            ("po-pending_approval", "cancelled", 0),
        ):
            await session.execute(
                sa.update(PurchaseOrder)
                .where(PurchaseOrder.id == po_id)
                .values(status=status, quantity_booked=booked)
            )
    await publish_inventory(bus, inventory("TEA", "WH-A", on_hand=100, reserved=61))
    await settled(svc, 4)
    second, _ = await signals_of(svc, "ACME")
    assert (second["status"], second["on_order"], second["position"]) == ("ordered", 0, 39)


async def test_periodic_policies_are_evaluated_by_the_review(svc: RunningService, bus: Bus) -> None:
    await create_supplier(svc, "ACME")
    await add_item(svc, "ACME", "TEA", moq=10)
    await add_item(svc, "ACME", "MUG")
    await put_policy(
        svc, "TEA", "WH-A", review_mode="periodic", review_period_days=7, horizon_days=10
    )
    await put_policy(svc, "MUG", "WH-A", review_mode="periodic", review_period_days=7)
    await publish_confirmed(bus, "o-1", ("TEA", "WH-A", 20))
    await publish_inventory(bus, inventory("TEA", "WH-A", on_hand=20, reserved=20))
    await publish_inventory(bus, inventory("MUG", "WH-A", on_hand=500))
    await settled(svc, 3)
    assert await signals_of(svc, "ACME") == []  # periodic: not on inventory changes

    denied = await svc.http.post("/internal/replenishment/review", headers=COORD)
    assert denied.status_code == 403
    r = await svc.http.post("/internal/replenishment/review", headers=SERVICE)
    assert r.status_code == 200, r.text
    review = r.json()
    assert review["evaluated"] == 2
    [raised] = review["raised"]
    # d = 2/day, sigma = 6 over 10 days; L = 5, R = 7:
    # ss = 1.6449 * sqrt(5 * 36) = 22.07 -> 23; rop = 10 + 22.07 -> 33;
    # target = 32.07 + 14 = 46.07 -> 47; position 0: 47, packs of 1.
    assert (raised["sku"], raised["review_mode"], raised["reorder_point"]) == (
        "TEA",
        "periodic",
        33,
    )
    assert (raised["target"], raised["quantity"]) == (47, 47)
    again = await svc.http.post(
        "/internal/replenishment/review",
        json={
            "pairs": [{"sku": "TEA", "warehouse_id": "WH-A"}, {"sku": "X1", "warehouse_id": "WH-A"}]
        },
        headers=SERVICE,
    )
    assert again.status_code == 200, again.text
    assert (again.json()["evaluated"], again.json()["raised"]) == (1, [])
    assert again.json()["skipped"] == [{"sku": "X1", "warehouse_id": "WH-A"}]
    assert len(await signals_of(svc, "ACME")) == 1


async def test_the_preferred_effective_supplier_is_signalled(svc: RunningService, bus: Bus) -> None:
    """Lowest priority value wins among items effective today; others wait their turn."""
    for name in ("CHEAP", "FAST", "OLD"):
        await create_supplier(svc, name)
    await add_item(svc, "FAST", "TEA", priority=10)
    await add_item(svc, "CHEAP", "TEA", priority=5, effective_from="2099-01-01")
    await add_item(
        svc, "OLD", "TEA", priority=1, effective_from="2020-01-01", effective_to="2020-12-31"
    )
    await put_policy(svc, "TEA", "WH-A", min_qty=10)
    await publish_inventory(bus, inventory("TEA", "WH-A", on_hand=5))
    await settled(svc, 1)
    [signal] = await signals_of(svc, "FAST")
    assert (signal["reorder_point"], signal["quantity"]) == (10, 5)
    assert await signals_of(svc, "CHEAP") == await signals_of(svc, "OLD") == []
    assert (
        await svc.http.get(f"/signals/{signal['id']}", headers=supplier("FAST"))
    ).status_code == 200
    other = await svc.http.get(f"/signals/{signal['id']}", headers=supplier("CHEAP"))
    assert (other.status_code, other.json()["code"]) == (404, "not_found")
    async with svc.runtime.db.reading() as session:
        types = (
            (await session.execute(sa.select(outbox.c.subject).order_by(outbox.c.seq)))
            .scalars()
            .all()
        )
    assert types == ["supplier.signal.raised", "supplier.FAST.signals", "supplier.po.created"]
