"""Order routes: placing, reading, cancelling, "where is my order?", and the workflow's
internal steps (`/internal/orders/...`, role `service`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import events as ev
from services.common.app import Runtime
from services.common.auth import Principal, Role, require
from services.common.deps import IdempotencyKey, RuntimeDep
from services.common.idempotency import run_idempotent
from services.common.outbox import stage
from services.common.pagination import decode_time_cursor, encode_time_cursor
from services.common.problems import Conflict, NotFound, Unprocessable
from services.order import stock
from services.order.models import (
    CoordinatorTask,
    Order,
    OrderLine,
    ShipmentView,
    ShipmentViewEvent,
    TimelineEntry,
)
from services.order.orders import OPEN, close_tasks, note, open_task, transition
from services.order.schemas import (
    CancelRequest,
    CompleteIn,
    NoteIn,
    OrderCreate,
    OrderLinePublic,
    OrderPage,
    OrderPublic,
    OrderStatus,
    ShipmentStatus,
    TaskPage,
    TaskPublic,
    TaskResolve,
    TimelineItem,
    TrackingItem,
    WarehouseRef,
)
from services.order.stock_models import Sku
from services.order.stock_schemas import Allocation, LineRequest, ReservationResult
from services.order.workflow_client import WorkflowGateway

Reader = Annotated[
    Principal, Depends(require(Role.COORDINATOR, Role.OPS, Role.SERVICE, Role.CUSTOMER))
]
Placer = Annotated[Principal, Depends(require(Role.COORDINATOR, Role.SERVICE, Role.CUSTOMER))]
Service = Annotated[Principal, Depends(require(Role.SERVICE))]

router = APIRouter(prefix="/orders", tags=["orders"])
internal = APIRouter(prefix="/internal/orders", tags=["internal"])
tasks = APIRouter(prefix="/tasks", tags=["tasks"])


async def gateway(request: Request) -> WorkflowGateway:
    state = request.app.state
    if getattr(state, "workflows", None) is None:
        state.workflows = WorkflowGateway(state.settings)
    gw: WorkflowGateway = state.workflows
    return gw


async def _load(session: AsyncSession, order_id: str, caller: Principal) -> Order:
    order = await session.get(Order, order_id)
    if order is None or not caller.may_see_customer(order.customer_id):
        raise NotFound(f"order {order_id} not found")
    return order


async def _load_for_update(session: AsyncSession, order_id: str) -> Order:
    order = (
        await session.execute(sa.select(Order).where(Order.id == order_id).with_for_update())
    ).scalar_one_or_none()
    if order is None:
        raise NotFound(f"order {order_id} not found")
    return order


def _public(order: Order) -> dict[str, Any]:
    return OrderPublic.model_validate(order).model_dump(mode="json")


def _lines(order: Order) -> list[ev.OrderLineRef]:
    return [
        ev.OrderLineRef(
            line_no=line.line_no,
            sku=line.sku,
            quantity=line.quantity,
            unit_price=str(line.unit_price),
        )
        for line in order.lines
    ]


def _lots(allocations: Sequence[Allocation]) -> list[ev.LotQuantity]:
    return [
        ev.LotQuantity(
            line_no=a.line_no,
            sku=a.sku,
            warehouse_id=a.warehouse_id,
            lot=a.lot,
            quantity=a.quantity,
        )
        for a in allocations
    ]


@router.post("", status_code=201, response_model=OrderPublic, summary="Place an order")
async def place_order(
    caller: Placer, body: OrderCreate, runtime: RuntimeDep, key: IdempotencyKey
) -> Any:
    if caller.role is Role.CUSTOMER and caller.customer_id != body.customer_id:
        raise NotFound(f"customer {body.customer_id} not found")
    skus = [line.sku for line in body.lines]
    if len(set(skus)) != len(skus):
        raise Unprocessable("each SKU may appear on one line only", code="duplicate_sku")

    async def create(session: AsyncSession) -> tuple[int, Any]:
        found = {
            sku.code: sku
            for sku in (await session.execute(sa.select(Sku).where(Sku.code.in_(skus)))).scalars()
        }
        unknown = [s for s in skus if s not in found]
        if unknown:
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
            status="placed",
            currency=currencies.pop(),
            total=Decimal("0"),
            ship_to=body.ship_to.model_dump(),
            placed_by=caller.subject,
            created_at=now,
            updated_at=now,
        )
        order.lines = [
            OrderLine(
                line_no=i + 1,
                sku=line.sku,
                quantity=line.quantity,
                unit_price=found[line.sku].unit_price,
            )
            for i, line in enumerate(body.lines)
        ]
        order.total = sum((ln.unit_price * ln.quantity for ln in order.lines), Decimal("0"))
        session.add(order)
        note(
            session, order.id, "placed", f"{len(order.lines)} lines, {order.total} {order.currency}"
        )
        await session.flush()
        await stage(
            session,
            runtime.source,
            ev.OrderPlaced(
                order_id=order.id,
                customer_id=order.customer_id,
                lines=_lines(order),
                total=str(order.total),
                currency=order.currency,
            ),
            subject=order.id,
        )
        return 201, _public(order)

    return await run_idempotent(
        runtime.db, route="POST /orders", principal=caller, key=key, payload=body, action=create
    )


@router.get("/{order_id}", response_model=OrderPublic)
async def get_order(order_id: str, runtime: RuntimeDep, caller: Reader) -> Any:
    async with runtime.db.reading() as session:
        return _public(await _load(session, order_id, caller))


@router.get("", response_model=OrderPage, summary="Orders, newest first (keyset pagination)")
async def list_orders(
    runtime: RuntimeDep,
    caller: Reader,
    customer_id: str | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Any:
    if caller.role is Role.CUSTOMER:
        if customer_id not in (None, caller.customer_id):
            return {"items": [], "next_cursor": None}
        customer_id = caller.customer_id
    query = sa.select(Order).order_by(Order.created_at.desc(), Order.id.desc()).limit(limit + 1)
    if customer_id:
        query = query.where(Order.customer_id == customer_id)
    if status:
        query = query.where(Order.status == status)
    if cursor:
        at, last_id = decode_time_cursor(cursor)
        query = query.where(
            sa.tuple_(Order.created_at, Order.id) < sa.tuple_(sa.literal(at), sa.literal(last_id))
        )
    async with runtime.db.reading() as session:
        rows = list((await session.execute(query)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [_public(o) for o in rows],
        "next_cursor": encode_time_cursor(rows[-1].created_at, rows[-1].id) if more else None,
    }


@router.post("/{order_id}/cancel", response_model=OrderPublic, summary="Cancel an order")
async def cancel_order(
    order_id: str,
    body: CancelRequest,
    runtime: RuntimeDep,
    caller: Annotated[Principal, Depends(require(Role.COORDINATOR, Role.CUSTOMER))],
    workflows: Annotated[WorkflowGateway, Depends(gateway)],
) -> Any:
    """Cancels through the order's workflow, which compensates (releases stock, cancels
    undispatched shipments); 409 once everything is dispatched."""
    async with runtime.db.reading() as session:
        order = await _load(session, order_id, caller)
    if order.status == "cancelled":
        return _public(order)
    if order.status == "completed":
        raise Conflict("the order is already completed", code="already_completed")
    result = await workflows.cancel(order_id, body.reason)
    async with runtime.db.transaction() as session:
        order = await _load_for_update(session, order_id)
        if result is None and order.status in OPEN:
            # No workflow yet (or any more): nothing was reserved or shipped by one.
            await _cancel(session, runtime, order, body.reason)
    async with runtime.db.reading() as session:
        return _public(await _load(session, order_id, caller))


@router.post("/{order_id}/release-credit-hold", response_model=OrderPublic)
async def release_credit_hold(
    order_id: str,
    runtime: RuntimeDep,
    caller: Annotated[Principal, Depends(require(Role.COORDINATOR))],
) -> Any:
    """A coordinator lets an order on credit hold go on; its workflow resumes."""
    async with runtime.db.transaction() as session:
        order = await _load_for_update(session, order_id)
        if order.status != "credit_hold":
            raise Conflict(f"order is {order.status}, not on credit hold", code="not_on_hold")
        transition(order, "placed")
        note(session, order.id, "credit_released", f"released by {caller.subject}")
        await close_tasks(session, order.id, caller.subject, "credit released", "credit_hold")
        await stage(
            session,
            runtime.source,
            ev.OrderCreditReleased(order_id=order.id, released_by=caller.subject),
            subject=order.id,
        )
        return _public(order)


# The status read is the hottest path customers hit: plain rows (no ORM objects) from
# statements built once, since composing a statement costs more than SQLite takes to run it.
_orders, _lines_t, _views, _view_events, _timeline = (
    model.__table__ for model in (Order, OrderLine, ShipmentView, ShipmentViewEvent, TimelineEntry)
)
_ORDER: sa.BindParameter[str] = sa.bindparam("order_id", type_=sa.String())
_STATUS_ORDER = sa.select(
    _orders.c.id, _orders.c.customer_id, _orders.c.status, _orders.c.outcome
).where(_orders.c.id == _ORDER)
# lines, shipments, tracking events, timeline
_STATUS_PARTS = (
    sa.select(_lines_t).where(_lines_t.c.order_id == _ORDER).order_by(_lines_t.c.line_no),
    sa.select(_views).where(_views.c.order_id == _ORDER).order_by(_views.c.warehouse_id),
    sa.select(_view_events)
    .join(_views, _views.c.shipment_id == _view_events.c.shipment_id)
    .where(_views.c.order_id == _ORDER)
    .order_by(_view_events.c.occurred_at),
    sa.select(_timeline)
    .where(_timeline.c.order_id == _ORDER)
    .order_by(_timeline.c.at, _timeline.c.id),
)


@router.get("/{order_id}/status", response_model=OrderStatus, summary="Where is my order?")
async def order_status(
    order_id: str,
    runtime: RuntimeDep,
    caller: Reader,
    workflows: Annotated[WorkflowGateway, Depends(gateway)],
    live: bool = Query(False, description="also ask the workflow for its live step"),
) -> Any:
    of_order = {"order_id": order_id}
    async with runtime.db.reading() as session:
        order = (await session.execute(_STATUS_ORDER, of_order)).one_or_none()
        if order is None or not caller.may_see_customer(order.customer_id):
            raise NotFound(f"order {order_id} not found")
        lines, views, tracking, timeline = [
            (await session.execute(statement, of_order)).all() for statement in _STATUS_PARTS
        ]
    events: dict[str, list[TrackingItem]] = {}
    for t in tracking:
        events.setdefault(t.shipment_id, []).append(TrackingItem.model_validate(t))
    shipments = [
        ShipmentStatus(
            shipment_id=v.shipment_id,
            warehouse_id=v.warehouse_id,
            carrier=v.carrier,
            service_level=v.service_level,
            tracking_number=v.tracking_number,
            status=v.final_status or v.status,
            promised_date=v.promised_date,
            eta=v.eta,
            lots=v.lots,
            events=events.get(v.shipment_id, []),
        )
        for v in views
    ]
    return OrderStatus(
        order_id=order.id,
        customer_id=order.customer_id,
        status=order.status,
        outcome=order.outcome,
        lines=[OrderLinePublic.model_validate(line) for line in lines],
        shipments=shipments,
        timeline=[TimelineItem.model_validate(t) for t in timeline],
        workflow=await workflows.live_step(order_id) if live and caller.is_staff else None,
    )


async def _cancel(session: AsyncSession, runtime: Runtime, order: Order, reason: str) -> None:
    await stock.release(session, order.id, runtime.source)
    if transition(order, "cancelled"):
        order.cancel_reason = reason
        note(session, order.id, "cancelled", reason)
        await close_tasks(session, order.id, "waybill", f"order cancelled: {reason}", "credit_hold")
        await stage(
            session,
            runtime.source,
            ev.OrderCancelled(
                order_id=order.id,
                customer_id=order.customer_id,
                total=str(order.total),
                reason=reason,
            ),
            subject=order.id,
        )


# --- internal steps of the order-to-delivery workflow (idempotent) ------------------


@internal.post("/{order_id}/credit-hold", response_model=OrderPublic)
async def hold_for_credit(order_id: str, body: NoteIn, runtime: RuntimeDep, _: Service) -> Any:
    async with runtime.db.transaction() as session:
        order = await _load_for_update(session, order_id)
        released = await session.scalar(
            sa.select(sa.func.count())
            .select_from(TimelineEntry)
            .where(TimelineEntry.order_id == order.id, TimelineEntry.kind == "credit_released")
        )
        if order.status != "placed" or released:
            return _public(order)  # a replay after the hold was placed or released
        if transition(order, "credit_hold"):
            note(session, order.id, "credit_hold", body.detail)
            open_task(session, order.id, "credit_hold", f"release or cancel: {body.detail}")
            await stage(
                session,
                runtime.source,
                ev.OrderCreditHeld(
                    order_id=order.id, customer_id=order.customer_id, reason=body.detail
                ),
                subject=order.id,
            )
        return _public(order)


@internal.post("/{order_id}/reserve", response_model=ReservationResult)
async def reserve(order_id: str, runtime: RuntimeDep, _: Service) -> Any:
    """Reserve what the order still misses (FEFO); backorder the rest. Answers every
    reservation the order holds."""
    async with runtime.db.transaction() as session:
        order = await _load_for_update(session, order_id)
        if order.status in ("shipping", "completed"):
            # A replayed step (local activities re-run when a workflow task fails):
            # answer what the order got then.
            held = await stock.allocations_of(session, order.id)
            return ReservationResult(status="reserved", allocations=held, missing=[])
        if order.status not in ("placed", "confirmed", "backordered"):
            raise Conflict(f"order is {order.status}; nothing to reserve", code="not_reservable")
        result = await stock.reserve(
            session,
            order.id,
            [
                LineRequest(line_no=ln.line_no, sku=ln.sku, quantity=ln.quantity)
                for ln in order.lines
            ],
            runtime.source,
        )
        held = await stock.reservations_of(session, order.id)
        target = "confirmed" if result.status == "reserved" else "backordered"
        if transition(order, target):
            if target == "confirmed":
                note(
                    session,
                    order.id,
                    "confirmed",
                    f"reserved in {len({a.warehouse_id for a in held})} warehouse(s)",
                )
                await stage(
                    session,
                    runtime.source,
                    ev.OrderConfirmed(
                        order_id=order.id, customer_id=order.customer_id, allocations=_lots(held)
                    ),
                    subject=order.id,
                )
            else:
                missing = ", ".join(f"{m.quantity}x{m.sku}" for m in result.missing)
                note(session, order.id, "backordered", f"waiting for {missing}")
                await stage(
                    session,
                    runtime.source,
                    ev.OrderBackordered(
                        order_id=order.id,
                        missing=[
                            ev.OrderLineRef(line_no=m.line_no, sku=m.sku, quantity=m.quantity)
                            for m in result.missing
                        ],
                    ),
                    subject=order.id,
                )
        # Everything the order holds now, not only this call's additions.
        return ReservationResult(status=result.status, allocations=held, missing=result.missing)


@internal.post("/{order_id}/drop-backorders", response_model=ReservationResult)
async def drop_backorders(order_id: str, runtime: RuntimeDep, _: Service) -> Any:
    """Ship what is reserved and give up on the rest (backorder timeout policy); answers
    the reservations that remain and, as `missing`, what was dropped."""
    async with runtime.db.transaction() as session:
        order = await _load_for_update(session, order_id)
        dropped = await stock.drop_backorders(session, order.id)
        if dropped:
            note(
                session,
                order.id,
                "backorder_dropped",
                ", ".join(f"{m.quantity}x{m.sku}" for m in dropped),
            )
        if order.status == "backordered":
            transition(order, "confirmed")
        held = await stock.reservations_of(session, order.id)
        return ReservationResult(status="reserved", allocations=held, missing=dropped)


@internal.post("/{order_id}/issue", response_model=list[Allocation])
async def issue(order_id: str, body: WarehouseRef, runtime: RuntimeDep, _: Service) -> Any:
    """Pick the reserved lots of one warehouse for its shipment (idempotent)."""
    async with runtime.db.transaction() as session:
        order = await _load_for_update(session, order_id)
        if order.status not in ("confirmed", "shipping"):
            raise Conflict(f"order is {order.status}; nothing to pick", code="not_pickable")
        picked = await stock.issue(
            session,
            order.id,
            body.warehouse_id,
            pick_reference(order.id, body.warehouse_id),
            runtime.source,
        )
        if transition(order, "shipping"):
            note(session, order.id, "shipping", "picking started")
        return picked


@internal.post("/{order_id}/unissue")
async def unissue(order_id: str, body: WarehouseRef, runtime: RuntimeDep, _: Service) -> Any:
    """Put back the lots of a shipment cancelled before dispatch (idempotent)."""
    async with runtime.db.transaction() as session:
        await _load_for_update(session, order_id)
        await stock.unissue(session, pick_reference(order_id, body.warehouse_id), runtime.source)
    return {"status": "ok"}


@internal.post("/{order_id}/restock", response_model=list[Allocation])
async def restock(order_id: str, body: WarehouseRef, runtime: RuntimeDep, _: Service) -> Any:
    """A shipment came back to the sender: its lots re-enter stock (idempotent)."""
    async with runtime.db.transaction() as session:
        await _load_for_update(session, order_id)
        lots = await stock.restock(
            session, pick_reference(order_id, body.warehouse_id), runtime.source
        )
        if lots:
            note(session, order_id, "restocked", f"shipment from {body.warehouse_id} back in stock")
        return lots


@internal.post("/{order_id}/cancel", response_model=OrderPublic)
async def cancel_internal(
    order_id: str, body: CancelRequest, runtime: RuntimeDep, _: Service
) -> Any:
    """The workflow's compensation: release reservations, mark cancelled (idempotent)."""
    async with runtime.db.transaction() as session:
        order = await _load_for_update(session, order_id)
        if order.status in OPEN:
            await _cancel(session, runtime, order, body.reason)
        return _public(order)


