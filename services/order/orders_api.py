"""Order routes: placing, reading, cancelling, "where is my order?", and the workflow's
internal steps (`/internal/orders/...`, role `service`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.auth import Principal, Role, require
from services.common.deps import IdempotencyKey, RuntimeDep
from services.common.idempotency import run_idempotent
from services.common.pagination import decode_time_cursor, encode_time_cursor
from services.common.problems import Conflict, NotFound
from services.common.statuses import OrderStatus
from services.order import orders, stock
from services.order.models import (
    CoordinatorTask,
    Order,
    OrderLine,
    ShipmentView,
    ShipmentViewEvent,
    TimelineEntry,
)
from services.order.orders import note, pick_reference
from services.order.schemas import (
    AttentionIn,
    CancelRequest,
    CompleteIn,
    NoteIn,
    OrderCreate,
    OrderLinePublic,
    OrderPage,
    OrderPublic,
    OrderStatusView,
    ReplacementCreate,
    ShipmentStatusView,
    TaskIn,
    TaskPage,
    TaskPublic,
    TaskResolve,
    TimelineItem,
    TrackingItem,
    WarehouseRef,
)
from services.order.stock_schemas import Allocation, PickedLot, ReservationResult
from services.order.workflow_client import WorkflowGateway

Reader = Annotated[
    Principal, Depends(require(Role.COORDINATOR, Role.OPS, Role.SERVICE, Role.CUSTOMER))
]
Placer = Annotated[Principal, Depends(require(Role.COORDINATOR, Role.SERVICE, Role.CUSTOMER))]
Service = Annotated[Principal, Depends(require(Role.SERVICE))]
Coordinator = Annotated[Principal, Depends(require(Role.COORDINATOR))]

router = APIRouter(prefix="/orders", tags=["orders"])
internal = APIRouter(prefix="/internal/orders", tags=["internal"])
tasks = APIRouter(prefix="/tasks", tags=["tasks"])
replacements = APIRouter(prefix="/internal/replacements", tags=["internal"])


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


def _public(order: Order) -> dict[str, Any]:
    return OrderPublic.model_validate(order).model_dump(mode="json")


@router.post("", status_code=201, response_model=OrderPublic, summary="Place an order")
async def place_order(
    caller: Placer, body: OrderCreate, runtime: RuntimeDep, key: IdempotencyKey
) -> Any:
    if caller.role is Role.CUSTOMER and caller.customer_id != body.customer_id:
        raise NotFound(f"customer {body.customer_id} not found")

    async def create(session: AsyncSession) -> tuple[int, Any]:
        order = await orders.place(session, runtime.source, body, placed_by=caller.subject)
        return 201, _public(order)

    return await run_idempotent(
        runtime.db, route="POST /orders", principal=caller, key=key, payload=body, action=create
    )


@replacements.post(
    "",
    status_code=201,
    response_model=OrderPublic,
    summary="Place a free replacement order for a return's goods (one per return)",
    responses={
        422: {
            "description": "`unknown_order`, `customer_mismatch` (the original is not the "
            "customer's), `unknown_sku`, `duplicate_sku`"
        }
    },
)
async def place_replacement(
    caller: Service, body: ReplacementCreate, runtime: RuntimeDep, key: IdempotencyKey
) -> Any:
    """Same customer and ship-to as the original order, unit prices 0, linked by
    `replacement_for_return_id`; a repeat for the same return (any key) answers the
    same order."""

    async def create(session: AsyncSession) -> tuple[int, Any]:
        order = await orders.place_replacement(
            session, runtime.source, body, placed_by=caller.subject
        )
        return 201, _public(order)

    return await run_idempotent(
        runtime.db,
        route="POST /internal/replacements",
        principal=caller,
        key=key,
        payload=body,
        action=create,
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
    status: OrderStatus | None = None,
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


@router.post(
    "/{order_id}/cancel",
    response_model=OrderPublic,
    summary="Cancel an order",
    responses={503: {"description": "The workflow engine is unreachable; try again"}},
)
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
    if order.status == OrderStatus.CANCELLED:
        return _public(order)
    if order.status == OrderStatus.COMPLETED:
        raise Conflict("the order is already completed", code="already_completed")
    result = await workflows.cancel(order_id, body.reason)
    if result is None:
        # No workflow yet (or any more): nothing was reserved or shipped by one.
        async with runtime.db.transaction() as session:
            await orders.cancel(
                session, runtime.source, await orders.for_update(session, order_id), body.reason
            )
    async with runtime.db.reading() as session:
        return _public(await _load(session, order_id, caller))


@router.post("/{order_id}/release-credit-hold", response_model=OrderPublic)
async def release_credit_hold(order_id: str, runtime: RuntimeDep, caller: Coordinator) -> Any:
    """A coordinator lets an order on credit hold go on; its workflow resumes."""
    async with runtime.db.transaction() as session:
        order = await orders.for_update(session, order_id)
        await orders.release_credit(session, runtime.source, order, caller.subject)
        return _public(order)


@router.post(
    "/{order_id}/retry", response_model=OrderPublic, summary="Try an order needing attention again"
)
async def retry_order(order_id: str, runtime: RuntimeDep, caller: Coordinator) -> Any:
    """`needs_attention → placed`; its workflow starts over from the credit check. 409
    `not_needing_attention` for an order in any other status."""
    async with runtime.db.transaction() as session:
        order = await orders.for_update(session, order_id)
        await orders.retry(session, runtime.source, order, caller.subject)
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


def _timeline_for(caller: Principal, rows: Sequence[sa.Row[Any]]) -> list[TimelineItem]:
    """Staff see the whole timeline; a customer only the customer-facing entries, in
    customer-facing words."""
    if caller.is_staff:
        return [TimelineItem.model_validate(t) for t in rows]
    return [
        TimelineItem(at=t.at, kind=t.kind, detail=wording, trace_id=None)
        for t in rows
        if (wording := orders.customer_wording(t.kind, t.detail)) is not None
    ]


@router.get("/{order_id}/status", response_model=OrderStatusView, summary="Where is my order?")
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
        ShipmentStatusView(
            shipment_id=v.shipment_id,
            warehouse_id=v.warehouse_id,
            carrier=v.carrier,
            service_level=v.service_level,
            tracking_number=v.tracking_number,
            status=v.status,
            promised_date=v.promised_date,
            eta=v.eta,
            lots=v.lots,
            events=events.get(v.shipment_id, []),
        )
        for v in views
    ]
    return OrderStatusView(
        order_id=order.id,
        customer_id=order.customer_id,
        status=order.status,
        outcome=order.outcome,
        lines=[OrderLinePublic.model_validate(line) for line in lines],
        shipments=shipments,
        timeline=_timeline_for(caller, timeline),
        workflow=await workflows.live_step(order_id) if live and caller.is_staff else None,
    )


# --- internal steps of the order-to-delivery workflow (idempotent) ------------------


@internal.post("/{order_id}/credit-hold", response_model=OrderPublic)
async def hold_for_credit(order_id: str, body: NoteIn, runtime: RuntimeDep, _: Service) -> Any:
    async with runtime.db.transaction() as session:
        order = await orders.for_update(session, order_id)
        await orders.hold_credit(session, runtime.source, order, body.detail)
        return _public(order)


@internal.post("/{order_id}/reserve", response_model=ReservationResult)
async def reserve(order_id: str, runtime: RuntimeDep, _: Service) -> Any:
    """Reserve what the order still misses (FEFO); backorder the rest. Answers every
    reservation the order holds."""
    async with runtime.db.transaction() as session:
        order = await orders.for_update(session, order_id)
        return await orders.reserve(session, runtime.source, order)


@internal.post("/{order_id}/drop-backorders", response_model=ReservationResult)
async def drop_backorders(order_id: str, runtime: RuntimeDep, _: Service) -> Any:
    """Ship what is reserved and give up on the rest (backorder timeout policy); answers
    the reservations that remain and, as `missing`, what was dropped."""
    async with runtime.db.transaction() as session:
        order = await orders.for_update(session, order_id)
        return await orders.drop_backorders(session, runtime.source, order)


@internal.post(
    "/{order_id}/issue",
    response_model=list[PickedLot],
    responses={
        409: {
            "description": "`backordered_at_pick`: a reserved lot expired and the "
            "warehouse cannot replace it; the order waits for the backorder"
        }
    },
)
async def issue(order_id: str, body: WarehouseRef, runtime: RuntimeDep, _: Service) -> Any:
    """Pick the reserved lots of one warehouse for its shipment (idempotent), each with
    its SKU's catalogue weight."""
    async with runtime.db.transaction() as session:
        order = await orders.for_update(session, order_id)
        picked = await orders.pick(session, runtime.source, order, body.warehouse_id)
    if picked.backordered:  # committed: the order now waits for the backorder
        raise Conflict(
            f"expired lots in {body.warehouse_id} could not be replaced; backordered "
            f"{', '.join(f'{m.quantity}x{m.sku}' for m in picked.backordered)}",
            code="backordered_at_pick",
        )
    return picked.lots


