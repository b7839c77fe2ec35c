"""Order to delivery (`order-{id}`).

credit check ─► (hold: wait for release, or cancel on timeout) ─► reserve (FEFO)
─► (backordered: wait for stock, then ship partial or cancel on timeout)
─► one shipment per warehouse ─► wait for every shipment to end (exceptions become
coordinator notes; returned-to-sender re-enters stock) ─► completed.

`cancel` is an update: refused once everything is dispatched; otherwise it cancels
undispatched shipments, puts their stock back and releases reservations.

A step that fails for good (a non-retryable activity error), or shipments that all end
without a delivery outside the workflow (cancelled by a coordinator, expired at the
carrier), do not fail the run: the compensation runs (each completed step's undo, in
reverse), the order is marked `needs_attention` with a coordinator task, and the run
waits for `retry` (start again from the credit check) or `cancel`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from functools import partial
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from services.common.statuses import (
        ORDER_FINAL,
        SHIPMENT_FINAL,
        SHIPMENT_NOT_DISPATCHED,
        ShipmentStatus,
    )
    from services.common.workflow_names import OrderWorkflow
    from workflows.order.activities import OrderActivities
    from workflows.order.models import (
        Alloc,
        AttentionIn,
        CancelIn,
        CancelOrderIn,
        CancelOut,
        CompleteIn,
        CreditCheckIn,
        LiveStatus,
        NoteIn,
        OrderInput,
        OrderOutcome,
        OrderSnapshot,
        Reservation,
        ShipmentIn,
        ShipmentRef,
        ShipmentSignal,
        Signal,
        WarehouseStep,
    )

# Behaviour changes, each behind `workflow.patched` so recorded runs replay unchanged.
PATCH_REVISION = "shipment-status-by-revision"  # follow revisions, not occurred_at
PATCH_ATTENTION = "attention-on-failure"  # a step failed for good: compensate, attention
PATCH_COMPENSATION = "compensation-stack"  # cancel runs the undo list in reverse
PATCH_ENDED_OUTSIDE = "shipments-ended-outside"  # cancelled/expired: stock back, outcome
PATCH_PICK_SHORT = "backordered-at-pick"  # an expired lot at pick: wait, reserve, re-issue

RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=30)
)


class _Attention(Exception):
    """The run cannot go on by itself: compensate, then ask a coordinator."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _problem(exc: BaseException) -> ApplicationError | None:
    """The service's answer behind a failed activity (its `type` is the problem code).
    A local activity's failure arrives as the `ApplicationError` itself; an activity's
    as an `ActivityError` caused by it."""
    if isinstance(exc, ApplicationError):
        return exc
    if isinstance(exc, ActivityError) and isinstance(exc.cause, ApplicationError):
        return exc.cause
    return None


def _problem_code(exc: BaseException) -> str | None:
    problem = _problem(exc)
    return None if problem is None else problem.type


