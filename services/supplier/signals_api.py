"""Signal routes: a supplier's signals, one signal, a coordinator's cancel, the periodic
review (role `service`; a Temporal schedule calls it), supplier proposals, the VMI
inventory view and webhook deliveries. A supplier sees its own only (another's: 404).
Routes stay thin: the rules are in `signals.py`, `vmi.py` and `webhooks.py`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.auth import Principal, Role, require
from services.common.deps import IdempotencyKey, RuntimeDep
from services.common.idempotency import run_idempotent
from services.common.statuses import SignalStatus
from services.supplier import signals as rules
from services.supplier import suppliers, vmi, webhooks
from services.supplier.schemas import (
    SUPPLIER_ID_PATTERN,
    CancelIn,
    DeliveryPage,
    InventoryOut,
    ProposalIn,
    ReviewIn,
    ReviewOut,
    SignalOut,
    SignalPage,
)
from services.supplier.webhooks import DeliveryStatus

SupplierId = Annotated[str, Path(pattern=SUPPLIER_ID_PATTERN)]
SignalId = Annotated[str, Path(max_length=36)]
Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(max_length=512)]
Coordinator = Annotated[Principal, Depends(require(Role.COORDINATOR))]
Reader = Annotated[
    Principal, Depends(require(Role.COORDINATOR, Role.OPS, Role.SERVICE, Role.SUPPLIER))
]
Supplier = Annotated[Principal, Depends(require(Role.SUPPLIER))]
Service = Annotated[Principal, Depends(require(Role.SERVICE))]

router = APIRouter(tags=["signals"])
internal = APIRouter(prefix="/internal/replenishment", tags=["replenishment (internal)"])

CURSOR_400: dict[int | str, dict[str, Any]] = {
    400: {"description": "`invalid_cursor`: not a `next_cursor` of this list"}
}


def _today() -> date:
    return datetime.now(UTC).date()


@router.get(
    "/suppliers/{supplier_id}/signals",
    response_model=SignalPage,
    summary="The supplier's replenishment signals, newest first (a supplier: its own)",
    responses=CURSOR_400,
)
async def list_signals(
    supplier_id: SupplierId,
    runtime: RuntimeDep,
    caller: Reader,
    status: SignalStatus | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> SignalPage:
    async with runtime.db.reading() as session:
        return await rules.page(
            session, caller, supplier_id, status=status, limit=limit, cursor=cursor
        )


@router.get("/signals/{signal_id}", response_model=SignalOut, summary="One signal")
async def get_signal(signal_id: SignalId, runtime: RuntimeDep, caller: Reader) -> SignalOut:
    async with runtime.db.reading() as session:
        return await rules.view(session, await rules.load(session, signal_id, caller), caller)


@router.post(
    "/signals/{signal_id}/cancel",
    response_model=SignalOut,
    summary="Dismiss an open signal (coordinator); the pair may signal again",
    responses={409: {"description": "`invalid_transition`: the signal is not open"}},
)
async def cancel_signal(
    signal_id: SignalId, body: CancelIn, runtime: RuntimeDep, caller: Coordinator
) -> SignalOut:
    async with runtime.db.transaction() as session:
        signal = await rules.load(session, signal_id, caller, lock=True)
        actor = rules.Actor(runtime.source, caller.subject)
        return await rules.view(
            session, await rules.cancel(session, actor, signal, body.reason), caller
        )


@router.post(
    "/suppliers/{supplier_id}/proposals",
    status_code=201,
    response_model=SignalOut,
    summary="The supplier proposes a replenishment of one of its pairs (within the policy)",
    responses={
        409: {"description": "`signal_open`: a signal of the pair is open"},
        422: {
            "description": "`not_supplied`, `no_policy`, `not_needed`, `quantity_exceeds_policy`"
        },
    },
)
async def propose(
    supplier_id: SupplierId,
    caller: Supplier,
    body: ProposalIn,
    runtime: RuntimeDep,
    key: IdempotencyKey,
) -> Any:
    async def create(session: AsyncSession) -> tuple[int, Any]:
        supplier = await suppliers.load(session, supplier_id, caller)
        actor = rules.Actor(runtime.source, caller.subject)
        signal = await rules.propose(session, actor, supplier, body, _today())
        return 201, (await rules.view(session, signal, caller)).model_dump(mode="json")

    return await run_idempotent(
        runtime.db,
        route="POST /suppliers/{id}/proposals",
        principal=caller,
        key=key,
        payload={"supplier_id": supplier_id, "body": body},
        action=create,
    )


@router.get(
    "/suppliers/{supplier_id}/inventory",
    response_model=InventoryOut,
    summary="Stock, position, forecast and demand of the supplier's items (VMI)",
)
async def inventory(supplier_id: SupplierId, runtime: RuntimeDep, caller: Reader) -> InventoryOut:
    async with runtime.db.reading() as session:
        supplier = await suppliers.load(session, supplier_id, caller)
        return await vmi.inventory(session, supplier, _today())


@router.get(
    "/suppliers/{supplier_id}/webhook-deliveries",
    response_model=DeliveryPage,
    summary="Webhook deliveries of the supplier's signals, newest first",
    responses=CURSOR_400,
)
async def list_deliveries(
    supplier_id: SupplierId,
    runtime: RuntimeDep,
    caller: Reader,
    status: DeliveryStatus | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> DeliveryPage:
    async with runtime.db.reading() as session:
        return await webhooks.page(
            session, caller, supplier_id, status=status, limit=limit, cursor=cursor
        )


@internal.post(
    "/review",
    response_model=ReviewOut,
    summary="Evaluate every periodic policy (or the pairs named) and raise what is needed",
)
async def review(runtime: RuntimeDep, caller: Service, body: ReviewIn | None = None) -> ReviewOut:
    actor = rules.Actor(runtime.source, rules.POLICY)
    pairs = body.pairs if body else None
    return await rules.run_review(runtime.db, actor, pairs, _today(), caller)


routers = [router, internal]
