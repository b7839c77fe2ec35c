"""The order service's shipment read model follows the shipment service: it applies the
status of the highest revision seen, whatever order the events arrive in, and keeps
every tracking event in the history. Events are published to NATS as the shipment
service publishes them."""

from __future__ import annotations

import uuid
from typing import Any

from services.common import events as ev
from services.common.bus import Bus
from tests.customer.conftest import publish
from tests.harness import RunningService, Stack, auth, eventually
from tests.order.test_orders import body, seeded

COORDINATOR = auth("coordinator")


async def placed_with_shipment(svc: RunningService, bus: Bus) -> tuple[str, str]:
    r = await svc.http.post("/orders", json=body(), headers={**COORDINATOR, "Idempotency-Key": "o"})
    assert r.status_code == 201, r.text
    order_id, shipment_id = str(r.json()["id"]), str(uuid.uuid4())
    await publish(bus, created(order_id, shipment_id), shipment_id)
    return order_id, shipment_id


def created(order_id: str, shipment_id: str) -> ev.ShipmentCreated:
    """The shipment service's `ShipmentCreated` for one shipment (SIM123 from WH-NORTH)."""
    return ev.ShipmentCreated(
        shipment_id=shipment_id,
        order_id=order_id,
        customer_id="c-1",
        warehouse_id="WH-NORTH",
        carrier="simulated",
        service_level="standard",
        tracking_number="SIM123",
        promised_date="2026-01-10",
        lots=[],
    )


def tracking(
    order_id: str, shipment_id: str, scan: str, status: str, at: str, revision: int
) -> ev.ShipmentTrackingUpdated:
    return ev.ShipmentTrackingUpdated(
        shipment_id=shipment_id,
        order_id=order_id,
        tracking_number="SIM123",
        event_id=f"scan-{revision}",
        event_status=scan,
        status=status,
        occurred_at=at,
        eta=f"eta-{revision}",
        revision=revision,
    )


async def shipment_with_events(svc: RunningService, order_id: str, count: int) -> dict[str, Any]:
    """The order's one shipment on its status page, once `count` tracking events are in."""

    async def arrived() -> dict[str, Any] | None:
        r = await svc.http.get(f"/orders/{order_id}/status", headers=COORDINATOR)
        shipments = r.json()["shipments"]
        return shipments[0] if shipments and len(shipments[0]["events"]) >= count else None

    found: dict[str, Any] = await eventually(arrived, message=f"{count} tracking events")
    return found


async def test_the_owners_latest_revision_wins_whatever_the_scan_times(
    stack: Stack, bus: Bus
) -> None:
    """A delivered scan stamped before an out-for-delivery scan still delivers (the
    shipment service decided so, revision 5), and a stale replay (revision 3) stamped
    later changes nothing; the history keeps all three."""
    svc = await seeded(stack)
    order_id, shipment_id = await placed_with_shipment(svc, bus)
    for scan, status, at, revision in (
        ("out_for_delivery", "out_for_delivery", "2026-01-08T11:00:00+00:00", 4),
        ("delivered", "delivered", "2026-01-08T10:00:00+00:00", 5),
        ("in_transit", "in_transit", "2026-01-08T12:00:00+00:00", 3),
    ):
        await publish(bus, tracking(order_id, shipment_id, scan, status, at, revision), shipment_id)
    shipment = await shipment_with_events(svc, order_id, 3)
    assert shipment["status"] == "delivered"
    assert shipment["eta"] == "eta-5"
    assert sorted(e["status"] for e in shipment["events"]) == [
        "delivered",
        "in_transit",
        "out_for_delivery",
    ]


async def test_cancellation_follows_its_revision(stack: Stack, bus: Bus) -> None:
    """A cancellation older than the status already applied is ignored; a newer one
    applies."""
    svc = await seeded(stack)
    order_id, shipment_id = await placed_with_shipment(svc, bus)
    await publish(
        bus,
        tracking(order_id, shipment_id, "info_received", "info_received", "2026-01-08T09:00Z", 2),
        shipment_id,
    )
    stale = ev.ShipmentCancelled(shipment_id=shipment_id, order_id=order_id, revision=1)
    await publish(bus, stale, shipment_id)
    marker = tracking(order_id, shipment_id, "info_received", "info_received", "x", 2)
    await publish(bus, marker.model_copy(update={"event_id": "marker"}), shipment_id)
    assert (await shipment_with_events(svc, order_id, 2))["status"] == "info_received"
    newer = ev.ShipmentCancelled(
        shipment_id=shipment_id, order_id=order_id, revision=3, reason="coordinator"
    )
    await publish(bus, newer, shipment_id)

    async def cancelled() -> bool:
        r = await svc.http.get(f"/orders/{order_id}/status", headers=COORDINATOR)
        return bool(r.json()["shipments"][0]["status"] == "cancelled")

    await eventually(cancelled, message="shipment cancelled")


async def test_a_scan_after_cancellation_asks_a_coordinator_once(stack: Stack, bus: Bus) -> None:
    """The shipment was cancelled and its stock put back; a carrier scan saying it has
    the parcel after all keeps the status (the owner's) and opens one task."""
    svc = await seeded(stack)
    order_id, shipment_id = await placed_with_shipment(svc, bus)
    cancelled = ev.ShipmentCancelled(
        shipment_id=shipment_id, order_id=order_id, revision=1, reason="coordinator"
    )
    await publish(bus, cancelled, shipment_id)
    early = tracking(order_id, shipment_id, "info_received", "cancelled", "2026-01-08T08:00Z", 2)
    await publish(bus, early, shipment_id)
    for revision in (3, 4):  # the same scan, delivered twice by the carrier
        late = tracking(order_id, shipment_id, "delivered", "cancelled", "2026-01-09T10:00Z", 3)
        await publish(bus, late.model_copy(update={"revision": revision}), shipment_id)
    assert (await shipment_with_events(svc, order_id, 2))["status"] == "cancelled"

    async def tasks() -> list[dict[str, Any]] | None:
        r = await svc.http.get("/tasks", params={"order_id": order_id}, headers=COORDINATOR)
        items: list[dict[str, Any]] = r.json()["items"]
        return items or None

    [task] = await eventually(tasks, message="a task for the late scan")
    assert task["kind"] == "scan_after_cancelled"
    assert "SIM123: the carrier scanned delivered" in task["detail"]
