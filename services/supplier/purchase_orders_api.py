"""Purchase-order routes: lists and reads, a coordinator's approval, cancel and receipts,
the supplier's acknowledgement and ASN, the workflow's internal steps (role `service`,
repeat-safe, each answering the PO), a supplier's scorecard and vendor returns. A supplier
sees and acts on its own POs only (another's: 404). The rules are in
`purchase_orders.py`, `signals.py`, `scorecard.py` and `vendor_returns.py`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.auth import Principal, Role, require
from services.common.deps import IdempotencyKey, RuntimeDep
from services.common.idempotency import run_idempotent
from services.common.statuses import PurchaseOrderStatus
from services.supplier import purchase_orders as rules
from services.supplier import scorecard, signals, suppliers, vendor_returns
from services.supplier.schemas import (
    SKU_PATTERN,
    SUPPLIER_ID_PATTERN,
    WAREHOUSE_PATTERN,
    AcknowledgeIn,
    AsnIn,
    AttentionIn,
    PurchaseOrderOut,
    PurchaseOrderPage,
    ReasonIn,
    ReceiptIn,
    ScorecardOut,
    VendorReturnPage,
)

PoId = Annotated[str, Path(max_length=36)]
SupplierId = Annotated[str, Path(pattern=SUPPLIER_ID_PATTERN)]
Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(max_length=512)]
Reader = Annotated[
    Principal, Depends(require(Role.COORDINATOR, Role.OPS, Role.SERVICE, Role.SUPPLIER))
]
Coordinator = Annotated[Principal, Depends(require(Role.COORDINATOR))]
SupplierOrCoordinator = Annotated[Principal, Depends(require(Role.SUPPLIER, Role.COORDINATOR))]
Service = Annotated[Principal, Depends(require(Role.SERVICE))]

router = APIRouter(tags=["purchase orders"])
internal = APIRouter(prefix="/internal/purchase-orders", tags=["purchase orders (internal)"])

CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "`invalid_transition`: the PO's status forbids this step"}
}


def _today() -> date:
    return datetime.now(UTC).date()


def _actor(runtime: RuntimeDep, caller: Principal) -> rules.Actor:
    return rules.Actor(runtime.source, caller.subject)


@router.get(
    "/purchase-orders",
    response_model=PurchaseOrderPage,
    summary="Purchase orders, newest first (a supplier: its own)",
    responses={400: {"description": "`invalid_cursor`: not a `next_cursor` of this list"}},
)
async def list_purchase_orders(
    runtime: RuntimeDep,
    caller: Reader,
    supplier_id: Annotated[str | None, Query(pattern=SUPPLIER_ID_PATTERN)] = None,
    status: PurchaseOrderStatus | None = None,
    sku: Annotated[str | None, Query(pattern=SKU_PATTERN)] = None,
    warehouse_id: Annotated[str | None, Query(pattern=WAREHOUSE_PATTERN)] = None,
    attention: bool | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> PurchaseOrderPage:
    filters = rules.PoFilter(supplier_id, status, sku, warehouse_id, attention)
    async with runtime.db.reading() as session:
        return await rules.page(session, caller, filters, limit=limit, cursor=cursor)


@router.get("/purchase-orders/{po_id}", response_model=PurchaseOrderOut, summary="One PO")
async def get_purchase_order(po_id: PoId, runtime: RuntimeDep, caller: Reader) -> PurchaseOrderOut:
    async with runtime.db.reading() as session:
        return await rules.view(session, await rules.load(session, po_id, caller))


@router.post(
    "/purchase-orders/{po_id}/approve",
    response_model=PurchaseOrderOut,
    summary="Approve a PO waiting for approval (coordinator)",
    responses=CONFLICT,
)
async def approve(po_id: PoId, runtime: RuntimeDep, caller: Coordinator) -> PurchaseOrderOut:
    async with runtime.db.transaction() as session:
        po = await rules.load(session, po_id, caller, lock=True)
        return await rules.view(session, await rules.approve(session, _actor(runtime, caller), po))


@router.post(
    "/purchase-orders/{po_id}/acknowledge",
    response_model=PurchaseOrderOut,
    summary="The supplier confirms a quantity and a date",
    responses={
        **CONFLICT,
        422: {"description": "`quantity_exceeds_ordered`, `promised_date_in_past`"},
    },
)
async def acknowledge(
    po_id: PoId, body: AcknowledgeIn, runtime: RuntimeDep, caller: SupplierOrCoordinator
) -> PurchaseOrderOut:
    async with runtime.db.transaction() as session:
        po = await rules.load(session, po_id, caller, lock=True)
        actor = _actor(runtime, caller)
        return await rules.view(
            session, await rules.acknowledge(session, actor, po, body, _today())
        )


@router.post(
    "/purchase-orders/{po_id}/asn",
    response_model=PurchaseOrderOut,
    summary="The advance shipping notice: lots shipped and when they arrive",
    responses={
        **CONFLICT,
        422: {"description": "`asn_exceeds_acknowledged`, `duplicate_lot`, `expiry_in_past`"},
    },
)
async def asn(
    po_id: PoId,
    body: AsnIn,
    runtime: RuntimeDep,
    caller: SupplierOrCoordinator,
    key: IdempotencyKey,
) -> Any:
    async def create(session: AsyncSession) -> tuple[int, Any]:
        po = await rules.load(session, po_id, caller, lock=True)
        po = await rules.ship(session, _actor(runtime, caller), po, body, _today())
        return 200, (await rules.view(session, po)).model_dump(mode="json")

    return await run_idempotent(
        runtime.db,
        route="POST /purchase-orders/{id}/asn",
        principal=caller,
        key=key,
        payload={"po_id": po_id, "body": body},
        action=create,
    )


@router.post(
    "/purchase-orders/{po_id}/receipts",
    status_code=201,
    response_model=PurchaseOrderOut,
    summary="Goods received against a PO (coordinator); the order service books them",
    responses={
        **CONFLICT,
        422: {"description": "`quantity_exceeds_ordered`, `duplicate_lot`, `expiry_in_past`"},
    },
)
async def receipts(
    po_id: PoId, body: ReceiptIn, runtime: RuntimeDep, caller: Coordinator, key: IdempotencyKey
) -> Any:
    async def create(session: AsyncSession) -> tuple[int, Any]:
        po = await rules.load(session, po_id, caller, lock=True)
        await rules.receive(session, _actor(runtime, caller), po, body, _today())
        return 201, (await rules.view(session, po)).model_dump(mode="json")

    return await run_idempotent(
        runtime.db,
        route="POST /purchase-orders/{id}/receipts",
        principal=caller,
        key=key,
        payload={"po_id": po_id, "body": body},
        action=create,
    )


@router.post(
    "/purchase-orders/{po_id}/cancel",
    response_model=PurchaseOrderOut,
    summary="Reject or withdraw a PO before it ships (coordinator)",
    responses=CONFLICT,
)
async def cancel(
    po_id: PoId, body: ReasonIn, runtime: RuntimeDep, caller: Coordinator
) -> PurchaseOrderOut:
    async with runtime.db.transaction() as session:
        po = await rules.load(session, po_id, caller, lock=True)
        actor = _actor(runtime, caller)
        return await rules.view(session, await rules.cancel(session, actor, po, body.reason))


@internal.post(
    "/{po_id}/attention",
    response_model=PurchaseOrderOut,
    summary="Mark the PO for a coordinator's attention (repeat-safe)",
)
async def attention(
    po_id: PoId, body: AttentionIn, runtime: RuntimeDep, caller: Service
) -> PurchaseOrderOut:
    async with runtime.db.transaction() as session:
        po = await rules.load(session, po_id, caller, lock=True)
        po = await rules.need_attention(
            session, _actor(runtime, caller), po, body.reason, body.detail
        )
        return await rules.view(session, po)


@internal.post(
    "/{po_id}/close",
    response_model=PurchaseOrderOut,
    summary="Close a received PO (repeat-safe) and order a shortfall the position needs",
    responses=CONFLICT,
)
async def close(po_id: PoId, runtime: RuntimeDep, caller: Service) -> PurchaseOrderOut:
    async with runtime.db.transaction() as session:
        po = await rules.load(session, po_id, caller, lock=True)
        actor = signals.Actor(runtime.source, caller.subject)
        await signals.reorder_after_close(session, actor, po, _today())
        return await rules.view(session, po)


@router.get(
    "/suppliers/{supplier_id}/scorecard",
    response_model=ScorecardOut,
    summary="On time, fill rate, acknowledgement and lead times, vendor returns",
)
async def get_scorecard(
    supplier_id: SupplierId, runtime: RuntimeDep, caller: Reader
) -> ScorecardOut:
    async with runtime.db.reading() as session:
        await suppliers.load(session, supplier_id, caller)
        return await scorecard.scorecard(session, supplier_id)


@router.get(
    "/suppliers/{supplier_id}/vendor-returns",
    response_model=VendorReturnPage,
    summary="Returned goods credited back to the supplier, newest first",
    responses={400: {"description": "`invalid_cursor`: not a `next_cursor` of this list"}},
)
async def list_vendor_returns(
    supplier_id: SupplierId,
    runtime: RuntimeDep,
    caller: Reader,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> VendorReturnPage:
    async with runtime.db.reading() as session:
        await suppliers.load(session, supplier_id, caller)
        return await vendor_returns.page(session, supplier_id, limit=limit, cursor=cursor)


routers = [router, internal]
