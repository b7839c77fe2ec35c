"""Return workflow (`return-{id}`), started by the bridge on `returns.return.requested`.

    policy check ─► authorized (by the policy, or wait for a coordinator) ─► label
    ─► wait for the parcel (its delivery at the warehouse is the receipt signal) and the
    coordinator's receipt, until the receipt deadline (then `expired`, label voided)
    ─► wait for the inspection ─► dispose (restock, scrap, vendor return) ─► refund,
    replacement order, repair or returned to the customer ─► closed.
    keep-it: authorized ─► refund or replacement ─► closed, nothing sent back.

The returns service decides every status; this run only asks it for the next step. Each
turn reads the return, does the one step its status calls for, and waits for a signal
when the next move is someone else's: `changed` (any return event: a coordinator's
decision, receipt, inspection, cancel or retry) and `return_shipment` (the parcel's
status, applied by revision). Signals only wake the run, so duplicates and any order of
arrival are harmless.

A step that fails for good (a non-retryable activity error) marks the return for a
coordinator (`attention`, with the reason) and waits: `POST /returns/{id}/retry` clears
the mark and the step runs again; a cancel ends the run. Transient failures retry with
back-off until they succeed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.steps import parse_instant, permanent_problem

with workflow.unsafe.imports_passed_through():
    from services.common.statuses import (
        RETURN_FINAL,
        SHIPMENT_FINAL,
        Resolution,
        ReturnStatus,
        ShipmentStatus,
    )
    from services.common.workflow_names import ReturnWorkflow
    from workflows.returns.activities import ReturnActivities
    from workflows.returns.models import (
        ArrivedIn,
        AttentionIn,
        ChangedSignal,
        ResolveIn,
        ReturnInput,
        ReturnShipmentSignal,
        ReturnState,
        ReturnStep,
        VoidIn,
    )

S = ReturnStatus
RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=30)
)
HISTORY_LIMIT = 2000  # events before the run continues as new


class _Attention(Exception):
    """The step cannot succeed as things are: a coordinator must look."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@workflow.defn(name=ReturnWorkflow.NAME)
