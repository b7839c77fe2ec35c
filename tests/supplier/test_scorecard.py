"""The supplier scorecard over closed POs, and the observed lead time that replaces the
item's declared one in the plan once a supplier x SKU has three closed POs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from services.common.bus import Bus
from services.supplier.models import PurchaseOrder, VendorReturn
from tests.harness import RunningService, Stack
from tests.supplier.helpers import (
    COORD,
    create_supplier,
    inventory,
    publish_confirmed,
    publish_inventory,
    settled,
    signals_of,
    supplier,
    tea_setup,
)

ORDERED = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
async def svc(stack: Stack) -> RunningService:
    return await stack.start("supplier")


async def closed_pos(
    svc: RunningService, *rows: tuple[int, int, float, float, date | None]
) -> None:
    """Closed TEA POs of ACME: (ordered, received, ack hours, lead days, promised)."""
    async with svc.runtime.db.transaction() as session:
        for n, (ordered, received, ack_hours, lead, promised) in enumerate(rows):
            received_at = ORDERED + timedelta(days=lead)
            session.add(
                PurchaseOrder(
                    id=f"po-{n}",
                    supplier_id="ACME",
                    sku="TEA",
                    warehouse_id="WH-A",
                    quantity=ordered,
                    unit_cost=Decimal("2.00"),
                    currency="EUR",
                    status="closed",
                    quantity_received=received,
                    need_by=ORDERED.date() + timedelta(days=5),
                    ordered_at=ORDERED,
                    acknowledged_at=ORDERED + timedelta(hours=ack_hours) if ack_hours else None,
                    promised_date=promised,
                    received_at=received_at,
                    closed_at=received_at,
                    shortfall=ordered - received,
                    on_time=received_at.date() <= (promised or ORDERED.date() + timedelta(days=5)),
                    created_at=ORDERED,
                    updated_at=received_at,
                )
            )


async def test_the_scorecard_over_closed_pos(svc: RunningService) -> None:
    await create_supplier(svc, "ACME")
    await create_supplier(svc, "OTHER")
    empty = await svc.http.get("/suppliers/ACME/scorecard", headers=COORD)
    assert empty.status_code == 200, empty.text
    assert (empty.json()["pos_closed"], empty.json()["on_time_rate"]) == (0, None)
    # Lead 4, 6, 8 days; acknowledged after 2 and 4 hours (one never); due day 5, 7, 5.
    await closed_pos(
        svc,
        (10, 10, 2, 4, None),
        (10, 8, 4, 6, ORDERED.date() + timedelta(days=7)),
        (20, 20, 0, 8, None),
    )
    async with svc.runtime.db.transaction() as session:
        session.add(
            VendorReturn(
                id="vr-1",
                supplier_id="ACME",
                po_id="po-0",
                return_id="r-1",
                sku="TEA",
                warehouse_id="WH-A",
                lot="T1",
                quantity=3,
                unit_cost=Decimal("2.00"),
                credit_amount=Decimal("6.00"),
                currency="EUR",
                created_at=ORDERED,
            )
        )
    card = (await svc.http.get("/suppliers/ACME/scorecard", headers=supplier("ACME"))).json()
    assert card == {
        "supplier_id": "ACME",
        "pos_closed": 3,
        "pos_open": 0,
        "on_time_rate": pytest.approx(2 / 3),
        "fill_rate": pytest.approx(38 / 40),
        "mean_ack_hours": pytest.approx(3.0),
        "lead_time_mean_days": pytest.approx(6.0),
        "lead_time_sd_days": pytest.approx(2.0),
        "vendor_returns": 1,
        "vendor_returned_units": 3,
    }
    hidden = await svc.http.get("/suppliers/ACME/scorecard", headers=supplier("OTHER"))
    assert (hidden.status_code, hidden.json()["code"]) == (404, "not_found")


async def test_three_closed_pos_replace_the_declared_lead_time(
    svc: RunningService, bus: Bus
) -> None:
    """The TEA case of test_signals with lead 6 days, sd 2 observed instead of 5 and 0:
    ss = 1.6449 * sqrt(6 * 15^2 + 5^2 * 2^2) = 62.64 -> 63; rop = 30 + 62.64 -> 93."""
    await tea_setup(svc)
    await closed_pos(svc, (10, 10, 2, 4, None), (10, 10, 2, 6, None))
    await publish_confirmed(bus, "o-1", ("TEA", "WH-A", 50))
    await publish_inventory(bus, inventory("TEA", "WH-A", on_hand=100, reserved=50))
    await settled(svc, 2)
    [declared] = await signals_of(svc, "ACME")  # two closed POs: still the declared 5 days
    assert (declared["lead_time_days"], declared["safety_stock"]) == (5, 56)

    await closed_pos_more(svc)
    # The first signal's PO goes; the pair is evaluated on the next change.
    r = await svc.http.get("/purchase-orders", params={"status": "pending_approval"}, headers=COORD)
    [open_po] = r.json()["items"]
    cancel = await svc.http.post(
        f"/purchase-orders/{open_po['id']}/cancel", json={"reason": "re-plan"}, headers=COORD
    )
    assert cancel.status_code == 200, cancel.text
    await publish_inventory(bus, inventory("TEA", "WH-A", on_hand=100, reserved=51))
    await settled(svc, 3)
    observed, _ = await signals_of(svc, "ACME")
    assert (observed["lead_time_days"], observed["safety_stock"], observed["reorder_point"]) == (
        6,
        63,
        93,
    )


async def closed_pos_more(svc: RunningService) -> None:
    """A third closed PO (lead 8 days): lead times 4, 6, 8 -> mean 6, sd 2."""
    async with svc.runtime.db.transaction() as session:
        received_at = ORDERED + timedelta(days=8)
        session.add(
            PurchaseOrder(
                id="po-third",
                supplier_id="ACME",
                sku="TEA",
                warehouse_id="WH-A",
                quantity=10,
                unit_cost=Decimal("2.00"),
                currency="EUR",
                status="closed",
                quantity_received=10,
                ordered_at=ORDERED,
                received_at=received_at,
                closed_at=received_at,
                shortfall=0,
                on_time=False,
                created_at=ORDERED,
                updated_at=received_at,
            )
        )
