"""Order rules: the aggregate's guarded lifecycle and the timeline that explains it.

    placed ──► credit_hold ──► placed (credit released)
      ├──► confirmed ──► shipping ──► completed
      │       ▲  │          │
      │       │  ▼          ▼
      └──► backordered ◄────┘  (short at reservation, or at pick: a lot expired)
    any open status ──► needs_attention ──► placed (a coordinator's retry)
    any open status ──► cancelled

One function per transition (`place`, `hold_credit`, `release_credit`, `reserve` (confirm
or backorder), `pick` (start shipping, or backorder at pick), `drop_backorders`,
`need_attention`, `retry`, `cancel`, `complete`): each guards the move, changes the stock
it implies, writes the timeline entry and stages the event, inside the caller's
transaction. Callers load the order with its row locked (`for_update`), so one order's
steps run one at a time. Every workflow step is safe to repeat: Temporal re-runs local
activities, possibly after the order moved on, so a replay answers what it did before.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import events as ev
from services.common import telemetry
from services.common.outbox import stage
from services.common.problems import Conflict, NotFound, Unprocessable
from services.common.statuses import ORDER_FINAL, OrderStatus, ShipmentStatus
from services.common.workflow_names import OrderWorkflow
from services.order import stock
from services.order.models import (
    CoordinatorTask,
    Order,
    OrderLine,
    ShipmentView,
    TimelineEntry,
)
from services.order.schemas import OrderCreate, ReplacementCreate
from services.order.stock_models import Sku
from services.order.stock_schemas import (
    Allocation,
    LineRequest,
    Missing,
    PickedLot,
    ReservationResult,
)

S = OrderStatus
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PLACED: frozenset(
        {S.CREDIT_HOLD, S.CONFIRMED, S.BACKORDERED, S.NEEDS_ATTENTION, S.CANCELLED}
    ),
    S.CREDIT_HOLD: frozenset({S.PLACED, S.NEEDS_ATTENTION, S.CANCELLED}),
    S.BACKORDERED: frozenset({S.CONFIRMED, S.NEEDS_ATTENTION, S.CANCELLED}),
    S.CONFIRMED: frozenset({S.BACKORDERED, S.SHIPPING, S.NEEDS_ATTENTION, S.CANCELLED}),
    S.SHIPPING: frozenset({S.BACKORDERED, S.COMPLETED, S.NEEDS_ATTENTION, S.CANCELLED}),
    S.NEEDS_ATTENTION: frozenset({S.PLACED, S.CANCELLED}),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
}
# Where the workflow's steps may find the order (a retry puts it back in `placed`).
RESERVABLE = frozenset({S.PLACED, S.CONFIRMED, S.BACKORDERED})
RESERVED_BEFORE = frozenset({S.SHIPPING, S.COMPLETED})  # a replayed reserve answers these
PICKABLE = frozenset({S.PLACED, S.CONFIRMED, S.BACKORDERED, S.SHIPPING})
# Not about to ship: a quarantine that leaves such an order short needs no coordinator.
WAITING_ON_STOCK = frozenset({S.PLACED, S.CREDIT_HOLD, S.BACKORDERED, S.NEEDS_ATTENTION})
# Tasks that the order's progress settles (a shipment exception stays until resolved).
SETTLED_BY_PROGRESS = ("credit_hold", "needs_attention")
SYSTEM = "waybill"
MAX_TOTAL = Decimal("999999999999.99")  # what Numeric(14, 2) holds


def _move(order: Order, to: OrderStatus) -> bool:
    """Move `order` to `to`; False when it is already there; 409 when not allowed."""
    if order.status == to:
        return False
    if to not in TRANSITIONS[OrderStatus(order.status)]:
        raise Conflict(
            f"order {order.id} is {order.status}; it cannot become {to}",
            code="invalid_transition",
        )
    order.status = to
    order.updated_at = datetime.now(UTC)
    return True


async def for_update(session: AsyncSession, order_id: str) -> Order:
    """The order with its row locked for the rest of the transaction (404 when absent)."""
    order = (
        await session.execute(sa.select(Order).where(Order.id == order_id).with_for_update())
    ).scalar_one_or_none()
    if order is None:
        raise NotFound(f"order {order_id} not found")
    return order


def note(session: AsyncSession, order_id: str, kind: str, detail: str) -> None:
    """Append a timeline entry, stamped with the current trace id."""
    session.add(
        TimelineEntry(
            order_id=order_id,
            at=datetime.now(UTC),
            kind=kind,
            detail=detail,
            trace_id=telemetry.current_trace_id(),
        )
    )


# What a customer sees of the timeline: these kinds only, in these words (None: the
# entry's own words, which are a carrier's scan description). Everything else (who
# released what, coordinator tasks and notes, stock details) is for staff.
_BACKORDERED = "Some items are on backorder; we ship them once they arrive"
CUSTOMER_TIMELINE: dict[str, str | None] = {
    "placed": "Order received",
    "credit_hold": "Your order is being reviewed",
    "credit_released": "Your order was approved",
    "confirmed": "Your items are reserved",
    "backordered": _BACKORDERED,
    "backordered_at_pick": _BACKORDERED,
    "backorder_dropped": "Some backordered items could not be supplied and will not be sent",
    "shipping": "Your order is being packed",
    "needs_attention": "We are looking into a problem with your order",
    "retry_requested": "We are processing your order again",
    "cancelled": "Your order was cancelled",
    "completed": "Your order is complete",
    "restocked": "A parcel came back to our warehouse",
    "replacement": "This order replaces goods you returned",
    "shipment_created": "Your parcel was handed to the carrier's system",
    **{f"shipment_{status}": None for status in ShipmentStatus},
    "shipment_cancelled": "A parcel was cancelled before dispatch",
}


def customer_wording(kind: str, detail: str) -> str | None:
    """How a timeline entry reads to the customer, or None when they do not see it."""
    if kind not in CUSTOMER_TIMELINE:
        return None
    return CUSTOMER_TIMELINE[kind] or detail


async def _task_by_key(session: AsyncSession, order_id: str, key: str) -> CoordinatorTask | None:
    found: CoordinatorTask | None = await session.scalar(
        sa.select(CoordinatorTask).where(
            CoordinatorTask.order_id == order_id, CoordinatorTask.key == key
        )
    )
    return found


async def open_task(
    session: AsyncSession, order_id: str, kind: str, detail: str, key: str | None = None
) -> tuple[CoordinatorTask, bool]:
    """Ask a coordinator to look at the order (and say so on its timeline). A task with
    the same `key` is opened once, also under races (unique on order and key): returns
    the task and whether it is new."""
    if key is not None and (existing := await _task_by_key(session, order_id, key)):
        return existing, False
    task = CoordinatorTask(
        id=str(uuid.uuid4()),
        order_id=order_id,
        key=key,
        kind=kind,
        detail=detail,
        status="open",
        created_at=datetime.now(UTC),
    )
    try:
        async with session.begin_nested():
            session.add(task)
    except IntegrityError:
        if key is None or (existing := await _task_by_key(session, order_id, key)) is None:
            raise
        return existing, False
    note(session, order_id, "coordinator_task", f"{kind}: {detail}")
    return task, True


async def close_tasks(
    session: AsyncSession,
    order_id: str,
    by: str,
    resolution: str,
    kinds: Sequence[str] = SETTLED_BY_PROGRESS,
) -> None:
    """Resolve the order's open tasks of `kinds` that the order's progress settled."""
    await session.execute(
        sa.update(CoordinatorTask)
        .where(
            CoordinatorTask.order_id == order_id,
            CoordinatorTask.status == "open",
            CoordinatorTask.kind.in_(kinds),
        )
        .values(
            status="resolved", resolved_at=datetime.now(UTC), resolved_by=by, resolution=resolution
        )
    )


def _lots(allocations: Sequence[Allocation]) -> list[ev.LotQuantity]:
    return [a.lot_quantity() for a in allocations]


def _missing(missing: Sequence[Missing]) -> str:
    return ", ".join(f"{m.quantity}x{m.sku}" for m in missing)


# --- transitions -----------------------------------------------------------------------


async def place(
    session: AsyncSession,
    source: str,
    body: OrderCreate,
    placed_by: str,
    *,
    replacement_for_return_id: str | None = None,
) -> Order:
    """A new order enters the lifecycle: lines priced from the catalogue (free for a
    return's replacement), `placed`, announced. 422 for a SKU on two lines
    (`duplicate_sku`), an unknown SKU (`unknown_sku`, per line), lines in different
    currencies (`mixed_currency`) or a total the books cannot hold (`total_too_large`,
    over `MAX_TOTAL`)."""
    skus = [line.sku for line in body.lines]
    if len(set(skus)) != len(skus):
        raise Unprocessable("each SKU may appear on one line only", code="duplicate_sku")
    found = {
        sku.code: sku for sku in await session.scalars(sa.select(Sku).where(Sku.code.in_(skus)))
    }
    if unknown := [s for s in skus if s not in found]:
        raise Unprocessable(
            "unknown SKU",
            code="unknown_sku",
            errors=[
                {
                    "loc": ["body", "lines", i, "sku"],
                    "msg": f"unknown SKU {s}",
                    "type": "unknown_sku",
                }
                for i, s in enumerate(skus)
                if s in unknown
            ],
        )
    currencies = {found[s].currency for s in skus}
    if len(currencies) > 1:
        raise Unprocessable("lines are priced in different currencies", code="mixed_currency")
    now = datetime.now(UTC)
    order = Order(
        id=str(uuid.uuid4()),
        customer_id=body.customer_id,
        status=S.PLACED,
        currency=currencies.pop(),
        ship_to=body.ship_to.model_dump(),
        placed_by=placed_by,
        replacement_for_return_id=replacement_for_return_id,
        created_at=now,
        updated_at=now,
    )
    free = replacement_for_return_id is not None
    order.lines = [
        OrderLine(
            line_no=i,
            sku=line.sku,
            quantity=line.quantity,
            unit_price=Decimal("0.00") if free else found[line.sku].unit_price,
        )
        for i, line in enumerate(body.lines, 1)
    ]
    order.total = sum((ln.unit_price * ln.quantity for ln in order.lines), Decimal("0"))
    if order.total > MAX_TOTAL:
        raise Unprocessable(
            f"the order's total {order.total} exceeds {MAX_TOTAL}; split it into smaller orders",
            code="total_too_large",
        )
    session.add(order)
    note(session, order.id, "placed", f"{len(order.lines)} lines, {order.total} {order.currency}")
    await session.flush()
    await stage(
        session,
        source,
        ev.OrderPlaced(
            order_id=order.id,
            customer_id=order.customer_id,
            lines=[
                ev.OrderLineRef(
                    line_no=ln.line_no,
                    sku=ln.sku,
                    quantity=ln.quantity,
                    unit_price=str(ln.unit_price),
                    category=found[ln.sku].category,
                )
                for ln in order.lines
            ],
            total=str(order.total),
            currency=order.currency,
        ),
        subject=order.id,
    )
    return order


async def place_replacement(
    session: AsyncSession, source: str, body: ReplacementCreate, placed_by: str
) -> Order:
    """A free order replacing a return's goods: same customer and ship-to as the
    original, linked by `replacement_for_return_id`, run by the normal workflow. One per
    return: a repeat (also a concurrent one) answers the same order. 422
    `unknown_order` / `customer_mismatch` when the original is not the customer's."""
    if existing := await _replacement_of(session, body.return_id):
        return existing
    original = await session.get(Order, body.original_order_id)
    if original is None:
        raise Unprocessable(f"order {body.original_order_id} not found", code="unknown_order")
    if original.customer_id != body.customer_id:
        raise Unprocessable(
            f"order {original.id} is not customer {body.customer_id}'s", code="customer_mismatch"
        )
    create = OrderCreate.model_validate(
        {
            "customer_id": original.customer_id,
            "lines": [line.model_dump() for line in body.lines],
            "ship_to": original.ship_to,
        }
    )
    try:
        async with session.begin_nested():
            order = await place(
                session, source, create, placed_by, replacement_for_return_id=body.return_id
            )
    except IntegrityError:
        if (existing := await _replacement_of(session, body.return_id)) is None:
            raise
        return existing
    note(session, order.id, "replacement", f"replaces the goods of return {body.return_id}")
    return order


async def _replacement_of(session: AsyncSession, return_id: str) -> Order | None:
    found: Order | None = await session.scalar(
        sa.select(Order).where(Order.replacement_for_return_id == return_id)
    )
    return found


async def hold_credit(session: AsyncSession, source: str, order: Order, detail: str) -> None:
    """`placed → credit_hold` with a coordinator task. Once a coordinator released the
    order's credit, a replayed hold (or a re-check after a retry) changes nothing."""
    if order.status != S.PLACED or order.credit_released_at is not None:
        return
    _move(order, S.CREDIT_HOLD)
    note(session, order.id, "credit_hold", detail)
    await open_task(session, order.id, "credit_hold", f"release or cancel: {detail}")
    await stage(
        session,
        source,
        ev.OrderCreditHeld(order_id=order.id, customer_id=order.customer_id, reason=detail),
        subject=order.id,
    )


async def release_credit(session: AsyncSession, source: str, order: Order, by: str) -> None:
    """A coordinator lets an order on credit hold go on: `credit_hold → placed`."""
    if order.status != S.CREDIT_HOLD:
        raise Conflict(f"order is {order.status}, not on credit hold", code="not_on_hold")
    _move(order, S.PLACED)
    order.credit_released_at = datetime.now(UTC)
    note(session, order.id, "credit_released", f"released by {by}")
    await close_tasks(session, order.id, by, "credit released", ("credit_hold",))
    await stage(
        session, source, ev.OrderCreditReleased(order_id=order.id, released_by=by), subject=order.id
    )


async def reserve(session: AsyncSession, source: str, order: Order) -> ReservationResult:
    """Reserve what the order still misses (FEFO) and backorder the rest: `confirmed` or
    `backordered`. Answers every reservation the order holds."""
    if order.status in RESERVED_BEFORE:
        # A replayed step: answer what the order got then.
        held = await stock.allocations_of(session, order.id)
        return ReservationResult(status="reserved", allocations=held, missing=[])
    if order.status not in RESERVABLE:
        raise Conflict(f"order is {order.status}; nothing to reserve", code="not_reservable")
    lines = [
        LineRequest(line_no=ln.line_no, sku=ln.sku, quantity=ln.quantity) for ln in order.lines
    ]
    result = await stock.reserve(session, order.id, lines, source)
    held = await stock.reservations_of(session, order.id)
    if result.status == "reserved":
        await _confirm(session, source, order, held)
    else:
        await _backorder(session, source, order, result.missing, "backordered")
    # Everything the order holds now, not only this call's additions.
    return ReservationResult(status=result.status, allocations=held, missing=result.missing)


async def _confirm(
    session: AsyncSession, source: str, order: Order, held: Sequence[Allocation]
) -> None:
    if not _move(order, S.CONFIRMED):
        return
    warehouses = len({a.warehouse_id for a in held})
    note(session, order.id, "confirmed", f"reserved in {warehouses} warehouse(s)")
    await stage(
        session,
        source,
        ev.OrderConfirmed(
            order_id=order.id, customer_id=order.customer_id, allocations=_lots(held)
        ),
        subject=order.id,
    )


async def _backorder(
    session: AsyncSession, source: str, order: Order, missing: Sequence[Missing], kind: str
) -> None:
    if not _move(order, S.BACKORDERED) and kind == "backordered":
        return
    note(session, order.id, kind, f"waiting for {_missing(missing)}")
    await stage(
        session,
        source,
        ev.OrderBackordered(
            order_id=order.id,
            missing=[
                ev.OrderLineRef(line_no=m.line_no, sku=m.sku, quantity=m.quantity) for m in missing
            ],
        ),
        subject=order.id,
    )


async def drop_backorders(session: AsyncSession, source: str, order: Order) -> ReservationResult:
    """Ship what is reserved and give up on the rest (backorder timeout policy):
    `backordered → confirmed`; answers what remains reserved and, as `missing`, what
    was dropped."""
    dropped = await stock.drop_backorders(session, order.id, source)
    if dropped:
        note(session, order.id, "backorder_dropped", _missing(dropped))
    if order.status == S.BACKORDERED:
        _move(order, S.CONFIRMED)
    held = await stock.reservations_of(session, order.id)
    return ReservationResult(status="reserved", allocations=held, missing=dropped)


@dataclass
class Picked:
    """The lots picked in one warehouse, or what was backordered at pick instead."""

    lots: list[PickedLot]
    backordered: list[Missing]


def pick_reference(order_id: str, warehouse_id: str) -> str:
    """The stock ledger's key for the picking of one order in one warehouse."""
    return f"{order_id}/{warehouse_id}"


async def pick(session: AsyncSession, source: str, order: Order, warehouse_id: str) -> Picked:
    """Pick the reserved lots of one warehouse (idempotent): `confirmed → shipping`. A
    lot that expired while the order waited is swapped for another; when the warehouse
    cannot cover it the order becomes `backordered` and nothing is picked there."""
    if order.status not in PICKABLE:
        raise Conflict(f"order is {order.status}; nothing to pick", code="not_pickable")
    result = await stock.issue(
        session, order.id, warehouse_id, pick_reference(order.id, warehouse_id), source
    )
    if result.backordered:
        await _backorder(session, source, order, result.backordered, "backordered_at_pick")
    elif order.status == S.CONFIRMED:
        _move(order, S.SHIPPING)
        note(session, order.id, "shipping", "picking started")
    return Picked(result.picked, result.backordered)


async def need_attention(
    session: AsyncSession, source: str, order: Order, reason: str, detail: str, key: str
) -> None:
    """A step failed for good: release the order's reservations and backorders (issued
    stock is the workflow's to put back first), `→ needs_attention`, and a coordinator
    task saying why. A repeat with the same `key` changes nothing."""
    if order.status in ORDER_FINAL:
        raise Conflict(f"order is {order.status}; it needs no attention", code="invalid_transition")
    if await _task_by_key(session, order.id, key) is not None:
        return
    await stock.release(session, order.id, source)
    _move(order, S.NEEDS_ATTENTION)
    note(session, order.id, "needs_attention", f"{reason}: {detail}")
    await open_task(session, order.id, "needs_attention", f"{reason}: {detail}", key=key)
    await stage(
        session,
        source,
        ev.OrderAttentionNeeded(
            order_id=order.id, customer_id=order.customer_id, reason=reason, detail=detail
        ),
        subject=order.id,
    )


async def retry(session: AsyncSession, source: str, order: Order, by: str) -> None:
    """A coordinator sends an order that needs attention round again: `→ placed`; its
    workflow (signalled through `OrderRetryRequested`) starts over from the credit check."""
    if order.status != S.NEEDS_ATTENTION:
        raise Conflict(
            f"order is {order.status}, not needing attention", code="not_needing_attention"
        )
    _move(order, S.PLACED)
    note(session, order.id, "retry_requested", f"retry requested by {by}")
    await close_tasks(session, order.id, by, "retry requested", ("needs_attention",))
    await stage(
        session,
        source,
        ev.OrderRetryRequested(order_id=order.id, requested_by=by),
        subject=order.id,
    )


async def cancel(session: AsyncSession, source: str, order: Order, reason: str) -> None:
    """Release the order's reservations and backorders and mark it `cancelled`
    (idempotent; a finished order is left as it is)."""
    if order.status in ORDER_FINAL:
        return
    await stock.release(session, order.id, source)
    _move(order, S.CANCELLED)
    order.cancel_reason = reason
    note(session, order.id, "cancelled", reason)
    await close_tasks(session, order.id, SYSTEM, f"order cancelled: {reason}")
    await stage(
        session,
        source,
        ev.OrderCancelled(
            order_id=order.id, customer_id=order.customer_id, total=str(order.total), reason=reason
        ),
        subject=order.id,
    )


async def complete(session: AsyncSession, source: str, order: Order, outcome: str) -> None:
    """Every shipment ended: release what is still reserved, `shipping → completed` with
    the outcome (idempotent)."""
    await stock.release(session, order.id, source)
    if not _move(order, S.COMPLETED):
        return
    order.outcome = outcome
    note(session, order.id, "completed", outcome)
    delivered = await session.scalars(
        sa.select(ShipmentView.shipment_id).where(
            ShipmentView.order_id == order.id, ShipmentView.status == ShipmentStatus.DELIVERED
        )
    )
    keys = [OrderWorkflow.exception_task_key(shipment_id) for shipment_id in delivered]
    if keys:  # the carrier got over its exceptions: nothing is left for a coordinator
        await session.execute(
            sa.update(CoordinatorTask)
            .where(
                CoordinatorTask.order_id == order.id,
                CoordinatorTask.status == "open",
                CoordinatorTask.key.in_(keys),
            )
            .values(
                status="resolved",
                resolved_at=datetime.now(UTC),
                resolved_by=SYSTEM,
                resolution="delivered after the carrier exception",
            )
        )
    await stage(
        session,
        source,
        ev.OrderCompleted(
            order_id=order.id,
            customer_id=order.customer_id,
            total=str(order.total),
            outcome=outcome,
        ),
        subject=order.id,
    )
