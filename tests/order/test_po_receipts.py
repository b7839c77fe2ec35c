"""Purchase-order receipts: the `order-po-receipts` consumer books each lot of a
`PurchaseOrderReceived` with the supplier and PO as purchase reference (so the lot traces
back to them), fills the SKU's backorders (an order waiting for stock gets its
allocation and `OrderBackorderFilled`), a redelivery changes nothing, and a lot the ledger
refuses for good is dead-lettered."""

from __future__ import annotations

from typing import Any

from services.common import events as ev
from services.common.bus import Bus
from tests.customer.conftest import publish, republish
from tests.harness import RunningService, Stack, auth, eventually
from tests.order.test_stock import (
    ledger_matches_balances,
    lot_of,
    movements,
    reserve,
    stocked,
    stream_events,
)


def received(
    po_id: str, receipt_id: str, *lots: tuple[str, int], warehouse_id: str = "WH-A"
) -> ev.PurchaseOrderReceived:
    return ev.PurchaseOrderReceived(
        po_id=po_id,
        supplier_id="ACME",
        receipt_id=receipt_id,
        sku="BOLT",
        warehouse_id=warehouse_id,
        lots=[ev.PurchaseOrderLot(lot=lot, quantity=q) for lot, q in lots],
        received_at="2026-01-09T10:00:00+00:00",
        complete=True,
    )


async def booked(order: RunningService, count: int) -> list[dict[str, Any]]:
    async def found() -> list[dict[str, Any]] | None:
        rows = [m for m in await movements(order, kind="receipt") if m["supplier_id"]]
        return rows if len(rows) >= count else None

    result: list[dict[str, Any]] = await eventually(found, message=f"{count} PO receipts")
    return result


async def test_a_po_receipt_fills_the_backorder_and_traces_back_to_the_po(
    stack: Stack, bus: Bus
) -> None:
    order = await stack.start("order")
    await stocked(order, "BOLT", {("WH-A", "B1"): 2})
    await reserve(order, "o-9", ("BOLT", 5))  # 2 reserved, 3 backordered: no stock
    envelope = await publish(bus, received("po-1", "rc-1", ("P7", 4)), "po-1")
    [movement] = await booked(order, 1)
    assert (movement["lot"], movement["quantity"], movement["reference"]) == (
        "P7",
        4,
        "po:po-1:rc-1",
    )
    assert (movement["supplier_id"], movement["purchase_reference"]) == ("ACME", "po-1")
    p7 = await lot_of(order, "BOLT", "WH-A", "P7")
    assert (p7["on_hand"], p7["reserved"], p7["available"]) == (4, 3, 1)

    async def filled() -> list[dict[str, Any]] | None:
        events = await stream_events(bus, "order.order.backorder_filled")
        return events or None

    [event] = await eventually(filled, message="OrderBackorderFilled")
    assert event["data"]["order_id"] == "o-9"
    assert [(a["lot"], a["quantity"]) for a in event["data"]["allocations"]] == [("P7", 3)]

    trace = await order.http.get("/traceability/lots/P7", headers=auth("ops"))
    assert trace.status_code == 200, trace.text
    [receipt] = trace.json()["backward"]["receipts"]
    assert (receipt["supplier_id"], receipt["purchase_reference"], receipt["reference"]) == (
        "ACME",
        "po-1",
        "po:po-1:rc-1",
    )

    # The same event again, then a second receipt on the same PO: only that one is booked.
    await republish(bus, envelope)
    await publish(bus, received("po-1", "rc-2", ("P8", 1)), "po-1")
    assert sorted(m["reference"] for m in await booked(order, 2)) == [
        "po:po-1:rc-1",
        "po:po-1:rc-2",
    ]
    assert (await lot_of(order, "BOLT", "WH-A", "P7"))["on_hand"] == 4
    await ledger_matches_balances(order)


async def test_a_lot_the_ledger_refuses_is_dead_lettered(stack: Stack, bus: Bus) -> None:
    order = await stack.start("order")
    await stocked(order, "BOLT", {("WH-A", "B1"): 1})
    await publish(bus, received("po-2", "rc-1", ("P1", 1), warehouse_id="WH-NOWHERE"), "po-2")

    async def listed() -> list[dict[str, Any]] | None:
        r = await order.http.get("/ops/deadletters", headers=auth("ops"))
        items: list[dict[str, Any]] = r.json()["items"]
        mine = [i for i in items if i["consumer"] == "order-po-receipts"]
        return mine or None

    [item] = await eventually(listed, message="dead-lettered")
    assert item["error"].startswith("PermanentError: PO po-2 receipt rc-1 lot P1")
    assert [m for m in await movements(order, kind="receipt") if m["supplier_id"]] == []
