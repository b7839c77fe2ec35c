"""Issue 8's "done when": orders draw stock down, the supplier is signalled on its NATS
subject and its webhook, reads its items' stock, acknowledges and ships, a coordinator
receives, the backordered order is delivered, and the scorecard shows the closed PO.

Every service, the worker and the bridge run for real on real NATS, Temporal and
databases; the supplier's webhook endpoint is a real local HTTP server that checks the
signature the way a supplier would (`services.supplier.webhooks.verify_signature`).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import nats
import pytest
from temporalio.client import WorkflowExecutionStatus

from cli.webhook_receiver import WebhookReceiver as Receiver
from services.common.envelope import Envelope
from services.common.workflow_names import PurchaseOrderWorkflow
from services.supplier.signals import supplier_subject
from services.supplier.webhooks import verify_signature
from tests.e2e.conftest import HISTORIES, World
from tests.harness import auth, eventually

pytestmark = pytest.mark.settings(
    shipment={"simulator_enabled": False},
    supplier={"webhook_poll_seconds": 0.2},
    workflows={"backorder_timeout_seconds": 3600, "credit_hold_timeout_seconds": 3600},
)

DELIVER = ("IR", "PU", "AR", "OD", "DL")
SUPPLIER = "DESCALE-CO"
SKU = "DESCALER-500"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver(failures=0).start()
    yield r
    await r.stop()


async def supplier_call(
    world: World, method: str, path: str, json: Any = None, key: str | None = None
) -> Any:
    """A call as the supplier's own user (a `supplier` token for SUPPLIER)."""
    headers = auth("supplier", supplier_id=SUPPLIER)
    if key:
        headers["Idempotency-Key"] = key
    http = world.stack.services["supplier"].http
    r = await http.request(method, path, json=json, headers=headers)
    assert r.status_code in (200, 201), r.text
    return r.json()


