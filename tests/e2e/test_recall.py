"""Recalls through the whole system: the bridge starts `recall-{id}` on `RecallOpened`,
the workflow quarantines, traces, notices and follows, and closes at the target or when
a coordinator closes it."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from services.common import events as ev
from services.common.envelope import Envelope
from services.common.tables import outbox
from services.common.workflow_names import RecallWorkflow, ReturnWorkflow
from tests.e2e.conftest import HISTORIES, World
from tests.e2e.test_order_to_delivery import DELIVER
from tests.harness import Stack, auth, eventually

# Scans come from the tests alone, so a shipment stays undispatched until a test moves it.
pytestmark = pytest.mark.settings(shipment={"simulator_enabled": False})


@pytest.fixture
def quick_reports(stack: Stack) -> None:
    """The running recall recomputes its report every second (before the worker starts)."""
    stack.workflow_overrides["recall_report_interval_seconds"] = 1.0
    stack.workflow_overrides["recall_page_size"] = 2  # several trace pages per lot


async def open_recall(world: World, sku: str, lots: list[str], **changes: Any) -> dict[str, Any]:
    body = {
        "sku": sku,
        "lots": lots,
        "reason": "glaze contains lead",
        "instructions": "Stop using it; send it back with the prepaid label",
        "hazard_class": "II",
        "depth": "A",
        **changes,
    }
    recall: dict[str, Any] = await world.api.call(
        "returns", "POST", "/recalls", body, key=str(uuid.uuid4())
    )
    return recall


async def wait_recall(world: World, recall_id: str, status: str) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        r: dict[str, Any] = await world.api.call("returns", "GET", f"/recalls/{recall_id}")
        return r if r["status"] == status else None

    result: dict[str, Any] = await eventually(reached, 60, 0.2, f"recall {status}")
    return result


async def workflow_done(world: World, recall_id: str, record_as: str | None = None) -> None:
    """Wait until the recall's workflow completed; with WAYBILL_RECORD_HISTORIES=1 and
    `record_as`, keep its history for tests/workflows/test_replay.py."""
    handle = world.temporal.get_workflow_handle(RecallWorkflow.id(recall_id))

    async def completed() -> bool:
        return (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED

    await eventually(completed, 60, 0.2, "recall workflow completed")
    if record_as and os.environ.get("WAYBILL_RECORD_HISTORIES"):
        history = await handle.fetch_history()
        (HISTORIES / f"recall_{record_as}.json").write_text(history.to_json())


async def test_a_lot_nobody_received_closes_at_once_by_target(
    quick_reports: None, world: World
) -> None:
    recall = await open_recall(world, "MUG-CERAMIC", ["NEVER-RECEIVED"])
    closed = await wait_recall(world, recall["id"], "closed")
    assert closed["close_reason"].startswith("effectiveness target met")
    assert closed["fanned_out_at"] is not None
    await workflow_done(world, recall["id"], record_as="closed_by_target")


async def test_a_coordinator_closes_a_recall_without_target(
    quick_reports: None, world: World
) -> None:
    recall = await open_recall(world, "MUG-CERAMIC", ["NEVER-RECEIVED"], depth="E")
    rid = recall["id"]
    following = await wait_recall(world, rid, "in_progress")
    assert following["effectiveness_target"] is None

    async def reported() -> bool:
        r = await world.api.call("returns", "GET", f"/recalls/{rid}")
        return r["report_at"] is not None

    await eventually(reported, 30, 0.2, "a scheduled report")
    await world.api.call("returns", "POST", f"/recalls/{rid}/close", {"reason": "verified"})
    await workflow_done(world, rid, record_as="closed_by_coordinator")  # the bridge signalled
    closed = await world.api.call("returns", "GET", f"/recalls/{rid}")
    assert closed["closed_by"] == "e2e" and closed["close_reason"] == "verified"


async def test_notice_sent_fills_notified_date_and_method(world: World) -> None:
    """The customer service's `NoticeSent` for a recall notice reaches the consignee row."""
    returns = world.stack.services["returns"]
    recall = await open_recall(world, "MUG-CERAMIC", ["NEVER-RECEIVED"], depth="E")
    rid = recall["id"]
    await wait_recall(world, rid, "in_progress")
    r = await returns.http.post(
        f"/internal/recalls/{rid}/trace-pages",
        json={
            "lot": "NEVER-RECEIVED",
            "consignees": [
                {
                    "customer_id": world.jane,
                    "order_id": "o-1",
                    "shipment_id": "s-1",
                    "warehouse_id": "WH-NORTH",
                    "sku": "MUG-CERAMIC",
                    "line_no": 1,
                    "quantity": 1,
                }
            ],
        },
        headers=auth("service"),
    )
    assert r.status_code == 200, r.text
    [notice_event] = await _staged_notices(world)
    sent = ev.NoticeSent(
        notice_id=str(uuid.uuid4()),
        customer_id=world.jane,
        kind="recall_notice",
        source_event_id=notice_event,
        reference=rid,
        to="jane@example.com",
        language="en",
        sent_at="2026-12-01T09:30:00+00:00",
    )
    envelope = Envelope.new(
        source="/waybill/customer", type=sent.TYPE, subject=world.jane, data=sent.model_dump()
    )
    for _ in range(2):  # a redelivery changes nothing
        await returns.runtime.bus.publish(
            envelope.nats_subject, envelope.model_dump_json().encode(), envelope.id
        )

    async def notified() -> list[Any] | None:
        page = await world.api.call("returns", "GET", f"/recalls/{rid}/consignees")
        rows = [c for c in page["items"] if c["notified_at"]]
        return rows or None

    [row] = await eventually(notified, 30, 0.2, "notified consignee")
    assert row["notice_method"] == "email"
    assert row["notified_at"].startswith("2026-12-01T09:30")
    report = await world.api.call("returns", "GET", f"/recalls/{rid}/report")
    assert report["notified"] == 1 and report["notified_by_method"] == {"email": 1}


