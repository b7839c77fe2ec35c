"""PurchaseOrder workflow (`po-{id}`), started by the bridge on `supplier.po.created`.

    pending_approval ─► approved ─► acknowledged ─► shipped ─► received ─► close ─► closed
    (cancelled from the first three ends the run)

The supplier service decides every status; people and the supplier move the PO through
its routes. The run follows it: each turn reads the PO and waits for the `changed`
signal (every other PO event, by the bridge), with two deadlines of its own:

- approved and not acknowledged within `ack_timeout_hours` of the approval: attention
  `ack_overdue` on the PO, once, and the run keeps waiting;
- acknowledged and no ASN by the promised date + 1 day: attention `asn_overdue`, once.

A received PO is closed by the run (`purchase.close`: promised vs actual, shortfall, and
the pair evaluated again). Signals only wake the run, so repeats and any order of arrival
are harmless; an `invalid_transition` answer means someone moved the PO meanwhile and
the run reads it again. A step that fails for good puts its reason on the PO (attention)
and is tried again after a change or a day. Transient failures retry with back-off.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.steps import parse_instant, permanent_problem

with workflow.unsafe.imports_passed_through():
    from services.common.statuses import PurchaseOrderStatus
    from services.common.workflow_names import PurchaseOrderWorkflow
    from workflows.purchase.activities import PurchaseOrderActivities
    from workflows.purchase.models import (
        AttentionIn,
        ChangedSignal,
        PurchaseOrderInput,
        PurchaseOrderState,
        PurchaseOrderStep,
    )

S = PurchaseOrderStatus
ENDED = (S.CLOSED, S.CANCELLED)
RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=30)
)
HISTORY_LIMIT = 2000  # events before the run continues as new
RETRY_FAILED_STEP_AFTER = timedelta(days=1)
ASN_GRACE = timedelta(days=1)  # after the promised date
ACK_OVERDUE = "ack_overdue"
ASN_OVERDUE = "asn_overdue"


@workflow.defn(name=PurchaseOrderWorkflow.NAME)
class PurchaseOrderRun:
    def __init__(self) -> None:
        self.po_id = ""
        self.step = "starting"
        self.dirty = False  # a signal arrived since the PO was last read
        self.ack_escalated = False
        self.asn_escalated = False

    @workflow.signal(name=PurchaseOrderWorkflow.SIGNAL_CHANGED)
    def changed(self, signal: ChangedSignal) -> None:
        self.dirty = True

    @workflow.query(name=PurchaseOrderWorkflow.QUERY_STATUS)
    def status(self) -> str:
        return self.step

    # --- helpers -----------------------------------------------------------------------

    async def _read(self) -> PurchaseOrderState:
        """The PO now; signals after this point wake the next wait."""
        self.dirty = False
        po: PurchaseOrderState = await workflow.execute_local_activity_method(
            PurchaseOrderActivities.get,
            PurchaseOrderStep(po_id=self.po_id),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
        )
        return po

    async def _attention(self, reason: str, detail: str) -> None:
        await workflow.execute_local_activity_method(
            PurchaseOrderActivities.attention,
            AttentionIn(po_id=self.po_id, reason=reason, detail=detail),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
        )

    async def _wait(self, within: timedelta | None = None) -> bool:
        """Wait for a signal; False when `within` passed first."""
        if within is not None and within <= timedelta(0):
            return False
        try:
            await workflow.wait_condition(lambda: self.dirty, timeout=within)
        except TimeoutError:
            return False
        return True

    # --- the process -------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: PurchaseOrderInput) -> str:
        self.po_id = inp.po_id
        self.ack_escalated = inp.ack_escalated
        self.asn_escalated = inp.asn_escalated
        while True:
            self._continue_if_long(inp)
            po = await self._read()
            self.step = po.status
            if S(po.status) in ENDED:
                return po.status
            try:
                await self._advance(po, inp.ack_timeout_hours)
            except (ActivityError, ApplicationError) as exc:
                problem = permanent_problem(exc)
                if problem is None:
                    raise
                if problem.type == "invalid_transition":
                    continue  # someone moved the PO meanwhile: read it again
                reason = problem.type or "step_failed"
                await self._attention(reason, problem.message)
                self.step = f"attention:{reason}"
                await self._wait(RETRY_FAILED_STEP_AFTER)

    async def _advance(self, po: PurchaseOrderState, ack_timeout_hours: float) -> None:
        """The run's one step for the PO's status, or a wait for someone else's."""
        status = S(po.status)
        if po.attention == ACK_OVERDUE:
            self.ack_escalated = True
        if po.attention == ASN_OVERDUE:
            self.asn_escalated = True
        if status is S.APPROVED:
            since = po.approved_at or po.ordered_at
            due = parse_instant(since) + timedelta(hours=ack_timeout_hours) if since else None
            await self._wait_or_escalate(
                "awaiting_acknowledgement",
                ACK_OVERDUE,
                due,
                f"purchase order {po.id} not acknowledged by {po.supplier_id} "
                f"within {ack_timeout_hours:g} hours of its approval",
            )
        elif status is S.ACKNOWLEDGED:
            due = parse_instant(po.promised_date) + ASN_GRACE if po.promised_date else None
            await self._wait_or_escalate(
                "awaiting_shipment",
                ASN_OVERDUE,
                due,
                f"purchase order {po.id}: no shipping notice from {po.supplier_id} by "
                f"a day after the promised date {po.promised_date}",
            )
        elif status is S.RECEIVED:
            self.step = "closing"
            await workflow.execute_local_activity_method(
                PurchaseOrderActivities.close,
                PurchaseOrderStep(po_id=po.id),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RETRY,
            )
        else:  # pending_approval (a coordinator decides), shipped (the receipt is awaited)
            self.step = "awaiting_approval" if status is S.PENDING_APPROVAL else "awaiting_receipt"
            await self._wait()

    async def _wait_or_escalate(
        self, step: str, reason: str, due: datetime | None, detail: str
    ) -> None:
        """Wait for a change; past `due`, put `reason` on the PO once and keep waiting."""
        escalated = self.ack_escalated if reason == ACK_OVERDUE else self.asn_escalated
        if escalated or due is None:
            self.step = f"attention:{reason}" if escalated else step
            await self._wait()
            return
        self.step = step
        if await self._wait(due - workflow.now()):
            return
        await self._attention(reason, detail)
        if reason == ACK_OVERDUE:
            self.ack_escalated = True
        else:
            self.asn_escalated = True

    def _continue_if_long(self, inp: PurchaseOrderInput) -> None:
        info = workflow.info()
        if info.get_current_history_length() > HISTORY_LIMIT or (
            info.is_continue_as_new_suggested()
        ):
            workflow.continue_as_new(
                PurchaseOrderInput(
                    po_id=inp.po_id,
                    ack_timeout_hours=inp.ack_timeout_hours,
                    ack_escalated=self.ack_escalated,
                    asn_escalated=self.asn_escalated,
                )
            )
