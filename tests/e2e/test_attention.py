"""Orders that cannot go on by themselves end in a visible, recoverable state: the
compensation puts the stock back, the order needs attention with a coordinator task,
and a coordinator retries or cancels it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.e2e.conftest import World
from tests.e2e.test_order_to_delivery import DELIVER

pytestmark = pytest.mark.settings(
    shipment={"simulator_enabled": False, "max_packages": 1},
    workflows={"backorder_timeout_seconds": 3600, "credit_hold_timeout_seconds": 3600},
)
TRACKED_ONLY = pytest.mark.settings(
    shipment={"simulator_enabled": False},
    workflows={"backorder_timeout_seconds": 3600, "credit_hold_timeout_seconds": 3600},
)
TOO_MANY_MUGS = ("MUG-CERAMIC", 60)  # 21 kg: two 20 kg parcels, one allowed


async def open_tasks(world: World, order_id: str) -> list[dict[str, Any]]:
    page = await world.api.call("order", "GET", "/tasks", params={"order_id": order_id})
    items: list[dict[str, Any]] = page["items"]
    return items


async def live_step(world: World, order_id: str) -> str:
    status = await world.api.call(
        "order", "GET", f"/orders/{order_id}/status", params={"live": "true"}
    )
    return str((status.get("workflow") or {}).get("step"))


async def retry(world: World, order_id: str) -> None:
    await world.api.call("order", "POST", f"/orders/{order_id}/retry")


async def test_too_many_parcels_needs_attention_then_ships_after_retry(world: World) -> None:
    """The shipment service refuses the parcels (422, for good): the pick goes back on
    the shelf, a coordinator raises the limit and retries, and the order ships."""
    before = await world.availability("MUG-CERAMIC")
    order_id = await world.place(world.acme, TOO_MANY_MUGS)
    await world.wait_status(order_id, "needs_attention")
    [task] = await open_tasks(world, order_id)
    assert task["kind"] == "needs_attention" and "too_many_packages" in task["detail"]
    assert await world.availability("MUG-CERAMIC") == before
    assert await live_step(world, order_id) == "needs_attention"

    world.stack.services["shipment"].app.state.settings.max_packages = 5
    await retry(world, order_id)
    [shipment] = await world.wait_shipments(order_id, 1)
    assert (await world.availability("MUG-CERAMIC"))["WH-NORTH"] == before["WH-NORTH"] - 60
    await world.scan(shipment["tracking_number"], *DELIVER)
    final = await world.wait_status(order_id, "completed")
    await world.keep_history(order_id, "attention_retry")
    assert final["outcome"] == "delivered"
    assert await open_tasks(world, order_id) == []
    assert (await world.availability("MUG-CERAMIC"))["WH-NORTH"] == before["WH-NORTH"] - 60


async def test_cancel_while_needing_attention(world: World) -> None:
    before = await world.availability("MUG-CERAMIC")
    order_id = await world.place(world.acme, TOO_MANY_MUGS)
    await world.wait_status(order_id, "needs_attention")
    cancelled = await world.api.call(
        "order", "POST", f"/orders/{order_id}/cancel", {"reason": "customer ordered less"}
    )
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancel_reason"] == "customer ordered less"
    assert await world.availability("MUG-CERAMIC") == before
    assert await open_tasks(world, order_id) == []
    await world.keep_history(order_id, "attention_cancel")


@TRACKED_ONLY
async def test_a_shipment_cancelled_by_a_coordinator_is_reshipped_on_retry(
    world: World,
) -> None:
    before = await world.availability("MUG-CERAMIC")
    order_id = await world.place(world.acme, ("MUG-CERAMIC", 2))
    [first] = await world.wait_shipments(order_id, 1)
    await world.api.call(
        "shipment", "POST", f"/shipments/{first['shipment_id']}/cancel", {"reason": "wrong box"}
    )
    await world.wait_status(order_id, "needs_attention")
    [task] = await open_tasks(world, order_id)
    assert "shipment_cancelled" in task["detail"]
    assert await world.availability("MUG-CERAMIC") == before

    await retry(world, order_id)
    shipments = await world.wait_shipments(order_id, 2)
    [second] = [s for s in shipments if s["shipment_id"] != first["shipment_id"]]
    await world.scan(second["tracking_number"], *DELIVER)
    final = await world.wait_status(order_id, "completed")
    await world.keep_history(order_id, "shipment_cancelled_retry")
    assert final["outcome"] == "delivered"
    assert (await world.availability("MUG-CERAMIC"))["WH-NORTH"] == before["WH-NORTH"] - 2


@TRACKED_ONLY
async def test_an_expired_shipment_beside_a_delivered_one_completes_partially(
    world: World,
) -> None:
    """The expired parcel never reached the customer: its stock goes back, and the
    order completes `partially_delivered` with the reason on its timeline."""
    before = await world.availability("GRINDER-BURR")
    order_id = await world.place(world.jane, ("MUG-CERAMIC", 1), ("GRINDER-BURR", 1))
    shipments = await world.wait_shipments(order_id, 2)
    by_warehouse = {s["warehouse_id"]: s for s in shipments}
    await world.scan(by_warehouse["WH-NORTH"]["tracking_number"], *DELIVER)
    await world.scan(by_warehouse["WH-SOUTH"]["tracking_number"], "IR", "XP")
    final = await world.wait_status(order_id, "completed")
    assert final["outcome"] == "partially_delivered"
    assert "shipment_expired" in [t["kind"] for t in final["timeline"]]
    assert await world.availability("GRINDER-BURR") == before
    await world.keep_history(order_id, "shipment_expired")


@TRACKED_ONLY
async def test_a_free_order_reaches_delivery(world: World) -> None:
    await world.api.call(
        "order",
        "POST",
        "/catalogue/skus",
        {"code": "SAMPLE-FREE", "name": "Free sample", "unit_price": "0", "weight_grams": 50},
        key=str(uuid.uuid4()),
    )
    await world.receive("WH-NORTH", "SAMPLE-FREE", "S-1", 5)
    order_id = await world.place(world.jane, ("SAMPLE-FREE", 1))
    [shipment] = await world.wait_shipments(order_id, 1)
    await world.scan(shipment["tracking_number"], *DELIVER)
    final = await world.wait_status(order_id, "completed")
    assert final["outcome"] == "delivered"


async def test_a_released_credit_hold_stands_after_a_retry(world: World) -> None:
    """Globex (100 EUR limit) was released by a coordinator; the order then failed at
    packing. Its retry gets the same credit decision and must not wait for a second
    release."""
    before = await world.availability("GRINDER-BURR")
    order_id = await world.place(world.globex, ("GRINDER-BURR", 9))  # 21.6 kg
    await world.wait_status(order_id, "credit_hold")
    await world.api.call("order", "POST", f"/orders/{order_id}/release-credit-hold")
    await world.wait_status(order_id, "needs_attention")
    world.stack.services["shipment"].app.state.settings.max_packages = 5
    await retry(world, order_id)
    [shipment] = await world.wait_shipments(order_id, 1)
    await world.scan(shipment["tracking_number"], *DELIVER)
    final = await world.wait_status(order_id, "completed")
    assert final["outcome"] == "delivered"
    assert (await world.availability("GRINDER-BURR"))["WH-SOUTH"] == before["WH-SOUTH"] - 9