async def _staged_notices(world: World) -> list[str]:
    returns = world.stack.services["returns"]
    async with returns.runtime.db.reading() as session:
        rows = await session.execute(
            sa.select(outbox.c.event_id).where(outbox.c.type == ev.RecallNoticeIssued.TYPE)
        )
        return [str(r) for r in rows.scalars()]


async def _has_traceability(world: World) -> bool:
    doc = (await world.stack.services["order"].http.get("/openapi.json")).json()
    return "/traceability/lots/{lot}" in doc["paths"]


async def test_a_lot_shipped_to_many_customers_is_recalled_from_each_exactly_once(
    quick_reports: None, world: World
) -> None:
    """Needs the order service's lot status and traceability routes (part "ledger")."""
    if not await _has_traceability(world):
        pytest.skip("the order service has no traceability route in this tree yet")
    customers = [world.acme, world.jane, world.globex]
    delivered = []
    for customer in customers:
        order_id = await world.place(customer, ("MUG-CERAMIC", 2))
        [shipment] = await world.wait_shipments(order_id, 1)
        await world.scan(shipment["tracking_number"], *DELIVER)
        await world.wait_status(order_id, "completed")
        delivered.append(order_id)
    pending = await world.place(world.acme, ("MUG-CERAMIC", 1))  # not dispatched yet
    [stopped] = await world.wait_shipments(pending, 1)

    recall = await open_recall(world, "MUG-CERAMIC", ["M-0001"])
    rid = recall["id"]
    await wait_recall(world, rid, "in_progress")
    lot = await world.api.call("order", "GET", "/stock/lots/MUG-CERAMIC/M-0001")
    assert lot["status"] == "recalled"
    page = await world.api.call("returns", "GET", f"/recalls/{rid}/consignees")
    rows = page["items"]
    assert sorted(r["order_id"] for r in rows) == sorted(delivered)  # the pending one stopped
    assert {r["quantity_shipped"] for r in rows} == {2}
    assert len(await _staged_notices(world)) == 3
    held = await world.api.call("shipment", "GET", f"/shipments/{stopped['shipment_id']}")
    assert held["status"] == "cancelled"  # stopped before dispatch: no consignee
    # A recalled lot is never picked again: M-0001 is the only mug lot.
    later = await world.place(world.jane, ("MUG-CERAMIC", 1))
    await world.wait_status(later, "backordered")
    report = await world.api.call("returns", "GET", f"/recalls/{rid}/report")
    assert report["consignees"] == 3 and report["quantities"]["shipped"] == 6
    assert report["quantities"]["outstanding"] == 6 and report["effectiveness"] == "0.0"
    for r in rows:
        await world.api.call(
            "returns",
            "POST",
            f"/recalls/{rid}/consignees/{r['customer_id']}/response",
            {"action": "destroyed", "quantity_on_hand": 2},
        )
    closed = await wait_recall(world, rid, "closed")
    assert closed["close_reason"].startswith("effectiveness target met")
    await workflow_done(world, rid)


@pytest.fixture
def short_history(stack: Stack) -> None:
    """A recall run continues as new past 30 events (before the bridge starts)."""
    stack.workflow_overrides["recall_history_limit"] = 30


