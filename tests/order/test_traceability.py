"""Lot traceability: backward to the receipts (supplier, purchase reference), forward to
every shipment, order and customer issued the lot, with the shipment's status and
delivery from the read model; keyset pages, one consignee once, quick at 10,000."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from services.common import events as ev
from services.common.bus import Bus
from services.order import stock
from services.order.models import Order, ShipmentView
from services.order.stock_models import StockAllocation
from tests.customer.conftest import publish
from tests.harness import RunningService, Stack, auth, eventually
from tests.order.test_orders import ADDRESS, body, seeded
from tests.order.test_stock import COORDINATOR, in_tx, receive, reserve

OPS = auth("ops")


async def trace(order: RunningService, lot: str, **params: Any) -> dict[str, Any]:
    r = await order.http.get(f"/traceability/lots/{lot}", params=params, headers=OPS)
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


async def shipped(order: RunningService, customer: str, quantity: int, shipment_id: str) -> str:
    """An order of `quantity` mugs for `customer`, reserved and issued to `shipment_id`."""
    r = await order.http.post(
        "/orders",
        json=body(customer, lines=[{"sku": "MUG-CERAMIC", "quantity": quantity}]),
        headers={**COORDINATOR, "Idempotency-Key": shipment_id},
    )
    assert r.status_code == 201, r.text
    order_id = str(r.json()["id"])
    await reserve(order, order_id, ("MUG-CERAMIC", quantity))
    source = order.runtime.source
    pick = await in_tx(order, lambda s: stock.issue(s, order_id, "WH-NORTH", shipment_id, source))
    assert pick.picked, pick
    return order_id


async def test_a_lot_traced_backward_and_forward(stack: Stack, bus: Bus) -> None:
    order = await seeded(stack)
    r = await receive(
        order,
        "WH-NORTH",
        "MUG-CERAMIC",
        "M-7",
        10,
        supplier_id="sup-42",
        purchase_reference="PO-9",
        reference="ASN-1",
    )
    assert r.status_code == 201, r.text
    assert r.json()["movement"]["supplier_id"] == "sup-42"
    first = await shipped(order, "c-1", 3, "shp-1")
    second = await shipped(order, "c-2", 2, "shp-2")
    await shipped(order, "c-2", 1, "shp-3")
    # shp-1 is delivered, shp-2 picked up, shp-3 cancelled before dispatch (not traced).
    for shipment_id, order_id in (("shp-1", first), ("shp-2", second)):
        created = ev.ShipmentCreated(
            shipment_id=shipment_id,
            order_id=order_id,
            customer_id="c",
            warehouse_id="WH-NORTH",
            carrier="simulated",
            service_level="standard",
            tracking_number=f"SIM-{shipment_id}",
            promised_date="2026-01-10",
            lots=[],
        )
        await publish(bus, created, shipment_id)
    for shipment_id, order_id, status, revision in (
        ("shp-1", first, "delivered", 2),
        ("shp-2", second, "in_transit", 1),
    ):
        scan = ev.ShipmentTrackingUpdated(
            shipment_id=shipment_id,
            order_id=order_id,
            tracking_number=f"SIM-{shipment_id}",
            event_id=f"scan-{shipment_id}",
            event_status=status,
            status=status,
            occurred_at="2026-01-09T10:00:00+00:00",
            revision=revision,
        )
        await publish(bus, scan, shipment_id)
    source = order.runtime.source
    await in_tx(order, lambda s: stock.unissue(s, "shp-3", source))

    async def followed() -> dict[str, Any] | None:
        found = await trace(order, "M-7")
        statuses = [c["shipment_status"] for c in found["forward"]["consignees"]]
        return found if statuses == ["delivered", "in_transit"] else None

    found = await eventually(followed, message="shipment views")
    assert found["skus"] == ["MUG-CERAMIC"]
    assert found["status"] == {"MUG-CERAMIC": "released"}
    [receipt] = found["backward"]["receipts"]
    assert (receipt["supplier_id"], receipt["purchase_reference"], receipt["reference"]) == (
        "sup-42",
        "PO-9",
        "ASN-1",
    )
    assert (receipt["warehouse_id"], receipt["quantity"]) == ("WH-NORTH", 10)
    assert found["on_hand"] == [
        {"sku": "MUG-CERAMIC", "warehouse_id": "WH-NORTH", "on_hand": 5, "reserved": 0, "held": 0}
    ]
    one, two = found["forward"]["consignees"]
    assert (one["customer_id"], one["order_id"], one["quantity"], one["line_no"]) == (
        "c-1",
        first,
        3,
        1,
    )
    assert (one["dispatched"], one["delivered_at"]) == (True, "2026-01-09T10:00:00+00:00")
    assert (two["customer_id"], two["quantity"], two["dispatched"], two["delivered_at"]) == (
        "c-2",
        2,
        True,
        None,
    )
    forward = found["forward"]
    assert (forward["total_quantity"], forward["customers"], forward["next_cursor"]) == (
        5,
        2,
        None,
    )

    # A shipment the carrier does not have yet may still be stopped: not dispatched.
    await shipped(order, "c-3", 1, "shp-4")
    latest = await trace(order, "M-7", sku="MUG-CERAMIC")
    fourth = latest["forward"]["consignees"][-1]
    assert (fourth["shipment_id"], fourth["shipment_status"], fourth["dispatched"]) == (
        "shp-4",
        "pending",
        False,
    )
    assert (latest["forward"]["customers"], latest["forward"]["total_quantity"]) == (3, 6)


CONSIGNEES = 10_000


async def test_ten_thousand_consignees_page_through_quickly(stack: Stack) -> None:
    """10,000 issued allocations of one lot (bulk-loaded): every consignee appears exactly
    once across the pages, and the whole walk takes well under the time a recall has."""
    order = await seeded(stack)
    assert (await receive(order, "WH-NORTH", "MUG-CERAMIC", "BIG-1", 5)).status_code == 201
    now = datetime.now(UTC)
    ids = [str(uuid.UUID(int=i)) for i in range(CONSIGNEES)]

    async def load(session: Any) -> None:
        await session.execute(
            sa.insert(Order),
            [
                {
                    "id": oid,
                    "customer_id": f"cust-{i % 7000}",
                    "status": "shipping",
                    "currency": "EUR",
                    "total": 0,
                    "ship_to": ADDRESS,
                    "placed_by": "bench",
                    "created_at": now,
                    "updated_at": now,
                }
                for i, oid in enumerate(ids)
            ],
        )
        await session.execute(
            sa.insert(StockAllocation),
            [
                {
                    "order_id": oid,
                    "line_no": 1,
                    "sku": "MUG-CERAMIC",
                    "warehouse_id": "WH-NORTH",
                    "lot": "BIG-1",
                    "quantity": 1 + i % 3,
                    "status": "issued",
                    "shipment_id": f"shp-{i:06d}",
                    "created_at": now,
                    "updated_at": now,
                }
                for i, oid in enumerate(ids)
            ],
        )
        await session.execute(
            sa.insert(ShipmentView),
            [
                {
                    "shipment_id": f"real-{i:06d}",
                    "order_id": oid,
                    "warehouse_id": "WH-NORTH",
                    "carrier": "simulated",
                    "service_level": "standard",
                    "tracking_number": f"T{i}",
                    "status": "delivered",
                    "revision": 3,
                    "promised_date": "2026-01-10",
                    "lots": [],
                    "updated_at": now,
                }
                for i, oid in enumerate(ids[:10])
            ],
        )

    await in_tx(order, load)
    seen: list[str] = []
    delivered = 0
    known: list[str] = []
    pages = 0
    cursor = None
    started = time.monotonic()
    while True:
        params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = await trace(order, "BIG-1", **params)
        pages += 1
        seen += [c["order_id"] for c in page["forward"]["consignees"]]
        known += [
            c["shipment_id"]
            for c in page["forward"]["consignees"]
            if c["shipment_id"].startswith("real-")
        ]
        delivered += sum(
            c["delivered_at"] is None and c["dispatched"] for c in page["forward"]["consignees"]
        )
        cursor = page["forward"]["next_cursor"]
        if cursor is None:
            break
    elapsed = time.monotonic() - started
    print(f"traced {len(seen)} consignees in {pages} pages, {elapsed:.2f} s")
    assert pages == CONSIGNEES // 1000
    assert len(seen) == len(set(seen)) == CONSIGNEES
    assert set(seen) == set(ids)
    assert delivered == 10  # the shipments the read model knows (delivered, no scan time)
    assert known == [f"real-{i:06d}" for i in range(10)]  # their ids, not the pick's
    assert page["forward"]["total_quantity"] == sum(1 + i % 3 for i in range(CONSIGNEES))
    assert page["forward"]["customers"] == 7000
    assert elapsed < 30, elapsed  # typically a second or two; generous for a loaded machine


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/traceability/lots/NOPE", 404),
        ("/traceability/lots/M-7?limit=1001", 422),
        ("/traceability/lots/M-7?limit=0", 422),
        ("/traceability/lots/M-7?cursor=not-a-cursor", 400),
        ("/traceability/lots/M-7?sku=lower", 422),
        ("/traceability/lots/M-7?sku=GRINDER-BURR", 404),
    ],
)
async def test_bad_trace_requests_are_problems(stack: Stack, path: str, status: int) -> None:
    order = await seeded(stack)
    assert (await receive(order, "WH-NORTH", "MUG-CERAMIC", "M-7", 1)).status_code == 201
    r = await order.http.get(path, headers=OPS)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "extra", [{"supplier_id": "s" * 65}, {"purchase_reference": ""}, {"purchase_reference": 7}]
)
async def test_receipt_origin_is_bounded(stack: Stack, extra: dict[str, Any]) -> None:
    order = await seeded(stack)
    r = await receive(order, "WH-NORTH", "MUG-CERAMIC", "M-8", 1, **extra)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    gone = await order.http.get("/traceability/lots/M-8", headers=OPS)
    assert gone.status_code == 404


async def test_traceability_is_staff_only(stack: Stack) -> None:
    order = await seeded(stack)
    assert (await receive(order, "WH-NORTH", "MUG-CERAMIC", "M-7", 1)).status_code == 201
    for headers in (auth("customer", customer_id="c-1"), auth("supplier", supplier_id="s-1")):
        r = await order.http.get("/traceability/lots/M-7", headers=headers)
        assert r.status_code == 403
    for role in ("coordinator", "ops", "service"):
        r = await order.http.get("/traceability/lots/M-7", headers=auth(role))
        assert r.status_code == 200