@internal.post("/{order_id}/complete", response_model=OrderPublic)
async def complete(order_id: str, body: CompleteIn, runtime: RuntimeDep, _: Service) -> Any:
    async with runtime.db.transaction() as session:
        order = await _load_for_update(session, order_id)
        await stock.release(session, order.id, runtime.source)
        for shipment_id, status in body.shipments.items():
            view = await session.get(ShipmentView, shipment_id)
            if view is not None and view.order_id == order.id:
                # Tracking events may still be on their way here; the answer shows this.
                view.final_status = status
        if transition(order, "completed"):
            order.outcome = body.outcome
            note(session, order.id, "completed", body.outcome)
            await stage(
                session,
                runtime.source,
                ev.OrderCompleted(
                    order_id=order.id,
                    customer_id=order.customer_id,
                    total=str(order.total),
                    outcome=body.outcome,
                ),
                subject=order.id,
            )
        return _public(order)


@internal.post("/{order_id}/notes", status_code=201)
async def add_note(order_id: str, body: NoteIn, runtime: RuntimeDep, _: Service) -> Any:
    """A workflow step worth showing on the order's timeline (e.g. a coordinator task)."""
    async with runtime.db.transaction() as session:
        await _load_for_update(session, order_id)
        note(session, order_id, body.kind, body.detail)
    return {"status": "ok"}


