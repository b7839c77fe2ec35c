"""The simulated carrier on a running service: it drives shipments on its own, survives a
restart, follows its seed, and goes through the same ingestion as the webhook."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa

from services.common.bus import Bus
from services.common.db import Database
from services.shipment.carriers.simulated import SimulatedCarrier
from services.shipment.models import SimulatedEvent
from services.shipment.settings import ShipmentSettings
from tests.harness import RunningService, Stack, auth, eventually
from tests.shipment.helpers import (
    created,
    get_shipment,
    outbox_events,
    shipment_body,
    stream_events,
)


def pinned(scenario: str, **overrides: Any) -> dict[str, Any]:
    return shipment_body(simulation={"scenario": scenario}, **overrides)


async def simulation(svc: RunningService, shipment_id: str) -> dict[str, Any]:
    r = await svc.http.get(f"/shipments/{shipment_id}/simulation", headers=auth("ops"))
    assert r.status_code == 200, r.text
    plan: dict[str, Any] = r.json()
    return plan


async def reaches(svc: RunningService, shipment_id: str, status: str, timeout: float = 20) -> Any:
    async def check() -> dict[str, Any] | None:
        shipment = await get_shipment(svc, shipment_id)
        return shipment if shipment["status"] == status else None

    return await eventually(check, timeout=timeout, interval=0.1, message=f"status {status}")


async def test_happy_shipment_is_delivered_on_its_own(stack: Stack, bus: Bus) -> None:
    svc = await stack.start("shipment", simulator_seconds_per_hour=0.01)
    s = await created(svc, pinned("happy"))
    assert s["simulation_scenario"] == "happy"
    shipment = await reaches(svc, s["id"], "delivered", timeout=15)
    plan = await simulation(svc, s["id"])
    codes = [e["raw_code"] for e in shipment["events"]]
    assert codes == [scan["raw_code"] for scan in plan["scans"]]
    assert codes[0] == "IR" and codes[-2:] == ["OD", "DL"]
    assert [e["status"] for e in shipment["events"]][:2] == ["info_received", "in_transit"]
    assert {e["channel"] for e in shipment["events"]} == {"simulator"}
    assert all(scan["delivered"] for scan in plan["scans"])
    assert shipment["events"][-1]["location"]["city"] == "Utrecht"
    assert shipment["delivered_at"] == shipment["events"][-1]["occurred_at"]
    assert shipment["dispatched_at"] == shipment["events"][1]["occurred_at"]

    async def delivered() -> list[dict[str, Any]] | None:
        return await stream_events(bus, "shipment.shipment.delivered") or None

    [event] = await eventually(delivered, message="delivered on SHIPMENT")
    assert event["data"]["shipment_id"] == s["id"]
    updates = await outbox_events(stack.db_urls["shipment"], "tracking_updated")
    assert len(updates) == len(plan["scans"])


async def test_same_seed_same_plan(stack: Stack) -> None:
    svc = await stack.start("shipment", simulator_seconds_per_hour=3600, simulator_seed=42)
    unpinned = await created(svc, shipment_body(simulation=None))
    s = await created(svc, pinned("failed_attempt"))
    settings = svc.app.state.settings
    assert isinstance(settings, ShipmentSettings)
    for shipment in (unpinned, s):
        plan = await simulation(svc, shipment["id"])
        assert plan["seed"] == 42
        twin = SimulatedCarrier(settings.model_copy(update={"simulator_seed": 42}))
        other = SimulatedCarrier(settings.model_copy(update={"simulator_seed": 43}))
        scenario = None if shipment is unpinned else "failed_attempt"
        destination = ("Utrecht", "UT", "NL")
        expected = twin.plan(shipment["tracking_number"], scenario, destination)
        assert plan["scenario"] == expected.scenario.value == shipment["simulation_scenario"]
        got = [
            (x["seq"], x["raw_code"], x["offset_hours"], x["location"]["city"], x["description"])
            for x in plan["scans"]
        ]
        assert got == [(e.seq, e.code, e.hours, e.city, e.description) for e in expected.scans]
        assert other.plan(shipment["tracking_number"], scenario, destination) != expected
    assert (await simulation(svc, s["id"]))["scans"][0]["delivered"] is False


async def test_return_to_sender_ends_returned_with_lots_on_the_stream(
    stack: Stack, bus: Bus
) -> None:
    svc = await stack.start("shipment", simulator_seconds_per_hour=0.01)
    s = await created(svc, pinned("return_to_sender"))
    shipment = await reaches(svc, s["id"], "returned_to_sender", timeout=15)
    statuses = [e["status"] for e in shipment["events"]]
    assert statuses.count("attempt_failed") == 2 and statuses[-1] == "returned_to_sender"
    assert shipment["eta"] is None and shipment["delivered_at"] is None

    async def returned() -> list[dict[str, Any]] | None:
        return await stream_events(bus, "shipment.shipment.returned_to_sender") or None

    [event] = await eventually(returned, message="returned_to_sender on SHIPMENT")
    assert event["subject"] == s["id"]
    assert event["data"] == {
        "shipment_id": s["id"],
        "order_id": s["order_id"],
        "warehouse_id": "wh-ams",
        "lots": [
            {
                "line_no": 1,
                "sku": "SKU-A",
                "warehouse_id": "wh-ams",
                "lot": "LOT-A1",
                "quantity": 20,
            },
            {
                "line_no": 1,
                "sku": "SKU-A",
                "warehouse_id": "wh-ams",
                "lot": "LOT-A2",
                "quantity": 10,
            },
            {
                "line_no": 2,
                "sku": "SKU-B",
                "warehouse_id": "wh-ams",
                "lot": "LOT-B1",
                "quantity": 2,
            },
        ],
    }
    # The exception on the way (return initiated) was announced once; no delivery.
    assert len(await outbox_events(stack.db_urls["shipment"], "exception")) == 1
    assert await outbox_events(stack.db_urls["shipment"], "delivered") == []


async def test_restart_continues_a_half_simulated_shipment(stack: Stack) -> None:
    # ~50 carrier hours at 0.12 s/hour: about six seconds from label to doorstep.
    svc = await stack.start("shipment", simulator_seconds_per_hour=0.12)
    s = await created(svc, pinned("happy"))
    total = len((await simulation(svc, s["id"]))["scans"])
    await reaches(svc, s["id"], "in_transit", timeout=15)
    await stack.stop("shipment")

    db = Database(stack.db_urls["shipment"])
    try:
        async with db.reading() as session:
            flags = (
                (
                    await session.execute(
                        sa.select(SimulatedEvent.delivered)
                        .where(SimulatedEvent.shipment_id == s["id"])
                        .order_by(SimulatedEvent.seq)
                    )
                )
                .scalars()
                .all()
            )
    finally:
        await db.dispose()
    assert len(flags) == total
    fed = sum(flags)
    assert 2 <= fed < total, flags
    assert list(flags) == [True] * fed + [False] * (total - fed)

    await asyncio.sleep(1.0)  # downtime: scans falling due meanwhile are pushed on start
    svc = await stack.start("shipment", simulator_seconds_per_hour=0.12)
    shipment = await reaches(svc, s["id"], "delivered", timeout=20)
    assert len(shipment["events"]) == total
    assert len({e["carrier_event_id"] for e in shipment["events"]}) == total
    plan = await simulation(svc, s["id"])
    assert all(x["delivered"] for x in plan["scans"])
    occurred = [e["occurred_at"] for e in shipment["events"]]
    assert occurred == [x["due_at"] for x in plan["scans"]]
    updates = await outbox_events(stack.db_urls["shipment"], "tracking_updated")
    assert len(updates) == total
    assert len(await outbox_events(stack.db_urls["shipment"], "delivered")) == 1


async def test_cancelled_shipment_stops_being_simulated(stack: Stack) -> None:
    # Slow clock: the first scan is due minutes away, so the cancel comes first.
    svc = await stack.start("shipment", simulator_seconds_per_hour=600)
    s = await created(svc, pinned("happy"))
    r = await svc.http.post(f"/shipments/{s['id']}/cancel", headers=auth("coordinator"))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    plan = await simulation(svc, s["id"])
    assert plan["scans"] and all(x["cancelled"] and not x["delivered"] for x in plan["scans"])


async def test_manual_and_disabled_plan_nothing(stack: Stack) -> None:
    svc = await stack.start("shipment", simulator_seconds_per_hour=0.01)
    manual = await created(svc, pinned("manual"))
    assert (await simulation(svc, manual["id"]))["scans"] == []
    await stack.stop("shipment")
    svc = await stack.start("shipment", simulator_enabled=False)
    off = await created(svc, shipment_body(simulation=None))
    assert off["simulation_scenario"] is None
    assert (await simulation(svc, off["id"]))["scans"] == []
    await asyncio.sleep(0.5)
    assert (await get_shipment(svc, manual["id"]))["events"] == []
    assert (await get_shipment(svc, off["id"]))["status"] == "pending"