@internal.post("/{order_id}/unissue")
async def unissue(order_id: str, body: WarehouseRef, runtime: RuntimeDep, _: Service) -> Any:
    """Put back the lots of a shipment cancelled before dispatch (idempotent)."""
    async with runtime.db.transaction() as session:
        await orders.for_update(session, order_id)
        await stock.unissue(session, pick_reference(order_id, body.warehouse_id), runtime.source)
    return {"status": "ok"}


@internal.post("/{order_id}/restock", response_model=list[Allocation])
async def restock(order_id: str, body: WarehouseRef, runtime: RuntimeDep, _: Service) -> Any:
    """A shipment came back to the sender: its lots re-enter stock (idempotent)."""
    async with runtime.db.transaction() as session:
        await orders.for_update(session, order_id)
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
        order = await orders.for_update(session, order_id)
        await orders.cancel(session, runtime.source, order, body.reason)
        return _public(order)


@internal.post("/{order_id}/complete", response_model=OrderPublic)
async def complete(order_id: str, body: CompleteIn, runtime: RuntimeDep, _: Service) -> Any:
    async with runtime.db.transaction() as session:
        order = await orders.for_update(session, order_id)
        await orders.complete(session, runtime.source, order, body.outcome)
        return _public(order)


@internal.post(
    "/{order_id}/attention", response_model=OrderPublic, summary="A step failed for good"
)
async def need_attention(order_id: str, body: AttentionIn, runtime: RuntimeDep, _: Service) -> Any:
    """Releases reservations and backorders (the workflow put picked stock back first),
    `→ needs_attention` with a coordinator task; a repeat with the same key changes
    nothing."""
    async with runtime.db.transaction() as session:
        order = await orders.for_update(session, order_id)
        await orders.need_attention(
            session, runtime.source, order, body.reason, body.detail, body.key
        )
        return _public(order)


@internal.post("/{order_id}/notes", status_code=201)
async def add_note(order_id: str, body: NoteIn, runtime: RuntimeDep, _: Service) -> Any:
    """A workflow step worth showing on the order's timeline (e.g. a coordinator task)."""
    async with runtime.db.transaction() as session:
        await orders.for_update(session, order_id)
        note(session, order_id, body.kind, body.detail)
    return {"status": "ok"}


@internal.post("/{order_id}/tasks", status_code=201, response_model=TaskPublic)
async def add_task(
    order_id: str, body: TaskIn, runtime: RuntimeDep, _: Service, response: Response
) -> Any:
    """The workflow asks a coordinator to look at the order (e.g. a carrier exception);
    a task with the same key opens once (200 with the existing task)."""
    async with runtime.db.transaction() as session:
        await orders.for_update(session, order_id)
        task, new = await orders.open_task(session, order_id, body.kind, body.detail, body.key)
        if not new:
            response.status_code = 200
        return TaskPublic.model_validate(task)


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
