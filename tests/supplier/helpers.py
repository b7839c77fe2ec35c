"""Helpers for the supplier service tests: master data through the routes, the ORDER events
the read models are fed with, waiting for the consumer to catch up, and a real local
HTTP server that receives webhooks."""

from __future__ import annotations

import itertools
from typing import Any

from services.common import events as ev
from services.common.bus import Bus
from services.common.envelope import Envelope
from tests.customer.conftest import publish
from tests.harness import RunningService, auth, eventually

COORD = auth("coordinator", subject="coordinator:carla")
SERVICE = auth("service")
OPS = auth("ops")
CONSUMER = "supplier-stock"

_keys = itertools.count()


def supplier(supplier_id: str) -> dict[str, str]:
    """A supplier user's headers."""
    return auth("supplier", supplier_id=supplier_id)


def key() -> dict[str, str]:
    return {"Idempotency-Key": f"test-{next(_keys)}"}


async def create_supplier(svc: RunningService, supplier_id: str, **fields: Any) -> dict[str, Any]:
    body = {"id": supplier_id, "name": f"{supplier_id} Ltd", **fields}
    r = await svc.http.post("/suppliers", json=body, headers={**COORD, **key()})
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def add_item(svc: RunningService, supplier_id: str, sku: str, **terms: Any) -> dict[str, Any]:
    body = {"sku": sku, "unit_cost": "2.00", "lead_time_days": 5, **terms}
    r = await svc.http.post(
        f"/suppliers/{supplier_id}/items", json=body, headers={**COORD, **key()}
    )
    assert r.status_code == 201, r.text
    item: dict[str, Any] = r.json()
    return item


async def put_policy(
    svc: RunningService, sku: str, warehouse_id: str, **fields: Any
) -> dict[str, Any]:
    r = await svc.http.put(
        f"/replenishment-policies/{sku}/{warehouse_id}", json=fields, headers=COORD
    )
    assert r.status_code == 200, r.text
    policy: dict[str, Any] = r.json()
    return policy


async def tea_setup(svc: RunningService, supplier_id: str = "ACME", **supplier_fields: Any) -> None:
    """The hand-checked case: TEA from `supplier_id` (lead 5 days, MOQ 10, packs of 12),
    reviewed continuously in WH-A at 95 % over a 10-day history (the forecast is then the
    plain mean and standard deviation)."""
    await create_supplier(svc, supplier_id, **supplier_fields)
    await add_item(svc, supplier_id, "TEA", moq=10, pack_multiple=12, supplier_part_number="T-1")
    await put_policy(svc, "TEA", "WH-A", service_level=0.95, horizon_days=10)


def inventory(
    sku: str,
    warehouse_id: str,
    on_hand: int,
    reserved: int = 0,
    held: int = 0,
    backordered: int = 0,
) -> ev.InventoryChanged:
    return ev.InventoryChanged(
        sku=sku,
        warehouse_id=warehouse_id,
        on_hand=on_hand,
        reserved=reserved,
        held=held,
        available=on_hand - reserved - held,
        reason="test",
        backordered=backordered,
    )


async def publish_inventory(bus: Bus, event: ev.InventoryChanged) -> Envelope:
    return await publish(bus, event, f"{event.sku}@{event.warehouse_id}")


async def publish_confirmed(bus: Bus, order_id: str, *lines: tuple[str, str, int]) -> Envelope:
    """`OrderConfirmed` reserving (sku, warehouse, quantity) lines."""
    event = ev.OrderConfirmed(
        order_id=order_id,
        customer_id="c-1",
        allocations=[
            ev.LotQuantity(line_no=n, sku=sku, warehouse_id=wh, lot="L1", quantity=q)
            for n, (sku, wh, q) in enumerate(lines, start=1)
        ],
    )
    return await publish(bus, event, order_id)


async def settled(svc: RunningService, processed: int) -> None:
    """Wait until the stock consumer has processed `processed` distinct events and has
    nothing pending or unacknowledged (redeliveries included)."""

    async def check() -> bool:
        status = (await svc.http.get("/ops/messaging", headers=OPS)).json()
        consumer = next(c for c in status["consumers"] if c["name"] == CONSUMER)
        return (
            status["inbox"].get(CONSUMER, 0) == processed
            and consumer.get("pending") == 0
            and consumer.get("ack_pending") == 0
        )

    await eventually(check, timeout=60, message=f"{processed} order events processed")


async def signals_of(
    svc: RunningService, supplier_id: str, headers: dict[str, str] = COORD, **params: str
) -> list[dict[str, Any]]:
    r = await svc.http.get(f"/suppliers/{supplier_id}/signals", params=params, headers=headers)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


# --- a webhook receiver ---------------------------------------------------------------