async def test_a_long_following_recall_continues_as_new_and_still_closes(
    quick_reports: None, short_history: None, world: World
) -> None:
    """Far below Temporal's history limit: the run continues as new, keeping its phase."""
    recall = await open_recall(world, "MUG-CERAMIC", ["NEVER-RECEIVED"], depth="E")
    rid = recall["id"]
    handle = world.temporal.get_workflow_handle(RecallWorkflow.id(rid))
    await wait_recall(world, rid, "in_progress")
    first = (await handle.describe()).run_id

    async def continued() -> bool:
        return (await handle.describe()).run_id != first

    await eventually(continued, 60, 0.5, "a new run of the recall")
    await world.api.call("returns", "POST", f"/recalls/{rid}/close", {"reason": "verified"})
    await workflow_done(world, rid)
    events = [e async for e in handle.fetch_history_events()]
    assert len(events) < 60


async def test_a_returning_consignee_gets_a_label_and_a_destroying_one_none(
    world: World,
) -> None:
    """A `returning` answer starts the recall return's Return workflow, which buys the
    label for what the consignee still has and follows the parcel to the warehouse; a
    `destroyed` answer cancels the other return without any workflow or label."""
    if not await _has_traceability(world):
        pytest.skip("the order service has no traceability route in this tree yet")
    orders = {}
    for customer in (world.acme, world.jane):
        order_id = await world.place(customer, ("MUG-CERAMIC", 2))
        [shipment] = await world.wait_shipments(order_id, 1)
        await world.scan(shipment["tracking_number"], *DELIVER)
        await world.wait_status(order_id, "completed")
        orders[customer] = order_id
    recall = await open_recall(world, "MUG-CERAMIC", ["M-0001"])
    rid = recall["id"]
    await wait_recall(world, rid, "in_progress")
    page = await world.api.call("returns", "GET", f"/recalls/{rid}/consignees")
    returns = {row["customer_id"]: row["return_id"] for row in page["items"]}
    assert set(returns) == {world.acme, world.jane}
    answers = [(world.acme, "returning", 1), (world.jane, "destroyed", 2)]
    for customer, action, on_hand in answers:
        await world.api.call(
            "returns",
            "POST",
            f"/recalls/{rid}/consignees/{customer}/response",
            {"action": action, "quantity_on_hand": on_hand},
        )

    coming = returns[world.acme]
    shipment = await world.return_shipment(coming)
    assert [line["quantity"] for line in shipment["lines"]] == [1]  # only what is left
    labelled = await world.api.call("returns", "GET", f"/returns/{coming}")
    assert labelled["status"] == "awaiting_receipt" and labelled["kind"] == "recall"
    assert labelled["tracking_number"] == shipment["tracking_number"]
    destroyed = await world.api.call("returns", "GET", f"/returns/{returns[world.jane]}")
    assert destroyed["status"] == "cancelled" and destroyed["tracking_number"] is None
    with pytest.raises(RPCError):
        await world.temporal.get_workflow_handle(ReturnWorkflow.id(returns[world.jane])).describe()

    await world.scan_return(coming, "IR", "PU", "OD", "DL")

    async def arrived() -> dict[str, Any] | None:
        body: dict[str, Any] = await world.api.call("returns", "GET", f"/returns/{coming}")
        return body if body["arrived_at"] else None

    ret = await eventually(arrived, 45, 0.1, "the recall parcel at the warehouse")
    [lot] = ret["lots"]
    await world.api.call(
        "returns",
        "POST",
        f"/returns/{coming}/receipt",
        {"lots": [{"line_no": lot["line_no"], "lot": lot["lot"], "good": 1, "damaged": 0}]},
    )
    await world.api.call(
        "returns",
        "POST",
        f"/returns/{coming}/inspection",
        {
            "lots": [
                {
                    "line_no": lot["line_no"],
                    "lot": lot["lot"],
                    "disposition": "scrap",
                    "reason": "recalled: lead glaze",
                }
            ]
        },
    )
    handle = world.temporal.get_workflow_handle(ReturnWorkflow.id(coming))
    assert await handle.result() == "closed"
    report = await world.api.call("returns", "GET", f"/recalls/{rid}/report")
    assert report["quantities"]["returned"] == 1
    # Jane's 2 destroyed there, Acme's 1 scrapped on arrival; Acme's other unit was gone
    # before the notice (1 on hand), so nothing is outstanding.
    assert report["quantities"]["corrected_or_destroyed"] == 3
    assert report["quantities"]["outstanding"] == 0
    assert report["effectiveness"] == "100.0"