@internal.post("/{order_id}/tasks", status_code=201)
async def add_task(order_id: str, body: NoteIn, runtime: RuntimeDep, _: Service) -> Any:
    """The workflow asks a coordinator to look at the order (e.g. a carrier exception)."""
    async with runtime.db.transaction() as session:
        await _load_for_update(session, order_id)
        if body.key and await session.scalar(
            sa.select(CoordinatorTask.id).where(
                CoordinatorTask.order_id == order_id, CoordinatorTask.key == body.key
            )
        ):
            return {"status": "ok"}  # the workflow step ran before
        open_task(session, order_id, body.kind, body.detail, key=body.key)
    return {"status": "ok"}


# --- coordinator tasks -----------------------------------------------------------


@tasks.get("", response_model=TaskPage, summary="What coordinators must look at, oldest first")
async def list_tasks(
    runtime: RuntimeDep,
    _: Annotated[Principal, Depends(require(Role.COORDINATOR, Role.OPS))],
    status: Annotated[str, Query(pattern="^(open|resolved)$")] = "open",
    order_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Any:
    query = (
        sa.select(CoordinatorTask)
        .where(CoordinatorTask.status == status)
        .order_by(CoordinatorTask.created_at, CoordinatorTask.id)
        .limit(limit + 1)
    )
    if order_id:
        query = query.where(CoordinatorTask.order_id == order_id)
    if cursor:
        at, last_id = decode_time_cursor(cursor)
        query = query.where(
            sa.tuple_(CoordinatorTask.created_at, CoordinatorTask.id)
            > sa.tuple_(sa.literal(at), sa.literal(last_id))
        )
    async with runtime.db.reading() as session:
        rows = list((await session.execute(query)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return TaskPage(
        items=[TaskPublic.model_validate(t) for t in rows],
        next_cursor=encode_time_cursor(rows[-1].created_at, rows[-1].id) if more else None,
    )


@tasks.post("/{task_id}/resolve", response_model=TaskPublic)
async def resolve_task(
    task_id: str,
    body: TaskResolve,
    runtime: RuntimeDep,
    caller: Annotated[Principal, Depends(require(Role.COORDINATOR))],
) -> Any:
    async with runtime.db.transaction() as session:
        task = await session.get(CoordinatorTask, task_id)
        if task is None:
            raise NotFound(f"task {task_id} not found")
        if task.status == "open":
            task.status = "resolved"
            task.resolved_at = datetime.now(UTC)
            task.resolved_by = caller.subject
            task.resolution = body.resolution
            note(session, task.order_id, "task_resolved", f"{task.kind}: {body.resolution}")
        return TaskPublic.model_validate(task)


def pick_reference(order_id: str, warehouse_id: str) -> str:
    """The stock ledger's key for the picking of one order in one warehouse."""
    return f"{order_id}/{warehouse_id}"
