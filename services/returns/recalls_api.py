"""Recall routes: campaigns, consignees and their responses, the status report, and the
Recall workflow's steps (`/internal/recalls/...`, role `service`). Rules: `recalls.py`."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query

from services.common.auth import Principal, Role, require
from services.common.deps import IdempotencyKey, RuntimeDep
from services.common.idempotency import run_idempotent
from services.common.pagination import decode_time_cursor, encode_time_cursor
from services.common.problems import NotFound
from services.common.statuses import RecallStatus
from services.returns import recalls
from services.returns.recall_models import Recall
from services.returns.recall_schemas import (
    AttentionIn,
    CloseIn,
    ConsigneePage,
    ConsigneePublic,
    RecallCreate,
    RecallPage,
    RecallPublic,
    Report,
    ResponseIn,
    TracePageIn,
    TracePageOut,
    recall_public,
)

Coordinator = Annotated[Principal, Depends(require(Role.COORDINATOR))]
Staff = Annotated[Principal, Depends(require(Role.COORDINATOR, Role.OPS, Role.SERVICE))]
Closer = Annotated[Principal, Depends(require(Role.COORDINATOR, Role.SERVICE))]
Responder = Annotated[Principal, Depends(require(Role.COORDINATOR, Role.CUSTOMER))]
Reader = Annotated[
    Principal, Depends(require(Role.COORDINATOR, Role.OPS, Role.SERVICE, Role.CUSTOMER))
]
Service = Annotated[Principal, Depends(require(Role.SERVICE))]
RecallId = Annotated[str, Path(min_length=1, max_length=36)]
CustomerId = Annotated[str, Path(min_length=1, max_length=64)]

router = APIRouter(prefix="/recalls", tags=["recalls"])
internal = APIRouter(prefix="/internal/recalls", tags=["internal"])


@router.post(
    "",
    status_code=201,
    response_model=RecallPublic,
    summary="Open a recall",
    responses={409: {"description": "`lot_already_recalled`: a campaign not yet closed has it"}},
)
async def open_recall(
    caller: Coordinator, body: RecallCreate, runtime: RuntimeDep, key: IdempotencyKey
) -> Any:
    async def create(session: Any) -> tuple[int, Any]:
        recall = await recalls.open_recall(session, runtime.source, body, opened_by=caller.subject)
        return 201, recall_public(recall)

    return await run_idempotent(
        runtime.db, route="POST /recalls", principal=caller, key=key, payload=body, action=create
    )


@router.get(
    "/{recall_id}",
    response_model=RecallPublic,
    summary="A recall (a customer sees only recalls of goods it received)",
)
async def get_recall(recall_id: RecallId, runtime: RuntimeDep, caller: Reader) -> Any:
    async with runtime.db.reading() as session:
        recall = await recalls.load(session, recall_id)
        if caller.role is Role.CUSTOMER and not await recalls.is_consignee(
            session, recall_id, caller.customer_id or ""
        ):
            raise NotFound(f"recall {recall_id} not found")
        return recall_public(recall)


@router.get("", response_model=RecallPage, summary="Recalls, newest first (keyset pagination)")
async def list_recalls(
    runtime: RuntimeDep,
    caller: Staff,
    status: RecallStatus | None = None,
    sku: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Any:
    query = sa.select(Recall).order_by(Recall.created_at.desc(), Recall.id.desc())
    if status is not None:
        query = query.where(Recall.status == status)
    if sku is not None:
        query = query.where(Recall.sku == sku)
    if cursor is not None:
        at, after = decode_time_cursor(cursor)
        query = query.where(sa.tuple_(Recall.created_at, Recall.id) < sa.tuple_(at, after))
    async with runtime.db.reading() as session:
        rows = list((await session.execute(query.limit(limit + 1))).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [recall_public(r) for r in rows],
        "next_cursor": encode_time_cursor(rows[-1].created_at, rows[-1].id) if more else None,
    }


@router.get("/{recall_id}/report", response_model=Report, summary="The status report, now")
async def get_report(recall_id: RecallId, runtime: RuntimeDep, caller: Staff) -> Any:
    async with runtime.db.reading() as session:
        recall = await recalls.load(session, recall_id)
        return (await recalls.report(session, recall)).model_dump(mode="json")


@router.get(
    "/{recall_id}/consignees",
    response_model=ConsigneePage,
    summary="The consignees table (a customer sees only its own rows)",
)
async def list_consignees(
    recall_id: RecallId,
    runtime: RuntimeDep,
    caller: Reader,
    customer_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Any:
    if caller.role is Role.CUSTOMER:
        if customer_id not in (None, caller.customer_id):
            raise NotFound(f"recall {recall_id} not found")
        customer_id = caller.customer_id
    async with runtime.db.reading() as session:
        await recalls.load(session, recall_id)
        items, next_cursor = await recalls.consignees(
            session, recall_id, customer_id=customer_id, limit=limit, cursor=cursor
        )
    if caller.role is Role.CUSTOMER and not items and cursor is None:
        raise NotFound(f"recall {recall_id} not found")
    return {"items": [i.model_dump(mode="json") for i in items], "next_cursor": next_cursor}


@router.post(
    "/{recall_id}/consignees/{customer_id}/response",
    response_model=ConsigneePublic,
    summary="A consignee's answer: returning, destroyed or none on hand",
)
async def respond(
    recall_id: RecallId,
    customer_id: CustomerId,
    body: ResponseIn,
    runtime: RuntimeDep,
    caller: Responder,
) -> Any:
    caller.ensure_customer(customer_id, f"consignee {customer_id}")
    async with runtime.db.transaction() as session:
        recall = await recalls.load(session, recall_id, lock=True)
        row = await recalls.respond(
            session, runtime.source, recall, customer_id, body, by=caller.subject
        )
        return (await recalls.consignee(session, row)).model_dump(mode="json")


@router.post("/{recall_id}/close", response_model=RecallPublic, summary="Close the recall")
async def close_recall(
    recall_id: RecallId, body: CloseIn, runtime: RuntimeDep, caller: Closer
) -> Any:
    async with runtime.db.transaction() as session:
        recall = await recalls.load(session, recall_id, lock=True)
        await recalls.close(session, runtime.source, recall, by=caller.subject, reason=body.reason)
        return recall_public(recall)


# --- the Recall workflow's steps --------------------------------------------------------


@internal.post(
    "/{recall_id}/trace-pages",
    response_model=TracePageOut,
    summary="One page of a lot's forward trace: consignees, recall returns, notices",
)
async def trace_page(
    recall_id: RecallId, body: TracePageIn, runtime: RuntimeDep, caller: Service
) -> Any:
    async with runtime.db.transaction() as session:
        recall = await recalls.load(session, recall_id, lock=True)
        out = await recalls.apply_trace_page(session, runtime.source, recall, body)
    return out.model_dump(mode="json")


@internal.post("/{recall_id}/fanned-out", response_model=RecallPublic)
async def fanned_out(recall_id: RecallId, runtime: RuntimeDep, caller: Service) -> Any:
    async with runtime.db.transaction() as session:
        recall = await recalls.load(session, recall_id, lock=True)
        await recalls.finish_fanout(session, recall)
        return recall_public(recall)


@internal.post("/{recall_id}/report", response_model=Report, summary="Compute and store the report")
async def store_report(recall_id: RecallId, runtime: RuntimeDep, caller: Service) -> Any:
    async with runtime.db.transaction() as session:
        recall = await recalls.load(session, recall_id, lock=True)
        return (await recalls.publish_report(session, recall)).model_dump(mode="json")


@internal.post("/{recall_id}/attention", response_model=RecallPublic)
async def attention(
    recall_id: RecallId, body: AttentionIn, runtime: RuntimeDep, caller: Service
) -> Any:
    async with runtime.db.transaction() as session:
        recall = await recalls.load(session, recall_id, lock=True)
        await recalls.need_attention(session, recall, body.reason)
        return recall_public(recall)
