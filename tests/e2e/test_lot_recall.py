"""The ledger's reverse-logistics parts in the running system: a recalled lot is never
picked again, traceability follows the shipment, and a replacement order runs through
the normal order-to-delivery workflow to delivery."""

from __future__ import annotations

import uuid
from typing import Any

from tests.e2e.conftest import World
from tests.harness import auth, eventually

DELIVER = ("IR", "PU", "AR", "OD", "DL")


async def recall(world: World, sku: str, lot: str) -> dict[str, Any]:
    result: dict[str, Any] = await world.api.call(
        "order",
        "POST",
        f"/stock/lots/{sku}/{lot}/status",
        {"status": "recalled", "reason": "supplier recall RC-9", "recall_id": "rc-9"},
    )
    return result


async def test_a_recalled_lot_is_never_picked_again(world: World) -> None:
    """L-2601 would ship first (FEFO); recalled, the next order ships L-2602, and once
    every lot in stock is recalled an order backorders rather than ship one."""
    await recall(world, "COFFEE-1KG", "L-2601")
    order_id = await world.place(world.acme, ("COFFEE-1KG", 2))
    [shipment] = await world.wait_shipments(order_id, 1)
    assert {lot["lot"] for lot in shipment["lots"]} == {"L-2602"}

    trace = await world.api.call("order", "GET", "/traceability/lots/L-2602")
    [consignee] = trace["forward"]["consignees"]
    assert (consignee["order_id"], consignee["customer_id"], consignee["quantity"]) == (
        order_id,
        world.acme,
        2,
    )
    untouched = await world.api.call("order", "GET", "/traceability/lots/L-2601")
    assert untouched["status"] == {"COFFEE-1KG": "recalled"}
    assert untouched["forward"]["consignees"] == []

    for lot in ("L-2602", "L-2603"):
        await recall(world, "COFFEE-1KG", lot)
    late = await world.place(world.acme, ("COFFEE-1KG", 1))
    await world.wait_status(late, "backordered")
    assert (await world.status(late))["shipments"] == []


async def test_a_replacement_order_is_delivered_by_the_normal_workflow(world: World) -> None:
    original = await world.place(world.jane, ("MUG-CERAMIC", 1))
    [shipment] = await world.wait_shipments(original, 1)
    await world.scan(shipment["tracking_number"], *DELIVER)
    await world.wait_status(original, "completed")

    order = world.stack.services["order"]
    return_id = str(uuid.uuid4())
    r = await order.http.post(
        "/internal/replacements",
        json={
            "return_id": return_id,
            "original_order_id": original,
            "customer_id": world.jane,
            "lines": [{"sku": "MUG-CERAMIC", "quantity": 1}],
        },
        headers={**auth("service", subject="return-workflow"), "Idempotency-Key": return_id},
    )
    assert r.status_code == 201, r.text
    replacement = r.json()
    assert replacement["total"] == "0.00"
    [again] = await world.wait_shipments(replacement["id"], 1)
    await world.scan(again["tracking_number"], *DELIVER)
    done = await world.wait_status(replacement["id"], "completed")
    assert done["outcome"] == "delivered"
    shown = await world.api.call("order", "GET", f"/orders/{replacement['id']}")
    assert shown["replacement_for_return_id"] == return_id

    async def delivered_in_trace() -> dict[str, Any] | None:
        trace = await world.api.call("order", "GET", "/traceability/lots/M-0001")
        mine = [c for c in trace["forward"]["consignees"] if c["order_id"] == replacement["id"]]
        return mine[0] if mine and mine[0]["delivered_at"] else None

    consignee = await eventually(delivered_in_trace, message="delivery in the trace")
    assert (consignee["customer_id"], consignee["dispatched"]) == (world.jane, True)
    assert consignee["shipment_id"] == again["shipment_id"]
