"""Lot status and traceability routes (staff only).

Coordinators and Waybill processes (`service`: the recall workflow) set a lot's status;
coordinators, ops and processes read where a lot came from and where it went.
"""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.auth import Principal, Role, require
from services.common.deps import RuntimeDep
from services.common.pagination import decode_cursor, encode_cursor
from services.common.problems import NotFound
from services.common.statuses import SHIPMENT_NOT_DISPATCHED, LotStatus, ShipmentStatus
from services.order import lots
from services.order.models import Order, ShipmentView
from services.order.stock_api import tell_displaced_orders
from services.order.stock_models import StockAllocation, StockBalance, StockLot, StockMovement
from services.order.stock_schemas import (
    LOT_PATTERN,
    SKU_PATTERN,
    DisplacedPublic,
    LotDetail,
    LotStatusChange,
    LotStatusHistoryItem,
    LotStatusResult,
    LotTrace,
    LotWarehouse,
    TraceBackward,
    TraceConsignee,
    TraceForward,
    TraceOnHand,
    TraceReceipt,
)

Staff = Annotated[Principal, Depends(require(Role.COORDINATOR, Role.OPS, Role.SERVICE))]
StockWriter = Annotated[Principal, Depends(require(Role.COORDINATOR, Role.SERVICE))]
SkuPath = Annotated[str, Path(pattern=SKU_PATTERN)]
LotPath = Annotated[str, Path(pattern=LOT_PATTERN)]

lots_router = APIRouter(prefix="/stock/lots", tags=["stock"])
trace_router = APIRouter(prefix="/traceability", tags=["traceability"])
routers: list[APIRouter] = [lots_router, trace_router]


def _result(state: lots.LotState) -> LotStatusResult:
    return LotStatusResult(
        sku=state.sku,
        lot=state.lot,
        status=state.status,
        warehouses=[LotWarehouse.model_validate(b) for b in state.balances],
        reservations_moved=[DisplacedPublic.model_validate(d) for d in state.displaced],
    )


@lots_router.post(
    "/{sku}/{lot}/status",
    response_model=LotStatusResult,
    summary="Set a lot's status; leaving `released` moves its open reservations",
    responses={404: {"description": "The SKU does not exist"}},
)
async def set_lot_status(
    sku: SkuPath, lot: LotPath, body: LotStatusChange, runtime: RuntimeDep, caller: StockWriter
) -> LotStatusResult:
    """Only released lots are reserved or picked. Setting the status the lot already has
    changes nothing (and emits nothing)."""
    async with runtime.db.transaction() as session:
        state = await lots.set_status(
            session,
            sku=sku,
            lot=lot,
            status=body.status,
            reason=body.reason,
            recall_id=body.recall_id,
            actor=caller.subject,
            source=runtime.source,
        )
        await tell_displaced_orders(session, sku, lot, state.displaced, why=str(body.status))
        return _result(state)


@lots_router.get(
    "/{sku}/{lot}",
    response_model=LotDetail,
    summary="A lot's status, expiry, balances and status history",
    responses={404: {"description": "The SKU never had this lot"}},
)
async def get_lot(sku: SkuPath, lot: LotPath, runtime: RuntimeDep, _: Staff) -> LotDetail:
    async with runtime.db.reading() as session:
        state = await lots.read(session, sku, lot)
    expiries = {b.expiry for b in state.balances}
    return LotDetail(
        **_result(state).model_dump(),
        expiry=next(iter(expiries)) if len(expiries) == 1 else None,
        history=[LotStatusHistoryItem.model_validate(h) for h in state.history],
    )


# --- traceability ------------------------------------------------------------------------

A = StockAllocation
ISSUED = "issued"  # allocations issued to a shipment that did not come back
# An allocation is issued under the pick reference (order x warehouse); the shipment
# service's shipment of that order from that warehouse is the live (not cancelled) one.
_shipment_of_pick = sa.and_(
    ShipmentView.order_id == A.order_id,
    ShipmentView.warehouse_id == A.warehouse_id,
    ShipmentView.status != ShipmentStatus.CANCELLED,
)