@workflow.defn(name=OrderWorkflow.NAME)
class OrderToDelivery:
    def __init__(self) -> None:
        self.order_id = ""
        self.step = "starting"
        self.seen: set[str] = set()
        self.credit_released = False
        self.backorder_filled = False
        self.backorder_fills = 0  # every `backorder_filled`, for waits that start mid-step
        self.shipments: dict[str, ShipmentRef] = {}
        self.early: dict[str, ShipmentSignal] = {}
        self.exceptions: list[str] = []
        self.tasks: list[NoteIn] = []
        self.flagged: set[str] = set()
        self.cancel_reason: str | None = None
        self.cancel_out: CancelOut | None = None
        # Compensation: each completed step pushes its undo; a failure runs them newest first.
        self.undo: list[Callable[[], Awaitable[None]]] = []
        self.stock_back: set[str] = set()  # warehouses whose pick is back on the shelf
        self.cancelled_here: set[str] = set()  # shipments this run cancelled itself
        self.attempt = 0
        self.retries = 0
        self.attentions = 0
        self.attention: AttentionIn | None = None
        self.past: list[ShipmentRef] = []  # shipments of attempts given up

    # --- activities --------------------------------------------------------------

    async def _act(self, fn: Callable[..., Any], arg: Any) -> Any:
        return await workflow.execute_local_activity_method(
            fn, arg, start_to_close_timeout=timedelta(seconds=30), retry_policy=RETRY
        )

    async def _wait(self, done: Callable[[], bool], seconds: float) -> bool:
        """Wait for `done` or a cancel request; False when the time ran out first."""
        try:
            await workflow.wait_condition(
                lambda: done() or self.cancel_reason is not None, timeout=timedelta(seconds=seconds)
            )
        except TimeoutError:
            return False
        return True

    # --- the process -------------------------------------------------------------

    @workflow.run
    async def run(self, inp: OrderInput) -> OrderOutcome:
        self.order_id = inp.order_id
        workflow.patched(PATCH_REVISION)  # decided once, before any signal is applied
        order = await self._act(OrderActivities.get_order, inp.order_id)
        if order.status in ORDER_FINAL:
            self.step = order.status
            return OrderOutcome(order_id=inp.order_id, status=order.status)
        while True:
            try:
                return await self._deliver(inp, order)
            except _Attention as stop:
                reason, detail = stop.reason, stop.detail
            except (ActivityError, ApplicationError) as exc:
                problem = _problem(exc)
                if problem is None or not problem.non_retryable:
                    raise
                if not workflow.patched(PATCH_ATTENTION):
                    raise
                reason, detail = problem.type or "step_failed", problem.message
            outcome = await self._attend(reason, detail)
            if outcome is not None:
                return outcome

    async def _deliver(self, inp: OrderInput, order: OrderSnapshot) -> OrderOutcome:
        """One attempt from the credit check to completion; raises what stops it for good."""
        self.step = "credit_check"
        try:
            credit = await self._act(
                OrderActivities.credit_check,
                CreditCheckIn(order_id=inp.order_id, customer_id=inp.customer_id, amount=inp.total),
            )
        except (ActivityError, ApplicationError) as exc:
            if _problem_code(exc) == "not_found":
                return await self._cancel(f"unknown customer {inp.customer_id}")
            raise
        if credit.decision != "approved":
            self.step = "credit_hold"
            await self._act(
                OrderActivities.credit_hold,
                NoteIn(
                    order_id=inp.order_id, kind="credit_hold", detail=credit.reason or "credit hold"
                ),
            )
            if not await self._wait(
                lambda: self.credit_released, inp.policy.credit_hold_timeout_seconds
            ):
                return await self._cancel("credit hold was not released in time")
        if self.cancel_reason is not None:
            return await self._cancel(self.cancel_reason)

        self.step = "reserving"
        reservation: Reservation = await self._act(OrderActivities.reserve, inp.order_id)
        if self.cancel_reason is not None:
            return await self._cancel(self.cancel_reason)
        if reservation.status != "reserved":
            self.step = "backordered"
            filled = await self._wait(
                lambda: self.backorder_filled, inp.policy.backorder_timeout_seconds
            )
            if self.cancel_reason is not None:
                return await self._cancel(self.cancel_reason)
            if filled:
                reservation = await self._act(OrderActivities.reserve, inp.order_id)
            elif reservation.allocations and inp.policy.ship_partial_on_backorder_timeout:
                reservation = await self._act(OrderActivities.drop_backorders, inp.order_id)
            else:
                return await self._cancel("backorder was not filled in time")

        self.step = "shipping"
        await self._ship_all(inp, order.ship_to, reservation.allocations)
        if self.cancel_reason is not None:
            outcome = await self._cancel(self.cancel_reason)
            if outcome.status == "cancelled":
                return outcome

        self.step = "in_transit"
        while not self._all_ended():
            await workflow.wait_condition(
                lambda: (
                    self._all_ended()
                    or bool(self.tasks)
                    or (self.cancel_reason is not None and self.cancel_out is None)
                )
            )
            await self._open_tasks()
            if self.cancel_reason is not None and self.cancel_out is None:
                outcome = await self._cancel(self.cancel_reason)
                if outcome.status == "cancelled":
                    return outcome
        return await self._complete(inp)

    async def _complete(self, inp: OrderInput) -> OrderOutcome:
        """Every shipment ended: goods that came back go on the shelf, then the outcome."""
        for ref in self.shipments.values():
            if ref.status == ShipmentStatus.RETURNED_TO_SENDER:
                await self._act(
                    OrderActivities.restock,
                    WarehouseStep(order_id=inp.order_id, warehouse_id=ref.warehouse_id),
                )
        statuses = [s.status for s in self.shipments.values()]
        delivered = statuses.count(ShipmentStatus.DELIVERED)
        ended = self._ended_outside()
        if ended and workflow.patched(PATCH_ENDED_OUTSIDE):
            # The goods never reached the customer, so they are back on the shelf too.
            for ref in ended:
                await self._unissue(ref.warehouse_id)
            reason = f"shipment_{ended[0].status}"
            what = "; ".join(f"shipment {r.tracking_number} {r.status}" for r in ended)
            if not delivered and self.cancel_out is None:
                raise _Attention(reason, f"{what} before delivery: reship (retry) or cancel")
            await self._act(
                OrderActivities.note, NoteIn(order_id=inp.order_id, kind=reason, detail=what)
            )
        if self.cancel_out is not None:
            outcome = "partially_cancelled"
        elif delivered == len(statuses):
            outcome = "delivered"
        elif delivered:
            outcome = "partially_delivered"
        else:
            outcome = "returned"
        await self._act(
            OrderActivities.complete_order,
            CompleteIn(
                order_id=inp.order_id,
                outcome=outcome,
                shipments={s.shipment_id: s.status for s in self._every_shipment()},
            ),
        )
        self.step = "completed"
        return OrderOutcome(order_id=inp.order_id, status="completed", outcome=outcome)

    async def _ship_all(
        self, inp: OrderInput, ship_to: dict[str, Any], allocations: list[Alloc]
    ) -> None:
        """Pick and ship each warehouse's allocations, concurrently. A pick that came up
        short (an expired lot became a backorder) waits for the backorder to be filled,
        reserves again and ships what is then reserved."""
        warehouses = sorted({a.warehouse_id for a in allocations})
        while warehouses:
            fills = self.backorder_fills
            results = await asyncio.gather(
                *(self._ship(inp, ship_to, wh) for wh in warehouses), return_exceptions=True
            )
            short = False
            for result in results:
                if result is None:
                    continue
                if _problem_code(result) == "backordered_at_pick" and workflow.patched(
                    PATCH_PICK_SHORT
                ):
                    short = True
                else:
                    raise result
            if not short:
                return
            warehouses = await self._refill(inp, fills)

    async def _refill(self, inp: OrderInput, fills: int) -> list[str]:
        """Wait for a backorder left at pick, reserve again; the warehouses left to ship."""
        while True:
            self.step = "backordered"
            if not await self._wait(
                partial(self._filled_since, fills), inp.policy.backorder_timeout_seconds
            ):
                raise _Attention(
                    "backorder_timeout", "a lot expired at pick and no stock replaced it in time"
                )
            if self.cancel_reason is not None:
                return []
            fills = self.backorder_fills
            reservation: Reservation = await self._act(OrderActivities.reserve, inp.order_id)
            if reservation.status == "reserved":
                break
        self.step = "shipping"
        shipped = {ref.warehouse_id for ref in self.shipments.values()}
        return sorted({a.warehouse_id for a in reservation.allocations} - shipped)

    async def _ship(self, inp: OrderInput, ship_to: dict[str, Any], warehouse_id: str) -> None:
        lots = await self._act(
            OrderActivities.issue, WarehouseStep(order_id=inp.order_id, warehouse_id=warehouse_id)
        )
        self.undo.append(partial(self._put_back, warehouse_id))
        ref: ShipmentRef = await self._act(
            OrderActivities.create_shipment,
            ShipmentIn(
                order_id=inp.order_id,
                customer_id=inp.customer_id,
                warehouse_id=warehouse_id,
                ship_to=ship_to,
                lots=lots,
                attempt=self.attempt,
            ),
        )
        self.shipments[ref.shipment_id] = ref
        self.undo.append(partial(self._withdraw, ref))
        early = self.early.pop(ref.shipment_id, None)
        if early is not None:
            self._apply(early)

    def _filled_since(self, fills: int) -> bool:
        return self.backorder_fills > fills

    def _all_ended(self) -> bool:
        return bool(self.shipments) and all(
            s.status in SHIPMENT_FINAL for s in self.shipments.values()
        )

    def _ended_outside(self) -> list[ShipmentRef]:
        """Shipments that ended undelivered by no step of this run: cancelled by a
        coordinator, or expired at the carrier."""
        return [
            ref
            for ref in self.shipments.values()
            if ref.status == ShipmentStatus.EXPIRED
            or (
                ref.status == ShipmentStatus.CANCELLED
                and ref.shipment_id not in self.cancelled_here
            )
        ]

    def _every_shipment(self) -> Iterable[ShipmentRef]:
        return [*self.past, *self.shipments.values()]

    async def _open_tasks(self) -> None:
        while self.tasks:
            await self._act(OrderActivities.open_task, self.tasks.pop(0))

    # --- compensation ------------------------------------------------------------

    async def _compensate(self) -> None:
        """Undo the completed steps, newest first (shipments withdrawn before their
        picks go back, so a pick whose parcel is with the carrier stays issued)."""
        while self.undo:
            await self.undo.pop()()

    async def _withdraw(self, ref: ShipmentRef) -> None:
        """Undo `shipment.create`: cancel it, unless the carrier already has it."""
        if ref.status in SHIPMENT_NOT_DISPATCHED and await self._act(
            OrderActivities.cancel_shipment, ref.shipment_id
        ):
            ref.status = ShipmentStatus.CANCELLED
            self.cancelled_here.add(ref.shipment_id)

    async def _put_back(self, warehouse_id: str) -> None:
        """Undo `order.issue`: the lots go back on the shelf unless their parcel left
        (a parcel returned to the sender is restocked instead)."""
        ref = next((r for r in self.shipments.values() if r.warehouse_id == warehouse_id), None)
        if ref is None or ref.status in (ShipmentStatus.CANCELLED, ShipmentStatus.EXPIRED):
            await self._unissue(warehouse_id)

    async def _unissue(self, warehouse_id: str) -> None:
        if warehouse_id not in self.stock_back:
            await self._act(
                OrderActivities.unissue,
                WarehouseStep(order_id=self.order_id, warehouse_id=warehouse_id),
            )
            self.stock_back.add(warehouse_id)

    async def _attend(self, reason: str, detail: str) -> OrderOutcome | None:
        """Compensate, mark the order as needing attention (a coordinator task says why)
        and wait: None after `retry` (the caller starts over), the outcome of `cancel`."""
        self.step = "compensating"
        await self._compensate()
        self.past.extend(self.shipments.values())
        self.shipments = {}
        if self.cancel_out is not None:  # an earlier partial cancel is history now
            self.cancel_reason, self.cancel_out = None, None
        self.attentions += 1
        self.attention = AttentionIn(
            order_id=self.order_id, reason=reason, detail=detail, key=f"attention:{self.attentions}"
        )
        retries = self.retries
        self.step = "needs_attention"
        if self.cancel_reason is None:
            await self._act(OrderActivities.needs_attention, self.attention)
            await workflow.wait_condition(
                lambda: self.retries > retries or self.cancel_reason is not None
            )
        if self.cancel_reason is not None:
            return await self._cancel(self.cancel_reason)
        self.attention = None
        self.attempt += 1
        self.stock_back = set()
        # A fresh wait for the new try's backorders; a credit release stands (the
        # customer service answers the same decision again, and the hold is not re-placed).
        self.backorder_filled = False
        return None

    async def _cancel(self, reason: str) -> OrderOutcome:
        """Compensate: cancel undispatched shipments and put their stock back; cancel the
        order unless some shipment is already with the carrier."""
        self.step = "cancelling"
        if workflow.patched(PATCH_COMPENSATION):
            await self._compensate()
            refs = self.shipments.values()
            cancelled = [r.shipment_id for r in refs if r.shipment_id in self.cancelled_here]
            dispatched = [r.shipment_id for r in refs if r.status != ShipmentStatus.CANCELLED]
        else:
            cancelled, dispatched = await self._cancel_shipments_in_turn()
        if dispatched:
            self.cancel_out = CancelOut(
                status="partially_cancelled",
                cancelled_shipments=cancelled,
                dispatched_shipments=dispatched,
            )
            await self._act(
                OrderActivities.note,
                NoteIn(
                    order_id=self.order_id,
                    kind="cancel_partial",
                    detail=f"{reason}; {len(dispatched)} shipment(s) already dispatched",
                ),
            )
            self.step = "in_transit"
            return OrderOutcome(order_id=self.order_id, status="partially_cancelled")
        await self._act(
            OrderActivities.cancel_order, CancelOrderIn(order_id=self.order_id, reason=reason)
        )
        self.cancel_out = CancelOut(status="cancelled", cancelled_shipments=cancelled)
        self.step = "cancelled"
        return OrderOutcome(order_id=self.order_id, status="cancelled", outcome=reason)

    async def _cancel_shipments_in_turn(self) -> tuple[list[str], list[str]]:
        """The cancel's compensation of runs from before PATCH_COMPENSATION (kept so
        they replay): each undispatched shipment cancelled, then its stock put back."""
        cancelled: list[str] = []
        dispatched: list[str] = []
        for ref in self.shipments.values():
            if ref.status == ShipmentStatus.CANCELLED:
                continue
            if ref.status in SHIPMENT_NOT_DISPATCHED and await self._act(
                OrderActivities.cancel_shipment, ref.shipment_id
            ):
                ref.status = ShipmentStatus.CANCELLED
                self.cancelled_here.add(ref.shipment_id)
                cancelled.append(ref.shipment_id)
                await self._act(
                    OrderActivities.unissue,
                    WarehouseStep(order_id=self.order_id, warehouse_id=ref.warehouse_id),
                )
            else:
                dispatched.append(ref.shipment_id)
        return cancelled, dispatched

    # --- signals, update, query ----------------------------------------------------

    def _first(self, signal: Signal) -> bool:
        if signal.event_id in self.seen:
            return False
        self.seen.add(signal.event_id)
        return True

    @workflow.signal(name=OrderWorkflow.SIGNAL_CREDIT_RELEASED)
    def on_credit_released(self, signal: Signal) -> None:
        if self._first(signal):
            self.credit_released = True

    @workflow.signal(name=OrderWorkflow.SIGNAL_BACKORDER_FILLED)
    def on_backorder_filled(self, signal: Signal) -> None:
        if self._first(signal):
            self.backorder_filled = True
            self.backorder_fills += 1

    @workflow.signal(name=OrderWorkflow.SIGNAL_RETRY)
    def on_retry(self, signal: Signal) -> None:
        """A coordinator retries an order that needs attention (ignored at any other step)."""
        if self._first(signal) and self.step == "needs_attention":
            self.retries += 1

    @workflow.signal(name=OrderWorkflow.SIGNAL_SHIPMENT_STATUS)
    def on_shipment_status(self, signal: ShipmentSignal) -> None:
        if not self._first(signal):
            return
        if signal.shipment_id not in self.shipments:
            previous = self.early.get(signal.shipment_id)
            if previous is None or self._supersedes(
                signal, previous.revision, previous.occurred_at
            ):
                self.early[signal.shipment_id] = signal
            return
        self._apply(signal)

    def _supersedes(self, signal: ShipmentSignal, revision: int, occurred_at: str) -> bool:
        """The shipment service decides a shipment's status; its highest revision wins.
        Signals from before revisions (0) apply in arrival order until one has a
        revision. Runs from before PATCH_REVISION follow `occurred_at` (their replay)."""
        if workflow.patched(PATCH_REVISION):
            return signal.revision > revision or signal.revision == revision == 0
        return signal.occurred_at >= occurred_at

    def _apply(self, signal: ShipmentSignal) -> None:
        ref = self.shipments[signal.shipment_id]
        if ref.status in SHIPMENT_FINAL or not self._supersedes(
            signal, ref.revision, ref.latest_at
        ):
            return
        ref.status = signal.status
        ref.latest_at = signal.occurred_at
        ref.revision = signal.revision
        if signal.status == ShipmentStatus.EXCEPTION:
            text = f"{ref.tracking_number}: {signal.description or 'carrier exception'}"
            self.exceptions.append(text)
            if ref.shipment_id not in self.flagged:  # one task per troubled shipment
                self.flagged.add(ref.shipment_id)
                self.tasks.append(
                    NoteIn(
                        order_id=self.order_id,
                        kind="shipment_exception",
                        detail=text,
                        key=OrderWorkflow.exception_task_key(ref.shipment_id),
                    )
                )

    @workflow.update(name=OrderWorkflow.UPDATE_CANCEL)
    async def cancel(self, req: CancelIn) -> CancelOut:
        if self.cancel_reason is None:
            self.cancel_reason = req.reason
        await workflow.wait_condition(lambda: self.cancel_out is not None)
        assert self.cancel_out is not None
        return self.cancel_out

    @cancel.validator
    def validate_cancel(self, req: CancelIn) -> None:
        if self.step in ("completed", "cancelled"):
            raise ApplicationError(f"the order is already {self.step}", type="already_finished")
        if self.shipments and not any(
            s.status in SHIPMENT_NOT_DISPATCHED or s.status == ShipmentStatus.CANCELLED
            for s in self.shipments.values()
        ):
            raise ApplicationError(
                "every shipment is already dispatched", type="already_dispatched"
            )

    @workflow.query(name=OrderWorkflow.QUERY_STATUS)
    def status(self) -> LiveStatus:
        return LiveStatus(
            order_id=self.order_id,
            step=self.step,
            shipments=list(self.shipments.values()),
            exceptions=self.exceptions,
            cancel_reason=self.cancel_reason,
            attention=self.attention,
        )
