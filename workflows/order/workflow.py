"""Order to delivery (`order-{id}`).

credit check ─► (hold: wait for release, or cancel on timeout) ─► reserve (FEFO)
─► (backordered: wait for stock, then ship partial or cancel on timeout)
─► one shipment per warehouse ─► wait for every shipment to end (exceptions become
coordinator notes; returned-to-sender re-enters stock) ─► completed.

`cancel` is an update: refused once everything is dispatched; otherwise it cancels
undispatched shipments, puts their stock back and releases reservations.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.order.activities import OrderActivities
    from workflows.order.models import (
        DISPATCHED_NOT,
        TERMINAL,
        CancelIn,
        CancelOrderIn,
        CancelOut,
        CompleteIn,
        CreditCheckIn,
        LiveStatus,
        NoteIn,
        OrderInput,
        OrderOutcome,
        Reservation,
        ShipmentIn,
        ShipmentRef,
        ShipmentSignal,
        Signal,
        WarehouseStep,
    )

RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=30)
)


@workflow.defn(name="OrderToDelivery")
class OrderToDelivery:
    def __init__(self) -> None:
        self.order_id = ""
        self.step = "starting"
        self.seen: set[str] = set()
        self.credit_released = False
        self.backorder_filled = False
        self.shipments: dict[str, ShipmentRef] = {}
        self.early: dict[str, ShipmentSignal] = {}
        self.exceptions: list[str] = []
        self.tasks: list[NoteIn] = []
        self.flagged: set[str] = set()
        self.cancel_reason: str | None = None
        self.cancel_out: CancelOut | None = None

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
        order = await self._act(OrderActivities.get_order, inp.order_id)
        if order.status in ("cancelled", "completed"):
            self.step = order.status
            return OrderOutcome(order_id=inp.order_id, status=order.status)

        self.step = "credit_check"
        try:
            credit = await self._act(
                OrderActivities.credit_check,
                CreditCheckIn(order_id=inp.order_id, customer_id=inp.customer_id, amount=inp.total),
            )
        except ActivityError as exc:
            if isinstance(exc.cause, ApplicationError) and exc.cause.type == "not_found":
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
        warehouses = sorted({a.warehouse_id for a in reservation.allocations})
        await asyncio.gather(*(self._ship(inp, order.ship_to, wh) for wh in warehouses))
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

        for ref in self.shipments.values():
            if ref.status == "returned_to_sender":
                await self._act(
                    OrderActivities.restock,
                    WarehouseStep(order_id=inp.order_id, warehouse_id=ref.warehouse_id),
                )
        statuses = [s.status for s in self.shipments.values()]
        delivered = statuses.count("delivered")
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
                shipments={s.shipment_id: s.status for s in self.shipments.values()},
            ),
        )
        self.step = "completed"
        return OrderOutcome(order_id=inp.order_id, status="completed", outcome=outcome)

    async def _ship(self, inp: OrderInput, ship_to: dict[str, Any], warehouse_id: str) -> None:
        lots = await self._act(
            OrderActivities.issue, WarehouseStep(order_id=inp.order_id, warehouse_id=warehouse_id)
        )
        ref: ShipmentRef = await self._act(
            OrderActivities.create_shipment,
            ShipmentIn(
                order_id=inp.order_id,
                customer_id=inp.customer_id,
                warehouse_id=warehouse_id,
                ship_to=ship_to,
                lots=lots,
            ),
        )
        self.shipments[ref.shipment_id] = ref
        early = self.early.pop(ref.shipment_id, None)
        if early is not None:
            self._apply(early)

    def _all_ended(self) -> bool:
        return bool(self.shipments) and all(s.status in TERMINAL for s in self.shipments.values())

    async def _open_tasks(self) -> None:
        while self.tasks:
            await self._act(OrderActivities.open_task, self.tasks.pop(0))

    async def _cancel(self, reason: str) -> OrderOutcome:
        """Compensate: cancel undispatched shipments and put their stock back; cancel the
        order unless some shipment is already with the carrier."""
        self.step = "cancelling"
        cancelled: list[str] = []
        dispatched: list[str] = []
        for ref in self.shipments.values():
            if ref.status == "cancelled":
                continue
            if ref.status in DISPATCHED_NOT and await self._act(
                OrderActivities.cancel_shipment, ref.shipment_id
            ):
                ref.status = "cancelled"
                cancelled.append(ref.shipment_id)
                await self._act(
                    OrderActivities.unissue,
                    WarehouseStep(order_id=self.order_id, warehouse_id=ref.warehouse_id),
                )
            else:
                dispatched.append(ref.shipment_id)
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

    # --- signals, update, query ----------------------------------------------------

    def _first(self, signal: Signal) -> bool:
        if signal.event_id in self.seen:
            return False
        self.seen.add(signal.event_id)
        return True

    @workflow.signal(name="credit_released")
    def on_credit_released(self, signal: Signal) -> None:
        if self._first(signal):
            self.credit_released = True

    @workflow.signal(name="backorder_filled")
    def on_backorder_filled(self, signal: Signal) -> None:
        if self._first(signal):
            self.backorder_filled = True

    @workflow.signal(name="shipment_status")
    def on_shipment_status(self, signal: ShipmentSignal) -> None:
        if not self._first(signal):
            return
        if signal.shipment_id not in self.shipments:
            previous = self.early.get(signal.shipment_id)
            if previous is None or signal.occurred_at >= previous.occurred_at:
                self.early[signal.shipment_id] = signal
            return
        self._apply(signal)

    def _apply(self, signal: ShipmentSignal) -> None:
        ref = self.shipments[signal.shipment_id]
        if ref.status in TERMINAL or signal.occurred_at < ref.latest_at:
            return
        ref.status = signal.status
        ref.latest_at = signal.occurred_at
        if signal.status == "exception":
            text = f"{ref.tracking_number}: {signal.description or 'carrier exception'}"
            self.exceptions.append(text)
            if ref.shipment_id not in self.flagged:  # one task per troubled shipment
                self.flagged.add(ref.shipment_id)
                self.tasks.append(
                    NoteIn(
                        order_id=self.order_id,
                        kind="shipment_exception",
                        detail=text,
                        key=f"exception:{ref.shipment_id}",
                    )
                )

    @workflow.update(name="cancel")
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
        if self.shipments and all(s.status not in DISPATCHED_NOT for s in self.shipments.values()):
            raise ApplicationError(
                "every shipment is already dispatched", type="already_dispatched"
            )

    @workflow.query(name="status")
    def status(self) -> LiveStatus:
        return LiveStatus(
            order_id=self.order_id,
            step=self.step,
            shipments=list(self.shipments.values()),
            exceptions=self.exceptions,
            cancel_reason=self.cancel_reason,
        )