@pytest.mark.timeout(240)
async def test_a_backorder_is_replenished_by_the_supplier_and_delivered(
    world: World, receiver: Receiver
) -> None:
    api = world.api
    # Master data: a SKU nobody has stock of, sold by one supplier whose webhook points
    # at the receiver, reviewed continuously in WH-SOUTH with min 10 / max 30.
    await api.call(
        "order",
        "POST",
        "/catalogue/skus",
        {"code": SKU, "name": "Descaler 500 ml", "unit_price": "9.90", "weight_grams": 550},
        key=f"sku-{SKU}",
    )
    created = await api.call(
        "supplier",
        "POST",
        "/suppliers",
        {"id": SUPPLIER, "name": "Descale & Co", "webhook_url": receiver.url},
        key=f"supplier-{SUPPLIER}",
    )
    secret = created["webhook_secret"]
    await api.call(
        "supplier",
        "POST",
        f"/suppliers/{SUPPLIER}/items",
        {"sku": SKU, "unit_cost": "3.00", "lead_time_days": 4, "supplier_part_number": "DS-5"},
        key=f"item-{SKU}",
    )
    await api.call(
        "supplier",
        "PUT",
        f"/replenishment-policies/{SKU}/WH-SOUTH",
        {
            "review_mode": "continuous",
            "min_qty": 10,
            "max_qty": 30,
            "auto_approve_limit": "1000",
            "ack_timeout_hours": 24,
        },
    )

    # The supplier follows its own subject (a JetStream consumer: nothing is missed
    # while it is away).
    nc = await nats.connect(world.stack.nats_url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(supplier_subject(SUPPLIER), ordered_consumer=True)

        # An order the warehouse cannot serve: backordered, which draws the position down.
        order_id = await world.place(world.acme, (SKU, 6))
        await world.wait_status(order_id, "backordered")

        msg = await sub.next_msg(timeout=60)
        signal = Envelope.model_validate_json(msg.data)
    finally:
        await nc.close()
    assert signal.type == "supplier.signal.raised.v1"
    data = signal.data
    assert (data["supplier_id"], data["sku"], data["warehouse_id"]) == (SUPPLIER, SKU, "WH-SOUTH")
    assert data["backordered"] == 6 and data["position"] == -6
    assert data["quantity"] == 36  # up to the max of 30 from a position of -6

    # ... and on its webhook, signed with its secret.
    async def hooked() -> bool:
        return bool(receiver.requests)

    await eventually(hooked, 30, 0.1, "the webhook delivery")
    [hook] = receiver.requests
    assert verify_signature(secret, hook.headers["waybill-signature"], hook.body, time.time())
    assert not verify_signature(
        "not-the-secret", hook.headers["waybill-signature"], hook.body, time.time()
    )
    assert Envelope.model_validate_json(hook.body).id == signal.id

    # The supplier reads its items' stock: the backorder, and what is on order.
    inventory = await supplier_call(world, "GET", f"/suppliers/{SUPPLIER}/inventory")
    [row] = [r for r in inventory["items"] if (r["sku"], r["warehouse_id"]) == (SKU, "WH-SOUTH")]
    # The PO made from the signal in the same transaction already counts as on order.
    assert (row["backordered"], row["on_order"], row["position"]) == (6, 36, 30), row

    # Within the auto-approve limit, the signal became an approved PO; its workflow runs.
    async def po_of_signal() -> dict[str, Any] | None:
        page = await supplier_call(world, "GET", f"/purchase-orders?supplier_id={SUPPLIER}")
        found = [p for p in page["items"] if p["signal_id"] == data["signal_id"]]
        return found[0] if found else None

    po = await eventually(po_of_signal, 30, 0.1, "the PO")
    assert (po["status"], po["quantity"], po["ack_timeout_hours"]) == ("approved", 36, 24)
    handle = world.temporal.get_workflow_handle(PurchaseOrderWorkflow.id(po["id"]))

    async def workflow_step(wanted: str) -> None:
        async def reached() -> bool:
            try:
                return await handle.query(PurchaseOrderWorkflow.QUERY_STATUS) == wanted
            except Exception:
                return False

        await eventually(reached, 30, 0.1, f"PO workflow at {wanted}")

    await workflow_step("awaiting_acknowledgement")

    # The supplier acknowledges and sends its ASN.
    promised = date.today() + timedelta(days=3)
    acked = await supplier_call(
        world,
        "POST",
        f"/purchase-orders/{po['id']}/acknowledge",
        {"quantity": 36, "promised_date": promised.isoformat()},
    )
    assert acked["status"] == "acknowledged"
    await workflow_step("awaiting_shipment")
    lot = f"DS-{uuid.uuid4().hex[:6]}"
    expiry = (date.today() + timedelta(days=365)).isoformat()
    shipped = await supplier_call(
        world,
        "POST",
        f"/purchase-orders/{po['id']}/asn",
        {
            "lots": [{"lot": lot, "expiry": expiry, "quantity": 36}],
            "expected_at": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
        },
        key=f"asn-{po['id']}",
    )
    assert shipped["status"] == "shipped"
    await workflow_step("awaiting_receipt")

    # A coordinator receives the goods: the ledger books them, the backorder is filled.
    await api.call(
        "supplier",
        "POST",
        f"/purchase-orders/{po['id']}/receipts",
        {"lots": [{"lot": lot, "expiry": expiry, "quantity": 36}], "complete": True},
        key=f"receipt-{po['id']}",
    )
    assert await handle.result() == "closed"
    if os.environ.get("WAYBILL_RECORD_HISTORIES"):  # for tests/workflows/test_replay.py
        history = await handle.fetch_history()
        (HISTORIES / "po_acknowledged_shipped_received.json").write_text(history.to_json())
    closed = await api.call("supplier", "GET", f"/purchase-orders/{po['id']}")
    assert (closed["status"], closed["quantity_received"], closed["shortfall"]) == (
        "closed",
        36,
        0,
    )
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.COMPLETED

    # The backordered order moves on: shipped from WH-SOUTH out of the supplier's lot.
    [shipment] = await world.wait_shipments(order_id, 1)
    assert shipment["warehouse_id"] == "WH-SOUTH"
    assert {(x["sku"], x["lot"]) for x in shipment["lots"]} == {(SKU, lot)}
    await world.scan(shipment["tracking_number"], *DELIVER)
    final = await world.wait_status(order_id, "completed")
    assert "backordered" in [t["kind"] for t in final["timeline"]]

    # The scorecard counts the closed PO.
    card = await supplier_call(world, "GET", f"/suppliers/{SUPPLIER}/scorecard")
    assert (card["pos_closed"], card["fill_rate"]) == (1, 1.0)