async def _forward(
    session: AsyncSession, lot: str, sku: str | None, limit: int, cursor: str | None
) -> TraceForward:
    """One page of consignees (one keyset query), with the lot's totals over all pages."""
    key = (A.shipment_id, A.line_no, A.sku)
    query = (
        sa.select(
            *key,
            A.order_id,
            A.warehouse_id,
            sa.func.sum(A.quantity).label("quantity"),
            sa.func.max(A.updated_at).label("issued_at"),
            Order.customer_id,
            ShipmentView.shipment_id.label("view_id"),
            ShipmentView.status,
            ShipmentView.delivered_at,
        )
        .join(Order, Order.id == A.order_id)
        .outerjoin(ShipmentView, _shipment_of_pick)
        .where(A.lot == lot, A.status == ISSUED)
        .group_by(
            *key,
            A.order_id,
            A.warehouse_id,
            Order.customer_id,
            ShipmentView.shipment_id,
            ShipmentView.status,
            ShipmentView.delivered_at,
        )
        .order_by(*key)
        .limit(limit + 1)
    )
    if sku is not None:
        query = query.where(A.sku == sku)
    if cursor:
        shipment_id, line_no, after_sku = decode_cursor(cursor, str, int, str)
        query = query.where(
            sa.tuple_(A.shipment_id, A.line_no, A.sku)
            > sa.tuple_(sa.literal(shipment_id), sa.literal(line_no), sa.literal(after_sku))
        )
    rows = (await session.execute(query)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    consignees = []
    seen: set[tuple[str, int, str]] = set()
    for row in rows:
        if (row.shipment_id, row.line_no, row.sku) in seen:
            continue  # a shipment cancelled and made again, the first not yet seen cancelled
        seen.add((row.shipment_id, row.line_no, row.sku))
        status = row.status or ShipmentStatus.PENDING
        consignees.append(
            TraceConsignee(
                customer_id=row.customer_id,
                order_id=row.order_id,
                shipment_id=row.view_id or row.shipment_id,
                warehouse_id=row.warehouse_id,
                sku=row.sku,
                line_no=row.line_no,
                quantity=int(row.quantity),
                issued_at=row.issued_at,
                shipment_status=status,
                dispatched=status not in SHIPMENT_NOT_DISPATCHED,
                delivered_at=row.delivered_at,
            )
        )
    totals = (
        sa.select(
            sa.func.coalesce(sa.func.sum(A.quantity), 0),
            sa.func.count(sa.distinct(Order.customer_id)),
        )
        .join(Order, Order.id == A.order_id)
        .where(A.lot == lot, A.status == ISSUED)
    )
    if sku is not None:
        totals = totals.where(A.sku == sku)
    quantity, customers = (await session.execute(totals)).one()
    last = rows[-1] if rows else None
    return TraceForward(
        consignees=consignees,
        total_quantity=int(quantity),
        customers=int(customers),
        next_cursor=(
            encode_cursor(last.shipment_id, last.line_no, last.sku) if more and last else None
        ),
    )


@trace_router.get(
    "/lots/{lot}",
    response_model=LotTrace,
    summary="Where a lot came from (receipts) and went (shipments, orders, customers)",
    responses={
        400: {"description": "`invalid_cursor`: a cursor this route did not hand out"},
        404: {"description": "No SKU has this lot"},
    },
)
async def trace_lot(
    lot: LotPath,
    runtime: RuntimeDep,
    _: Staff,
    sku: Annotated[str | None, Query(pattern=SKU_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="consignees per page")] = 200,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> LotTrace:
    """Forward: every order line's quantity of the lot issued to a shipment (cancelled
    or returned-to-sender shipments excluded), keyset-paged; `dispatched` is false while
    the shipment may still be cancelled. Backward: the lot's receipts, with supplier and
    purchase reference."""
    async with runtime.db.reading() as session:
        balances_q = sa.select(StockBalance).where(StockBalance.lot == lot)
        if sku is not None:
            balances_q = balances_q.where(StockBalance.sku == sku)
        balances = list(
            await session.scalars(balances_q.order_by(StockBalance.sku, StockBalance.warehouse_id))
        )
        skus = sorted({b.sku for b in balances})
        if not skus:
            raise NotFound(f"no SKU has lot {lot}")
        statuses = {
            row.sku: LotStatus(row.status)
            for row in await session.scalars(
                sa.select(StockLot).where(StockLot.lot == lot, StockLot.sku.in_(skus))
            )
        }
        receipts_q = (
            sa.select(StockMovement)
            .where(StockMovement.lot == lot, StockMovement.kind == "receipt")
            .order_by(StockMovement.id)
        )
        if sku is not None:
            receipts_q = receipts_q.where(StockMovement.sku == sku)
        receipts = [
            TraceReceipt(
                sku=m.sku,
                warehouse_id=m.warehouse_id,
                quantity=m.quantity,
                received_at=m.created_at,
                supplier_id=m.supplier_id,
                purchase_reference=m.purchase_reference,
                reference=m.reference,
            )
            for m in await session.scalars(receipts_q)
        ]
        forward = await _forward(session, lot, sku, limit, cursor)
    return LotTrace(
        lot=lot,
        skus=skus,
        status={s: statuses.get(s, LotStatus.RELEASED) for s in skus},
        backward=TraceBackward(receipts=receipts),
        on_hand=[TraceOnHand.model_validate(b) for b in balances],
        forward=forward,
    )
