"""A return shipment of a delivered order through the running system: the label comes
from the real outbound shipment, the scans through the carrier webhook, and the order
side never sees the return parcel."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.e2e.conftest import World
from tests.harness import eventually

pytestmark = pytest.mark.settings(
    shipment={"simulator_enabled": False},
    workflows={"backorder_timeout_seconds": 3600, "credit_hold_timeout_seconds": 3600},
)


async def test_return_parcel_of_a_delivered_order_reaches_the_warehouse(world: World) -> None:
    order_id = await world.place(world.acme, ("COFFEE-1KG", 2), ("MUG-CERAMIC", 1))
    [shipment] = await world.wait_shipments(order_id, 1)
    await world.scan(shipment["tracking_number"], "IR", "PU", "OD", "DL")
    await world.wait_status(order_id, "completed")
    outbound = await world.api.call("shipment", "GET", f"/shipments/{shipment['shipment_id']}")
    coffee = next(line for line in outbound["lines"] if line["sku"] == "COFFEE-1KG")

    return_id = str(uuid.uuid4())
    created = await world.api.call(
        "shipment",
        "POST",
        "/return-shipments",
        {
            "return_id": return_id,
            "order_id": order_id,
            "customer_id": world.acme,
            "warehouse_id": outbound["warehouse_id"],
            "carrier": None,
            "lines": [{"line_no": coffee["line_no"], "sku": "COFFEE-1KG", "quantity": 1}],
        },
        key=f"return-{return_id}",
        ok=(201,),
    )
    assert created["ship_from"] == outbound["ship_to"]
    assert created["lines"][0]["unit_weight_grams"] == coffee["unit_weight_grams"]
    assert (await world.return_shipment(return_id))["id"] == created["id"]

    result = await world.scan_return(return_id, "IR", "PU", "OD", "DL")
    assert result["accepted"] == 4
    back = await world.api.call("shipment", "GET", f"/return-shipments/{created['id']}")
    assert back["status"] == "delivered" and back["revision"] == 4

    # The order service's view still has one (outbound, delivered) shipment.
    async def settled() -> dict[str, Any] | None:
        status = await world.status(order_id)
        return status if len(status["shipments"][0]["events"]) == 4 else None

    status = await eventually(settled, 30, 0.1, "order view settled")
    assert status["status"] == "completed"
    assert [s["shipment_id"] for s in status["shipments"]] == [shipment["shipment_id"]]
    assert status["shipments"][0]["status"] == "delivered"
