"""Catalogue, warehouse and stock routes.

Anyone authenticated may read the catalogue; warehouses and stock are staff-only.
Coordinators maintain the catalogue and warehouses; coordinators and other Waybill
processes (`service`: recall, replenishment and receiving workflows) change stock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.auth import Principal, Role, require
from services.common.deps import IdempotencyKey, RuntimeDep
from services.common.idempotency import run_idempotent
from services.common.pagination import decode_cursor, encode_cursor
from services.common.problems import BadRequest, Conflict, NotFound
from services.order import stock
from services.order.gtin import to_gtin14
from services.order.models import Order
from services.order.orders import WAITING_ON_STOCK, note, open_task
from services.order.stock_models import (
    MOVEMENT_KINDS,
    Sku,
    StockBackorder,
    StockHold,
    StockMovement,
    Warehouse,
)
from services.order.stock_schemas import (
    AdjustmentCreate,
    AvailabilityList,
    BackorderPage,
    BackorderPublic,
    DisplacedPublic,
    HoldCreate,
    HoldPublic,
    HoldRelease,
    HoldResult,
    LotBalance,
    MovementPage,
    MovementPublic,
    ReceiptCreate,
    SkuCreate,
    SkuPage,
    SkuPublic,
    SkuUpdate,
    StockChangeResult,
    WarehouseCreate,
    WarehousePublic,
    WarehouseUpdate,
    dump,
)

AnyRole = Annotated[Principal, Depends(require(*Role))]
Staff = Annotated[Principal, Depends(require(Role.COORDINATOR, Role.OPS, Role.SERVICE))]
Coordinator = Annotated[Principal, Depends(require(Role.COORDINATOR))]
StockWriter = Annotated[Principal, Depends(require(Role.COORDINATOR, Role.SERVICE))]
Limit = Annotated[int, Query(ge=1, le=200, description="page size")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page")]

catalogue = APIRouter(prefix="/catalogue", tags=["catalogue"])
warehouses = APIRouter(prefix="/warehouses", tags=["warehouses"])
stock_router = APIRouter(prefix="/stock", tags=["stock"])
routers: list[APIRouter] = [catalogue, warehouses, stock_router]


async def _insert_unique(session: AsyncSession, row: Any, conflict: Conflict) -> None:
    """Insert `row`; a concurrent insert of the same key becomes `conflict`."""
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError as exc:
        raise conflict from exc


# --- catalogue -----------------------------------------------------------------------


@catalogue.post(
    "/skus",
    status_code=201,
    response_model=SkuPublic,
    summary="Add a SKU to the catalogue (409 `sku_exists` / `gtin_exists`)",
)
async def create_sku(
    body: SkuCreate, runtime: RuntimeDep, key: IdempotencyKey, caller: Coordinator
) -> Any:
    async def create(session: AsyncSession) -> tuple[int, Any]:
        taken = Conflict(f"SKU {body.code} already exists", code="sku_exists")
        if await session.get(Sku, body.code) is not None:
            raise taken
        gtin14 = to_gtin14(body.gtin) if body.gtin else None
        if gtin14 is not None:
            owner = await session.scalar(sa.select(Sku.code).where(Sku.gtin14 == gtin14))
            if owner is not None:
                raise Conflict(f"GTIN {body.gtin} belongs to SKU {owner}", code="gtin_exists")
        now = datetime.now(UTC)
        sku = Sku(
            code=body.code,
            gtin=body.gtin,
            gtin14=gtin14,
            name=body.name,
            unit_price=body.unit_price,
            currency=body.currency,
            weight_grams=body.weight_grams,
            shelf_life=body.shelf_life,
            category=body.category,
            created_at=now,
            updated_at=now,
        )
        await _insert_unique(session, sku, taken)
        return 201, dump(SkuPublic.model_validate(sku))

    return await run_idempotent(
        runtime.db,
        route="POST /catalogue/skus",
        principal=caller,
        key=key,
        payload=body,
        action=create,
    )


@catalogue.get("/skus", response_model=SkuPage, summary="The catalogue, by SKU code")
async def list_skus(
    runtime: RuntimeDep, _: AnyRole, limit: Limit = 50, cursor: Cursor = None
) -> SkuPage:
    query = sa.select(Sku).order_by(Sku.code).limit(limit + 1)
    if cursor:
        query = query.where(Sku.code > decode_cursor(cursor, str)[0])
    async with runtime.db.reading() as session:
        rows = list(await session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return SkuPage(
        items=[SkuPublic.model_validate(r) for r in rows],
        next_cursor=encode_cursor(rows[-1].code) if more else None,
    )


@catalogue.get("/skus/{sku}", response_model=SkuPublic)
async def get_sku(sku: str, runtime: RuntimeDep, _: AnyRole) -> Sku:
    async with runtime.db.reading() as session:
        row = await session.get(Sku, sku)
    if row is None:
        raise NotFound(f"SKU {sku} not found")
    return row


@catalogue.patch(
    "/skus/{sku}", response_model=SkuPublic, summary="Change a SKU's name, price or weight"
)
async def update_sku(sku: str, body: SkuUpdate, runtime: RuntimeDep, _: Coordinator) -> Sku:
    async with runtime.db.transaction() as session:
        row = await session.get(Sku, sku, with_for_update={"key_share": True})
        if row is None:
            raise NotFound(f"SKU {sku} not found")
        for name, value in body.model_dump(exclude_unset=True).items():
            setattr(row, name, value)
        row.updated_at = datetime.now(UTC)
    return row


# --- warehouses ----------------------------------------------------------------------


@warehouses.post(
    "",
    status_code=201,
    response_model=WarehousePublic,
    summary="Add a warehouse (409 `warehouse_exists`)",
)
async def create_warehouse(
    body: WarehouseCreate, runtime: RuntimeDep, key: IdempotencyKey, caller: Coordinator
) -> Any:
    async def create(session: AsyncSession) -> tuple[int, Any]:
        taken = Conflict(f"warehouse {body.id} already exists", code="warehouse_exists")
        if await session.get(Warehouse, body.id) is not None:
            raise taken
        now = datetime.now(UTC)
        warehouse = Warehouse(
            id=body.id,
            name=body.name,
            country=body.country,
            active=body.active,
            created_at=now,
            updated_at=now,
        )
        await _insert_unique(session, warehouse, taken)
        return 201, dump(WarehousePublic.model_validate(warehouse))

    return await run_idempotent(
        runtime.db,
        route="POST /warehouses",
        principal=caller,
        key=key,
        payload=body,
        action=create,
    )


@warehouses.get("", response_model=list[WarehousePublic])
async def list_warehouses(
    runtime: RuntimeDep, _: Staff, active: Annotated[bool | None, Query()] = None
) -> list[Warehouse]:
    query = sa.select(Warehouse).order_by(Warehouse.id)
    if active is not None:
        query = query.where(Warehouse.active.is_(active))
    async with runtime.db.reading() as session:
        return list(await session.scalars(query))


@warehouses.get("/{warehouse_id}", response_model=WarehousePublic)
async def get_warehouse(warehouse_id: str, runtime: RuntimeDep, _: Staff) -> Warehouse:
    async with runtime.db.reading() as session:
        row = await session.get(Warehouse, warehouse_id)
    if row is None:
        raise NotFound(f"warehouse {warehouse_id} not found")
    return row


@warehouses.patch(
    "/{warehouse_id}",
    response_model=WarehousePublic,
    summary="Rename or (de)activate; an inactive warehouse takes no receipts or reservations",
)
async def update_warehouse(
    warehouse_id: str, body: WarehouseUpdate, runtime: RuntimeDep, _: Coordinator
) -> Warehouse:
    async with runtime.db.transaction() as session:
        row = await session.get(Warehouse, warehouse_id)
        if row is None:
            raise NotFound(f"warehouse {warehouse_id} not found")
        if body.name is not None:
            row.name = body.name
            row.updated_at = datetime.now(UTC)
        if body.active is not None:
            await stock.set_warehouse_active(session, row, body.active, runtime.source)
    return row


# --- stock ---------------------------------------------------------------------------


def _change_result(change: stock.StockChange) -> dict[str, Any]:
    return dump(
        StockChangeResult(
            movement=MovementPublic.model_validate(change.movement),
            balance=LotBalance.model_validate(change.balance),
            backorders_filled=change.backorders_filled,
        )
    )


MAX_ROW_ID = 2**63 - 1


def _id_cursor(cursor: str) -> int:
    """A row-id cursor; ids beyond what the column holds were never handed out (400)."""
    [row_id] = decode_cursor(cursor, int)
    if not 0 <= row_id <= MAX_ROW_ID:
        raise BadRequest("cursor is not one this API handed out", code="invalid_cursor")
    return int(row_id)


def _hold_result(sku: str, lot: str, outcome: stock.HoldOutcome) -> HoldResult:
    return HoldResult(
        sku=sku,
        lot=lot,
        holds=[HoldPublic.model_validate(h) for h in outcome.holds],
        balances=[LotBalance.model_validate(b) for b in outcome.balances],
        backorders_filled=outcome.backorders_filled,
        reservations_moved=[DisplacedPublic.model_validate(d) for d in outcome.displaced],
    )


async def tell_displaced_orders(
    session: AsyncSession,
    sku: str,
    lot: str,
    displaced: list[stock.Displaced],
    why: str = "quarantined",
) -> None:
    """Say on each affected order's timeline what blocking the lot did to it. An order
    left short while it is not waiting on a backorder (it was about to ship) needs a
    coordinator: its shipment goes without the blocked units."""
    for item in displaced:
        order = await session.get(Order, item.order_id)
        if order is None:
            continue
        moved = item.quantity - item.short
        detail = (
            f"lot {lot} of {sku} {why}: {item.quantity} unit(s) of line {item.line_no} "
            f"taken off it; {moved} reserved from other lots, {item.short} backordered"
        )
        note(session, order.id, "quarantine", detail)
        if item.short and order.status not in WAITING_ON_STOCK:
            await open_task(session, order.id, "quarantine_short", detail)


@stock_router.post(
    "/receipts",
    status_code=201,
    response_model=StockChangeResult,
    summary="Book goods into a warehouse lot; fills open backorders of the SKU",
)
async def create_receipt(
    body: ReceiptCreate, runtime: RuntimeDep, key: IdempotencyKey, caller: StockWriter
) -> Any:
    async def create(session: AsyncSession) -> tuple[int, Any]:
        change = await stock.receive(
            session,
            warehouse_id=body.warehouse_id,
            sku=body.sku,
            lot=body.lot,
            expiry=body.expiry,
            quantity=body.quantity,
            reference=body.reference,
            supplier_id=body.supplier_id,
            purchase_reference=body.purchase_reference,
            actor=caller.subject,
            source=runtime.source,
        )
        return 201, _change_result(change)

    return await run_idempotent(
        runtime.db,
        route="POST /stock/receipts",
        principal=caller,
        key=key,
        payload=body,
        action=create,
    )


@stock_router.post(
    "/adjustments",
    status_code=201,
    response_model=StockChangeResult,
    summary="Correct a lot's on-hand quantity (409 `insufficient_stock` below reserved)",
)
async def create_adjustment(
    body: AdjustmentCreate, runtime: RuntimeDep, key: IdempotencyKey, caller: StockWriter
) -> Any:
    async def create(session: AsyncSession) -> tuple[int, Any]:
        change = await stock.adjust(
            session,
            warehouse_id=body.warehouse_id,
            sku=body.sku,
            lot=body.lot,
            delta=body.quantity_delta,
            reason=body.reason.value,
            note=body.note,
            actor=caller.subject,
            source=runtime.source,
        )
        return 201, _change_result(change)

    return await run_idempotent(
        runtime.db,
        route="POST /stock/adjustments",
        principal=caller,
        key=key,
        payload=body,
        action=create,
    )


@stock_router.post(
    "/holds",
    response_model=HoldResult,
    summary="Quarantine a lot (one warehouse or all); repeating it changes nothing",
)
async def create_hold(body: HoldCreate, runtime: RuntimeDep, caller: StockWriter) -> HoldResult:
    async with runtime.db.transaction() as session:
        outcome = await stock.hold(
            session,
            sku=body.sku,
            lot=body.lot,
            warehouse_id=body.warehouse_id,
            reason=body.reason,
            actor=caller.subject,
            source=runtime.source,
        )
        await tell_displaced_orders(session, body.sku, body.lot, outcome.displaced)
        return _hold_result(body.sku, body.lot, outcome)


@stock_router.post(
    "/holds/release",
    response_model=HoldResult,
    summary="Lift a lot's holds; the stock becomes available and fills backorders",
)
async def release_hold(body: HoldRelease, runtime: RuntimeDep, caller: StockWriter) -> HoldResult:
    async with runtime.db.transaction() as session:
        outcome = await stock.release_hold(
            session,
            sku=body.sku,
            lot=body.lot,
            warehouse_id=body.warehouse_id,
            actor=caller.subject,
            source=runtime.source,
        )
        return _hold_result(body.sku, body.lot, outcome)


@stock_router.get("/holds", response_model=list[HoldPublic])
async def list_holds(
    runtime: RuntimeDep,
    _: Staff,
    sku: str | None = None,
    lot: str | None = None,
    active: bool = True,
) -> list[StockHold]:
    query = sa.select(StockHold).order_by(StockHold.id)
    if sku is not None:
        query = query.where(StockHold.sku == sku)
    if lot is not None:
        query = query.where(StockHold.lot == lot)
    if active:
        query = query.where(StockHold.released_at.is_(None))
    async with runtime.db.reading() as session:
        return list(await session.scalars(query))


@stock_router.get(
    "/availability",
    response_model=AvailabilityList,
    summary="On hand, reserved, held and available per SKU per warehouse, with lots",
    responses={
        400: {"description": "`filter_required`: neither `sku` nor `warehouse_id`"},
        404: {"description": "The SKU or warehouse does not exist"},
    },
)
async def get_availability(
    runtime: RuntimeDep,
    _: Staff,
    sku: str | None = None,
    warehouse_id: str | None = None,
) -> AvailabilityList:
    if sku is None and warehouse_id is None:
        raise BadRequest("give sku, warehouse_id or both", code="filter_required")
    async with runtime.db.reading() as session:
        if sku is not None and await session.get(Sku, sku) is None:
            raise NotFound(f"SKU {sku} not found")
        if warehouse_id is not None and await session.get(Warehouse, warehouse_id) is None:
            raise NotFound(f"warehouse {warehouse_id} not found")
        return AvailabilityList(items=await stock.availability(session, sku, warehouse_id))


@stock_router.get(
    "/movements", response_model=MovementPage, summary="The stock ledger, newest first"
)
async def list_movements(
    runtime: RuntimeDep,
    _: Staff,
    sku: str | None = None,
    warehouse_id: str | None = None,
    lot: str | None = None,
    order_id: str | None = None,
    shipment_id: str | None = None,
    kind: Annotated[str | None, Query(pattern=f"^({'|'.join(MOVEMENT_KINDS)})$")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> MovementPage:
    query = sa.select(StockMovement).order_by(StockMovement.id.desc()).limit(limit + 1)
    filters = {
        StockMovement.sku: sku,
        StockMovement.warehouse_id: warehouse_id,
        StockMovement.lot: lot,
        StockMovement.order_id: order_id,
        StockMovement.shipment_id: shipment_id,
        StockMovement.kind: kind,
    }
    for column, value in filters.items():
        if value is not None:
            query = query.where(column == value)
    if cursor:
        query = query.where(StockMovement.id < _id_cursor(cursor))
    async with runtime.db.reading() as session:
        rows = list(await session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return MovementPage(
        items=[MovementPublic.model_validate(r) for r in rows],
        next_cursor=encode_cursor(rows[-1].id) if more else None,
    )


@stock_router.get("/backorders", response_model=BackorderPage, summary="Backorders, oldest first")
async def list_backorders(
    runtime: RuntimeDep,
    _: Staff,
    sku: str | None = None,
    order_id: str | None = None,
    status: Annotated[str | None, Query(pattern="^(open|filled|cancelled)$")] = "open",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> BackorderPage:
    query = sa.select(StockBackorder).order_by(StockBackorder.id).limit(limit + 1)
    if sku is not None:
        query = query.where(StockBackorder.sku == sku)
    if order_id is not None:
        query = query.where(StockBackorder.order_id == order_id)
    if status is not None:
        query = query.where(StockBackorder.status == status)
    if cursor:
        query = query.where(StockBackorder.id > _id_cursor(cursor))
    async with runtime.db.reading() as session:
        rows = list(await session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return BackorderPage(
        items=[BackorderPublic.model_validate(r) for r in rows],
        next_cursor=encode_cursor(rows[-1].id) if more else None,
    )
