"""Purchase orders by HTTP: a signal becomes a PO (approved within the auto-approve
limit, else waiting for a coordinator), the lifecycle with duplicate requests and bad
input answered as problems, one supplier never sees or acts on another's POs, a shortfall
is ordered again at close, and a late PO stays on order without a second signal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from services.common import events as ev
from services.common.bus import Bus
from services.supplier.models import PurchaseOrder
from tests.customer.conftest import stream_events
from tests.harness import RunningService, Stack, eventually
from tests.supplier.helpers import (
    COORD,
    SERVICE,
    create_supplier,
    inventory,
    key,
    publish_confirmed,
    publish_inventory,
    put_policy,
    settled,
    signals_of,
    supplier,
    tea_setup,
)

ACME = supplier("ACME")


@pytest.fixture
async def svc(stack: Stack) -> RunningService:
    return await stack.start("supplier")


def _today(days: int = 0) -> str:
    return (datetime.now(UTC).date() + timedelta(days=days)).isoformat()


async def signalled_po(svc: RunningService, bus: Bus, limit: str = "1000") -> dict[str, Any]:
    """The hand-checked TEA case (test_signals): a signal of 36 at 2.00 = 72.00."""
    await tea_setup(svc)
    await put_policy(
        svc, "TEA", "WH-A", service_level=0.95, horizon_days=10, auto_approve_limit=limit
    )
    await publish_confirmed(bus, "o-1", ("TEA", "WH-A", 50))
    await publish_inventory(bus, inventory("TEA", "WH-A", on_hand=100, reserved=50))
    await settled(svc, 2)
    r = await svc.http.get("/purchase-orders", params={"supplier_id": "ACME"}, headers=COORD)
    [po] = r.json()["items"]
    return dict(po)


async def post(svc: RunningService, path: str, headers: dict[str, str], **body: Any) -> Any:
    return await svc.http.post(path, json=body or None, headers=headers)


async def test_the_lifecycle_with_repeats_and_bad_input(svc: RunningService, bus: Bus) -> None:
    po = await signalled_po(svc, bus, limit="50")  # 72.00 is over: a coordinator approves
    base = f"/purchase-orders/{po['id']}"
    [signal] = await signals_of(svc, "ACME")
    assert (signal["status"], po["signal_id"]) == ("ordered", signal["id"])
    assert (po["status"], po["quantity"], po["unit_cost"], po["ack_timeout_hours"]) == (
        "pending_approval",
        36,
        "2.00",
        48,
    )
    early = await post(svc, f"{base}/acknowledge", ACME, quantity=36, promised_date=_today(3))
    assert (early.status_code, early.json()["code"]) == (409, "invalid_transition")
    assert (await post(svc, f"{base}/approve", ACME)).status_code == 403
    approved = await post(svc, f"{base}/approve", COORD)
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["approved_by"]) == (
        "approved",
        "coordinator:carla",
    )
    again = await post(svc, f"{base}/approve", COORD)
    assert (again.status_code, again.json()["code"]) == (409, "invalid_transition")

    for body, code in (
        ({"quantity": 37, "promised_date": _today(3)}, "quantity_exceeds_ordered"),
        ({"quantity": 30, "promised_date": _today(-1)}, "promised_date_in_past"),
        ({"quantity": 0, "promised_date": _today(3)}, "validation_error"),
        ({"quantity": "x"}, "validation_error"),
    ):
        bad = await post(svc, f"{base}/acknowledge", ACME, **body)
        assert (bad.status_code, bad.json()["code"]) == (422, code), bad.text
    ack = await post(svc, f"{base}/acknowledge", ACME, quantity=30, promised_date=_today(3))
    assert ack.status_code == 200, ack.text
    assert (ack.json()["quantity_acknowledged"], ack.json()["status"]) == (30, "acknowledged")

    asn_url = f"{base}/asn"
    expected = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    no_key = await post(
        svc, asn_url, ACME, lots=[{"lot": "T1", "quantity": 30}], expected_at=expected
    )
    assert (no_key.status_code, no_key.json()["code"]) == (400, "idempotency_key_missing")
    for lots, code in (
        ([{"lot": "T1", "quantity": 31}], "asn_exceeds_acknowledged"),
        ([{"lot": "T1", "quantity": 1}, {"lot": "T1", "quantity": 1}], "duplicate_lot"),
        ([{"lot": "T1", "quantity": 1, "expiry": _today(-1)}], "expiry_in_past"),
    ):
        bad = await post(svc, asn_url, {**ACME, **key()}, lots=lots, expected_at=expected)
        assert (bad.status_code, bad.json()["code"]) == (422, code), bad.text
    headers = {**ACME, "Idempotency-Key": "asn-1"}
    lots = [{"lot": "T1", "quantity": 20, "expiry": _today(300)}, {"lot": "T2", "quantity": 10}]
    shipped = await post(svc, asn_url, headers, lots=lots, expected_at=expected)
    assert shipped.status_code == 200, shipped.text
    assert shipped.json()["status"] == "shipped"
    replay = await post(svc, asn_url, headers, lots=lots, expected_at=expected)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == shipped.json()

    receipts = f"{base}/receipts"
    assert (await post(svc, receipts, {**ACME, **key()}, lots=lots)).status_code == 403
    over = await post(svc, receipts, {**COORD, **key()}, lots=[{"lot": "T1", "quantity": 37}])
    assert (over.status_code, over.json()["code"]) == (422, "quantity_exceeds_ordered")
    first_headers = {**COORD, "Idempotency-Key": "rc-1"}
    first = await post(svc, receipts, first_headers, lots=[{"lot": "T1", "quantity": 20}])
    assert first.status_code == 201, first.text
    assert (first.json()["status"], first.json()["quantity_received"]) == ("shipped", 20)
    repeat = await post(svc, receipts, first_headers, lots=[{"lot": "T1", "quantity": 20}])
    assert (repeat.status_code, repeat.headers["Idempotent-Replayed"]) == (201, "true")
    last = await post(svc, receipts, {**COORD, **key()}, lots=[{"lot": "T2", "quantity": 10}])
    assert (last.json()["status"], last.json()["quantity_received"]) == ("received", 30)
    assert len(last.json()["receipts"]) == 2
    late = await post(svc, receipts, {**COORD, **key()}, lots=[{"lot": "T3", "quantity": 1}])
    assert (late.status_code, late.json()["code"]) == (409, "invalid_transition")
    cancel = await post(svc, f"{base}/cancel", COORD, reason="too late")
    assert (cancel.status_code, cancel.json()["code"]) == (409, "invalid_transition")

    assert (
        await post(svc, f"/internal/purchase-orders/{po['id']}/close", COORD)
    ).status_code == 403
    closed = await post(svc, f"/internal/purchase-orders/{po['id']}/close", SERVICE)
    assert closed.status_code == 200, closed.text
    body = closed.json()
    assert (body["status"], body["shortfall"], body["on_time"]) == ("closed", 6, True)
    closed_again = await post(svc, f"/internal/purchase-orders/{po['id']}/close", SERVICE)
    assert closed_again.json()["revision"] == body["revision"]
    assert [h["status"] for h in body["history"]] == [
        "pending_approval",
        "approved",
        "acknowledged",
        "shipped",
        "shipped",
        "received",
        "closed",
    ]

    types = await eventually(
        lambda: _types(bus, 8), message="the PO's seven events on the SUPPLIER stream"
    )
    assert types == [
        "supplier.po.created.v1",
        "supplier.po.approved.v1",
        "supplier.po.acknowledged.v1",
        "supplier.po.shipped.v1",
        "supplier.po.received.v1",
        "supplier.po.received.v1",
        "supplier.po.closed.v1",
        # The position (no receipt booked here: 50 + nothing on order) still needs stock.
        "supplier.po.created.v1",
    ]
    unknown = await svc.http.get("/purchase-orders/nope", headers=COORD)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")


async def _types(bus: Bus, count: int) -> list[str] | None:
    """The PO events in stream order (one entity's events are published in commit order)."""
    found = [
        e.type for e in await stream_events(bus, "SUPPLIER") if e.type.startswith("supplier.po.")
    ]
    return found if len(found) >= count else None


async def test_a_supplier_sees_and_acts_on_its_own_pos_only(svc: RunningService, bus: Bus) -> None:
    po = await signalled_po(svc, bus)  # within the limit: approved at once
    assert (po["status"], po["approved_by"]) == ("approved", "policy")
    await create_supplier(svc, "OTHER")
    other = supplier("OTHER")
    base = f"/purchase-orders/{po['id']}"
    for r in (
        await svc.http.get(base, headers=other),
        await post(svc, f"{base}/acknowledge", other, quantity=1, promised_date=_today(1)),
        await post(
            svc,
            f"{base}/asn",
            {**other, **key()},
            lots=[{"lot": "T1", "quantity": 1}],
            expected_at=datetime.now(UTC).isoformat(),
        ),
    ):
        assert (r.status_code, r.json()["code"]) == (404, "not_found")
    listed = await svc.http.get("/purchase-orders", headers=other)
    assert listed.json()["items"] == []
    peek = await svc.http.get("/purchase-orders", params={"supplier_id": "ACME"}, headers=other)
    assert peek.json()["items"] == []
    mine = await svc.http.get("/purchase-orders", headers=ACME)
    assert [p["id"] for p in mine.json()["items"]] == [po["id"]]
    assert (await svc.http.get(base, headers=ACME)).status_code == 200

    # The workflow's attention mark, repeat-safe, visible to coordinators by filter.
    for _ in range(2):
        r = await post(
            svc,
            f"/internal/purchase-orders/{po['id']}/attention",
            SERVICE,
            reason="ack_overdue",
            detail="no acknowledgement in 48 h",
        )
        assert r.status_code == 200, r.text
    flagged = await svc.http.get("/purchase-orders", params={"attention": "true"}, headers=COORD)
    [item] = flagged.json()["items"]
    assert (item["attention"], item["history"][-1]["note"]) == (
        "ack_overdue",
        "needs attention: ack_overdue: no acknowledgement in 48 h",
    )
    assert len(item["history"]) == 2
    ack = await post(svc, f"{base}/acknowledge", ACME, quantity=36, promised_date=_today(1))
    assert ack.json()["attention"] is None


async def test_a_short_po_is_ordered_again_at_close(svc: RunningService, bus: Bus) -> None:
    """Acknowledged 24 of 36, 24 received: at close the position (on hand 100 - 50
    reserved + the 24 received, on order until the order service reports them booked =
    74) is below the reorder point 81: a new signal and PO of 12. When the booking
    arrives (on hand 124, the 24 no longer on order, the new 12 are) nothing more."""
    po = await signalled_po(svc, bus)
    base = f"/purchase-orders/{po['id']}"
    await post(svc, f"{base}/acknowledge", ACME, quantity=24, promised_date=_today(2))
    expected = datetime.now(UTC).isoformat()
    lots = [{"lot": "T1", "quantity": 24}]
    shipped = await post(svc, f"{base}/asn", {**ACME, **key()}, lots=lots, expected_at=expected)
    assert shipped.status_code == 200, shipped.text
    received = await post(svc, f"{base}/receipts", {**COORD, **key()}, lots=lots, complete=False)
    assert received.json()["status"] == "received"  # all that was acknowledged
    closed = await post(svc, f"/internal/purchase-orders/{po['id']}/close", SERVICE)
    assert closed.json()["shortfall"] == 12
    second, first = await signals_of(svc, "ACME")
    assert first["id"] == po["signal_id"]
    assert (second["status"], second["on_order"], second["position"], second["quantity"]) == (
        "ordered",
        24,
        74,
        12,
    )
    pos = await svc.http.get("/purchase-orders", params={"status": "approved"}, headers=COORD)
    [again] = pos.json()["items"]
    assert (again["signal_id"], again["quantity"]) == (second["id"], 12)
    booked = inventory("TEA", "WH-A", on_hand=124, reserved=50).model_copy(
        update={"receipts": [ev.BookedReceipt(purchase_reference=po["id"], quantity=24)]}
    )
    await publish_inventory(bus, booked)
    await settled(svc, 3)
    assert len(await signals_of(svc, "ACME")) == 2
    [row] = (await svc.http.get("/suppliers/ACME/inventory", headers=COORD)).json()["items"]
    assert (row["on_hand"], row["on_order"], row["position"]) == (124, 12, 86)


async def test_goods_received_but_not_yet_booked_stay_on_order(
    svc: RunningService, bus: Bus
) -> None:
    """The whole 36 received and the PO closed before the order service books them: the
    position still counts them (on order), so the close orders nothing a second time;
    the booking moves them to on hand."""
    po = await signalled_po(svc, bus)
    base = f"/purchase-orders/{po['id']}"
    lots = [{"lot": "T1", "quantity": 20}, {"lot": "T2", "quantity": 16}]
    received = await post(svc, f"{base}/receipts", {**COORD, **key()}, lots=lots, complete=True)
    assert received.json()["status"] == "received", received.text
    closed = await post(svc, f"/internal/purchase-orders/{po['id']}/close", SERVICE)
    assert closed.json()["status"] == "closed" and closed.json()["shortfall"] == 0
    assert len(await signals_of(svc, "ACME")) == 1
    [row] = (await svc.http.get("/suppliers/ACME/inventory", headers=COORD)).json()["items"]
    assert (row["on_hand"], row["on_order"], row["position"]) == (100, 36, 86)
    # The order service books each lot in its own change.
    for on_hand, quantity in ((120, 20), (136, 16)):
        event = inventory("TEA", "WH-A", on_hand=on_hand, reserved=50).model_copy(
            update={"receipts": [ev.BookedReceipt(purchase_reference=po["id"], quantity=quantity)]}
        )
        await publish_inventory(bus, event)
    await settled(svc, 4)
    assert len(await signals_of(svc, "ACME")) == 1
    [row] = (await svc.http.get("/suppliers/ACME/inventory", headers=COORD)).json()["items"]
    assert (row["on_hand"], row["on_order"], row["position"]) == (136, 0, 86)


async def test_a_late_po_stays_on_order_and_never_signals_twice(
    svc: RunningService, bus: Bus
) -> None:
    po = await signalled_po(svc, bus)
    base = f"/purchase-orders/{po['id']}"
    ack = await post(svc, f"{base}/acknowledge", ACME, quantity=36, promised_date=_today(1))
    assert ack.status_code == 200
    # Time passes: the promised date and need-by are behind us, nothing has arrived.
    async with svc.runtime.db.transaction() as session:
        await session.execute(
            sa.update(PurchaseOrder)
            .where(PurchaseOrder.id == po["id"])
            .values(promised_date=datetime.now(UTC).date() - timedelta(days=5))
        )
    await publish_inventory(bus, inventory("TEA", "WH-A", on_hand=95, reserved=50))
    await publish_inventory(bus, inventory("TEA", "WH-A", on_hand=90, reserved=45))
    await settled(svc, 4)
    [signal] = await signals_of(svc, "ACME")
    assert signal["id"] == po["signal_id"]
    inv = (await svc.http.get("/suppliers/ACME/inventory", headers=COORD)).json()
    [row] = inv["items"]
    assert (row["on_order"], row["position"]) == (36, 81)
