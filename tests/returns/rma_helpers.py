"""Helpers for RMA tests: feed the delivered-lines read model with the events the order
and shipment services publish, and drive a return through its routes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from services.common import events as ev
from services.common.bus import Bus
from tests.customer.conftest import publish
from tests.harness import RunningService, auth, eventually

COORD = auth("coordinator")
SERVICE = auth("service")


def customer(customer_id: str) -> dict[str, str]:
    return auth("customer", customer_id=customer_id)


async def deliver(
    bus: Bus,
    order_id: str,
    customer_id: str,
    lines: list[tuple[str, int, str, str | None]],
    *,
    lots: list[tuple[int, str, int]] | None = None,
    days_ago: int = 1,
    warehouse: str = "WH-A",
) -> str:
    """An order placed (lines: sku, quantity, unit price, category) and shipped in one
    shipment (lots: line_no, lot, quantity; default one lot per line), delivered
    `days_ago` days ago. The delivery is published first: arrival order must not matter."""
    shipment_id = f"sh-{order_id}"
    delivered_at = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()
    await publish(
        bus,
        ev.ShipmentDelivered(
            shipment_id=shipment_id,
            order_id=order_id,
            customer_id=customer_id,
            delivered_at=delivered_at,
        ),
        shipment_id,
    )
    refs = [
        ev.OrderLineRef(line_no=n, sku=sku, quantity=q, unit_price=price, category=cat)
        for n, (sku, q, price, cat) in enumerate(lines, start=1)
    ]
    await publish(
        bus,
        ev.OrderPlaced(
            order_id=order_id,
            customer_id=customer_id,
            lines=refs,
            total="0",
            currency="EUR",
        ),
        order_id,
    )
    lot_rows = lots or [(ref.line_no, f"LOT-{ref.line_no}", ref.quantity) for ref in refs]
    await publish(
        bus,
        ev.ShipmentCreated(
            shipment_id=shipment_id,
            order_id=order_id,
            customer_id=customer_id,
            warehouse_id=warehouse,
            carrier="simulated",
            service_level="standard",
            tracking_number=f"T-{order_id}",
            promised_date="2026-12-01",
            lots=[
                ev.LotQuantity(
                    line_no=n, sku=refs[n - 1].sku, warehouse_id=warehouse, lot=lot, quantity=q
                )
                for n, lot, q in lot_rows
            ],
        ),
        shipment_id,
    )
    return shipment_id


def return_body(order_id: str, *lines: tuple[int, int], **changes: Any) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "reason": "no_longer_needed",
        "lines": [{"line_no": n, "quantity": q} for n, q in lines],
        **changes,
    }


async def request_when_known(
    svc: RunningService, body: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    """POST /returns once the read model knows the delivery (404/422 until then)."""
    key = str(uuid.uuid4())

    async def attempt() -> dict[str, Any] | None:
        r = await svc.http.post("/returns", json=body, headers={**headers, "Idempotency-Key": key})
        if r.status_code == 201:
            result: dict[str, Any] = r.json()
            return result
        assert r.status_code in (404, 422), r.text
        return None

    found: dict[str, Any] = await eventually(attempt, timeout=30, message="the delivery known")
    return found


async def step(svc: RunningService, return_id: str, name: str, **body: Any) -> dict[str, Any]:
    r = await svc.http.post(f"/internal/returns/{return_id}/{name}", json=body, headers=SERVICE)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def coord(svc: RunningService, return_id: str, name: str, **body: Any) -> Any:
    return await svc.http.post(f"/returns/{return_id}/{name}", json=body, headers=COORD)


def label_body(return_id: str) -> dict[str, Any]:
    return {
        "return_shipment_id": f"rs-{return_id}"[:36],
        "carrier": "simulated",
        "tracking_number": f"RT-{return_id}"[:64],
        "warehouse_id": "WH-A",
    }
