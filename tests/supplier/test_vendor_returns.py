"""Vendor returns from real RETURNS events: a `return_to_vendor` lot goes back to the
supplier whose PO receipt brought it in, credited at that PO's unit cost, once however
often the event arrives; a lot no receipt knows is kept with no supplier and a note."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from services.common import events as ev
from services.common.bus import Bus
from services.supplier.models import VendorReturn
from tests.customer.conftest import publish, republish, stream_events
from tests.harness import RunningService, Stack, eventually
from tests.supplier.helpers import (
    COORD,
    OPS,
    inventory,
    key,
    publish_inventory,
    put_policy,
    settled,
    supplier,
    tea_setup,
)

CONSUMER = "supplier-vendor-returns"


@pytest.fixture
async def svc(stack: Stack) -> RunningService:
    return await stack.start("supplier")


def disposed(return_id: str, *lots: tuple[str, int, str]) -> ev.ReturnDisposed:
    return ev.ReturnDisposed(
        return_id=return_id,
        order_id="o-1",
        customer_id="c-1",
        lots=[
            ev.DisposedLot(
                line_no=1, sku="TEA", warehouse_id="WH-A", lot=lot, quantity=q, disposition=d
            )
            for lot, q, d in lots
        ],
    )


async def caught_up(svc: RunningService, processed: int) -> None:
    async def check() -> bool:
        status = (await svc.http.get("/ops/messaging", headers=OPS)).json()
        consumer = next(c for c in status["consumers"] if c["name"] == CONSUMER)
        return (
            status["inbox"].get(CONSUMER, 0) == processed
            and consumer.get("pending") == 0
            and consumer.get("ack_pending") == 0
        )

    await eventually(check, timeout=60, message=f"{processed} return events processed")


async def received_lot(svc: RunningService, bus: Bus) -> dict[str, Any]:
    """ACME's TEA PO (36 at 2.00, approved), lot T1 received."""
    await tea_setup(svc)
    await put_policy(svc, "TEA", "WH-A", service_level=0.95, min_qty=50, auto_approve_limit="1000")
    await publish_inventory(bus, inventory("TEA", "WH-A", on_hand=10))
    await settled(svc, 1)
    [po] = (await svc.http.get("/purchase-orders", headers=COORD)).json()["items"]
    r = await svc.http.post(
        f"/purchase-orders/{po['id']}/receipts",
        json={"lots": [{"lot": "T1", "quantity": 12}]},
        headers={**COORD, **key()},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_a_returned_lot_is_credited_to_its_supplier_once(
    svc: RunningService, bus: Bus
) -> None:
    po = await received_lot(svc, bus)
    envelope = await publish(
        bus,
        disposed(
            "r-1",
            ("T1", 2, "return_to_vendor"),
            ("T1", 1, "restock"),
            ("ZZ", 4, "return_to_vendor"),
        ),
        "r-1",
    )
    await caught_up(svc, 1)
    await republish(bus, envelope)
    await publish(bus, disposed("r-2", ("T1", 1, "scrap")), "r-2")
    await caught_up(svc, 2)

    r = await svc.http.get("/suppliers/ACME/vendor-returns", headers=supplier("ACME"))
    assert r.status_code == 200, r.text
    [credited] = r.json()["items"]
    assert (
        credited["po_id"],
        credited["return_id"],
        credited["lot"],
        credited["quantity"],
        credited["credit_amount"],
        credited["currency"],
    ) == (po["id"], "r-1", "T1", 2, "4.00", "EUR")
    async with svc.runtime.db.reading() as session:
        unknown = (
            await session.execute(sa.select(VendorReturn).where(VendorReturn.supplier_id.is_(None)))
        ).scalar_one()
    assert (unknown.lot, unknown.quantity, unknown.credit_amount) == ("ZZ", 4, None)
    assert unknown.note is not None and "no purchase-order receipt knows lot ZZ" in unknown.note

    [event] = await eventually(
        lambda: stream_events(bus, "SUPPLIER", "supplier.vendor_return.credited"),
        message="VendorReturnCredited",
    )
    assert (event.data["supplier_id"], event.data["credit_amount"], event.subject) == (
        "ACME",
        "4.00",
        credited["id"],
    )
    card = (await svc.http.get("/suppliers/ACME/scorecard", headers=COORD)).json()
    assert (card["vendor_returns"], card["vendor_returned_units"]) == (1, 2)