class ReturnRun:
    def __init__(self) -> None:
        self.return_id = ""
        self.step = "starting"
        self.dirty = False  # a signal arrived since the return was last read
        self.parcel: ReturnShipmentSignal | None = None

    # --- signals and query -----------------------------------------------------------

    @workflow.signal(name=ReturnWorkflow.SIGNAL_CHANGED)
    def changed(self, signal: ChangedSignal) -> None:
        self.dirty = True

    @workflow.signal(name=ReturnWorkflow.SIGNAL_RETURN_SHIPMENT)
    def return_shipment(self, signal: ReturnShipmentSignal) -> None:
        if self.parcel is None or signal.revision > self.parcel.revision:
            self.parcel = signal
        self.dirty = True

    @workflow.query(name=ReturnWorkflow.QUERY_STATUS)
    def status(self) -> str:
        return self.step

    # --- helpers -----------------------------------------------------------------------

    async def _act(self, fn: Callable[..., Any], arg: Any) -> Any:
        return await workflow.execute_local_activity_method(
            fn, arg, start_to_close_timeout=timedelta(seconds=30), retry_policy=RETRY
        )

    async def _read(self) -> ReturnState:
        """The return now; signals after this point wake the next wait."""
        self.dirty = False
        state: ReturnState = await self._act(
            ReturnActivities.get, ReturnStep(return_id=self.return_id)
        )
        return state

    async def _wait(self, within: timedelta | None = None) -> bool:
        """Wait for a signal; False when `within` passed first."""
        if within is not None and within <= timedelta(0):
            return False
        try:
            await workflow.wait_condition(lambda: self.dirty, timeout=within)
        except TimeoutError:
            return False
        return True

    def _parcel_status(self, ret: ReturnState) -> str | None:
        parcel = self.parcel
        if parcel is None or parcel.shipment_id != ret.return_shipment_id:
            return None
        return parcel.status

    # --- the process -------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: ReturnInput) -> str:
        self.return_id = inp.return_id
        if inp.shipment_id is not None and inp.shipment_status is not None:
            self.parcel = ReturnShipmentSignal(
                event_id="carried-over",
                shipment_id=inp.shipment_id,
                status=inp.shipment_status,
                revision=inp.shipment_revision,
                occurred_at=inp.shipment_at,
            )
        while True:
            self._continue_if_long(inp)
            ret = await self._read()
            self.step = ret.status
            if S(ret.status) in RETURN_FINAL:
                await self._void_if_unused(ret)
                return ret.status
            try:
                if ret.attention is not None:
                    self.step = "needs_attention"
                    if not await self._wait(self._until_deadline(ret)):
                        await self._expire(ret)
                    continue
                await self._advance(ret)
            except (ActivityError, ApplicationError, _Attention) as exc:
                if isinstance(exc, _Attention):
                    reason, detail = exc.reason, exc.detail
                else:
                    problem = permanent_problem(exc)
                    if problem is None:
                        raise
                    if problem.type == "invalid_transition":
                        continue  # someone moved the return meanwhile: read it again
                    reason, detail = problem.type or "step_failed", problem.message
                await self._act(
                    ReturnActivities.attention,
                    AttentionIn(return_id=self.return_id, reason=reason, detail=detail),
                )

    def _until_deadline(self, ret: ReturnState) -> timedelta | None:
        """Time left to the receipt deadline while the goods are awaited, else None."""
        if S(ret.status) not in (S.AUTHORIZED, S.AWAITING_RECEIPT) or ret.arrived_at:
            return None
        if ret.receipt_deadline is None:
            return None
        return parse_instant(ret.receipt_deadline) - workflow.now()

    async def _advance(self, ret: ReturnState) -> None:
        """The one step the return's status calls for, or a wait for someone else's."""
        status = S(ret.status)
        rid = ReturnStep(return_id=ret.id)
        if status is S.REQUESTED:
            self.step = "policy_check"
            decision = await self._act(ReturnActivities.policy_check, rid)
            if decision.decision == "review" and not self.dirty:
                self.step = "awaiting_decision"
                await self._wait()
        elif status is S.AUTHORIZED and ret.keep_it:
            await self._resolve(ret)
        elif status is S.AUTHORIZED:
            self.step = "label"
            await self._act(ReturnActivities.label, ret)
        elif status is S.AWAITING_RECEIPT:
            await self._await_goods(ret)
        elif status is S.RECEIVED:
            self.step = "awaiting_inspection"
            await self._wait()
        elif status is S.INSPECTED:
            await self._act(ReturnActivities.dispose, rid)
            await self._resolve(ret)
        elif status is S.RESOLVED:
            if not ret.keep_it:
                await self._act(ReturnActivities.dispose, rid)
            await self._act(ReturnActivities.close, rid)

    async def _await_goods(self, ret: ReturnState) -> None:
        """The parcel's arrival is recorded; until the goods arrive, the receipt deadline
        runs (then the return expires); after, the coordinator's receipt is awaited."""
        parcel = self._parcel_status(ret)
        if parcel == ShipmentStatus.DELIVERED and ret.arrived_at is None:
            assert self.parcel is not None
            at = self.parcel.occurred_at or workflow.now().isoformat()
            await self._act(ReturnActivities.arrived, ArrivedIn(return_id=ret.id, at=at))
            return
        if ret.arrived_at is not None:
            self.step = "awaiting_receipt_count"
            await self._wait()
            return
        if (
            parcel is not None
            and parcel != ShipmentStatus.DELIVERED
            and (ShipmentStatus(parcel) in SHIPMENT_FINAL)
        ):
            raise _Attention(
                f"return_parcel_{parcel}",
                f"the return parcel ended {parcel} before reaching the warehouse: receive "
                "the goods by hand or cancel the return (it expires at its deadline)",
            )
        self.step = "awaiting_goods"
        if not await self._wait(self._until_deadline(ret)):
            await self._expire(ret)

    async def _expire(self, ret: ReturnState) -> None:
        try:
            await self._act(ReturnActivities.expire, ReturnStep(return_id=ret.id))
        except (ActivityError, ApplicationError) as exc:
            problem = permanent_problem(exc)
            if problem is None or problem.type != "already_received":
                raise
            # The parcel arrived as the deadline passed: the next turn goes on with it.

    async def _resolve(self, ret: ReturnState) -> None:
        """Refund, replacement order, or repair / returned to the customer."""
        resolution = Resolution(ret.resolution or ret.requested_resolution or Resolution.REFUND)
        self.step = f"resolving:{resolution}"
        if resolution is Resolution.REFUND:
            await self._act(ReturnActivities.refund, ReturnStep(return_id=ret.id))
        elif resolution is Resolution.REPLACEMENT:
            await self._act(ReturnActivities.replace, ret)
        else:
            await self._act(
                ReturnActivities.resolve, ResolveIn(return_id=ret.id, resolution=resolution)
            )

    async def _void_if_unused(self, ret: ReturnState) -> None:
        """A return that ended (cancelled, expired) with a label not used yet: void it."""
        if ret.return_shipment_id is None or S(ret.status) not in (S.CANCELLED, S.EXPIRED):
            return
        if ret.arrived_at is not None:
            return
        with contextlib.suppress(ActivityError, ApplicationError):
            await self._act(
                ReturnActivities.void_label,
                VoidIn(
                    return_id=ret.id,
                    shipment_id=ret.return_shipment_id,
                    reason=f"return {ret.id} {ret.status}",
                ),
            )

    def _continue_if_long(self, inp: ReturnInput) -> None:
        info = workflow.info()
        if info.get_current_history_length() > HISTORY_LIMIT or (
            info.is_continue_as_new_suggested()
        ):
            parcel = self.parcel
            workflow.continue_as_new(
                ReturnInput(
                    return_id=inp.return_id,
                    shipment_id=parcel.shipment_id if parcel else None,
                    shipment_status=parcel.status if parcel else None,
                    shipment_revision=parcel.revision if parcel else -1,
                    shipment_at=parcel.occurred_at if parcel else None,
                )
            )
