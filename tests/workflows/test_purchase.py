"""The PurchaseOrder workflow on Temporal's time-skipping test server: its deadlines.

The PO lives in the test (activities with the workflow's activity names standing in for
the supplier service's routes, the SDK's way of testing a workflow alone); the real
routes are exercised end to end in `tests/e2e/test_replenishment.py`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from services.common.temporal import interceptors
from services.common.workflow_names import PurchaseOrderWorkflow
from tests.harness import BIN, eventually
from workflows.purchase.models import (
    AttentionIn,
    ChangedSignal,
    PurchaseOrderInput,
    PurchaseOrderState,
    PurchaseOrderStep,
)
from workflows.purchase.workflow import PurchaseOrderRun


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server"),
        data_converter=pydantic_data_converter,
        interceptors=interceptors(),
    )
    try:
        yield env
    finally:
        await env.shutdown()


class PurchaseOrderDesk:
    """One PO as the supplier service would hold it, behind the activities' names."""

    def __init__(self, po: PurchaseOrderState) -> None:
        self.po = po
        self.attentions: list[AttentionIn] = []
        self.close_fails_with: str | None = None

    def activities(self) -> list[object]:
        return [self.get, self.attention, self.close]

    @activity.defn(name="purchase.get")
    async def get(self, req: PurchaseOrderStep) -> PurchaseOrderState:
        return self.po.model_copy()

    @activity.defn(name="purchase.attention")
    async def attention(self, req: AttentionIn) -> PurchaseOrderState:
        self.attentions.append(req)
        self.po.attention = req.reason
        return self.po.model_copy()

    @activity.defn(name="purchase.close")
    async def close(self, req: PurchaseOrderStep) -> PurchaseOrderState:
        if self.close_fails_with is not None:
            raise ApplicationError("refused", type=self.close_fails_with, non_retryable=True)
        if self.po.status == "received":
            self.po.status = "closed"
        return self.po.model_copy()


async def start(
    env: WorkflowEnvironment, desk: PurchaseOrderDesk, ack_timeout_hours: float = 48
) -> tuple[Worker, WorkflowHandle[PurchaseOrderRun, str]]:
    queue = f"po-{uuid.uuid4().hex[:8]}"
    worker = Worker(
        env.client,
        task_queue=queue,
        workflows=[PurchaseOrderRun],
        activities=desk.activities(),  # type: ignore[arg-type]
    )
    handle = await env.client.start_workflow(
        PurchaseOrderRun.run,
        PurchaseOrderInput(po_id=desk.po.id, ack_timeout_hours=ack_timeout_hours),
        id=PurchaseOrderWorkflow.id(desk.po.id),
        task_queue=queue,
    )
    return worker, handle


async def step_is(handle: WorkflowHandle[PurchaseOrderRun, str], wanted: str) -> None:
    async def reached() -> bool:
        return await handle.query(PurchaseOrderWorkflow.QUERY_STATUS) == wanted

    await eventually(reached, 10, 0.05, f"workflow step {wanted}")


async def change(handle: WorkflowHandle[PurchaseOrderRun, str], desk: PurchaseOrderDesk) -> None:
    desk.po.revision += 1
    event = ChangedSignal(event_id=f"e-{desk.po.revision}")
    await handle.signal(PurchaseOrderWorkflow.SIGNAL_CHANGED, event)


async def test_an_unacknowledged_po_asks_a_coordinator_once_then_runs_to_closed(
    env: WorkflowEnvironment,
) -> None:
    """Approved and not acknowledged within ack_timeout_hours: attention ack_overdue once;
    the run keeps waiting and follows the PO through ASN and receipt to closed."""
    now = await env.get_current_time()
    desk = PurchaseOrderDesk(
        PurchaseOrderState(
            id="PO-1", supplier_id="ACME", status="approved", approved_at=now.isoformat()
        )
    )
    worker, handle = await start(env, desk, ack_timeout_hours=48)
    async with worker:
        await step_is(handle, "awaiting_acknowledgement")
        await env.sleep(timedelta(hours=47))
        await step_is(handle, "awaiting_acknowledgement")
        assert desk.attentions == [], "nothing is overdue an hour before the deadline"

        await env.sleep(timedelta(hours=2))
        await step_is(handle, "attention:ack_overdue")
        [attention] = desk.attentions
        assert attention.reason == "ack_overdue"
        assert "48 hours" in attention.detail

        await env.sleep(timedelta(days=10))
        assert len(desk.attentions) == 1, "escalated once, not again"

        desk.po.status = "acknowledged"
        desk.po.promised_date = (now + timedelta(days=20)).date().isoformat()
        await change(handle, desk)
        await step_is(handle, "awaiting_shipment")
        desk.po.status = "shipped"
        await change(handle, desk)
        await step_is(handle, "awaiting_receipt")
        desk.po.status = "received"
        await change(handle, desk)
        assert await handle.result() == "closed"
    assert len(desk.attentions) == 1


async def test_no_asn_a_day_after_the_promised_date_asks_a_coordinator(
    env: WorkflowEnvironment,
) -> None:
    """Acknowledged and no ASN by promised date + 1 day: attention asn_overdue, once; a
    cancel then ends the run."""
    now = await env.get_current_time()
    promised = (now + timedelta(days=3)).date()
    desk = PurchaseOrderDesk(
        PurchaseOrderState(
            id="PO-2",
            supplier_id="ACME",
            status="acknowledged",
            approved_at=now.isoformat(),
            promised_date=promised.isoformat(),
        )
    )
    worker, handle = await start(env, desk)
    async with worker:
        await step_is(handle, "awaiting_shipment")
        await env.sleep(timedelta(days=3))
        assert desk.attentions == []
        await env.sleep(timedelta(days=2))
        await step_is(handle, "attention:asn_overdue")
        assert [a.reason for a in desk.attentions] == ["asn_overdue"]
        desk.po.status = "cancelled"
        await change(handle, desk)
        assert await handle.result() == "cancelled"


async def test_a_close_refused_for_good_puts_the_reason_on_the_po(
    env: WorkflowEnvironment,
) -> None:
    """A step failing for good is not a failed run: the reason goes on the PO (visible to
    coordinators) and the step is tried again after a change."""
    desk = PurchaseOrderDesk(PurchaseOrderState(id="PO-3", supplier_id="ACME", status="received"))
    desk.close_fails_with = "close_refused"
    worker, handle = await start(env, desk)
    async with worker:
        await step_is(handle, "attention:close_refused")
        assert [a.reason for a in desk.attentions] == ["close_refused"]
        desk.close_fails_with = None
        await change(handle, desk)
        assert await handle.result() == "closed"
