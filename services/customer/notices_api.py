"""Notice and interaction-log routes: what customers were sent, what failed, and the log.

Lists are newest first, keyset-paged on (created/occurred time, id).
"""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.auth import Principal, Role, require
from services.common.deps import RuntimeDep
from services.common.pagination import decode_time_cursor, encode_time_cursor
from services.common.problems import NotFound
from services.customer import notices
from services.customer.models import Customer, Interaction, Notice
from services.customer.schemas import (
    InteractionPage,
    InteractionPublic,
    NoticeKindName,
    NoticePage,
    NoticePublic,
    NoticeStatusName,
)

router = APIRouter(tags=["notices"])

Ops = Annotated[Principal, Depends(require(Role.COORDINATOR, Role.OPS))]
Coordinator = Annotated[Principal, Depends(require(Role.COORDINATOR))]
Staff = Annotated[Principal, Depends(require(Role.COORDINATOR, Role.OPS, Role.SERVICE))]
StaffOrCustomer = Annotated[
    Principal, Depends(require(Role.COORDINATOR, Role.OPS, Role.SERVICE, Role.CUSTOMER))
]
Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(max_length=200)]
CURSOR_400: dict[int | str, dict[str, Any]] = {
    400: {"description": "`cursor` is malformed (`invalid_cursor`)"}
}


async def _ensure_customer(session: AsyncSession, customer_id: str) -> None:
    if await session.get(Customer, customer_id) is None:
        raise NotFound(f"customer {customer_id} not found")


async def _newest_first(
    session: AsyncSession,
    model: Any,
    at: Any,
    clauses: list[sa.ColumnElement[bool]],
    limit: int,
    cursor: str | None,
) -> tuple[list[Any], str | None]:
    """One page of `model` rows, newest `at` first (then id), and the next page's cursor."""
    stmt = sa.select(model).where(*clauses)
    if cursor:
        after, row_id = decode_time_cursor(cursor)
        stmt = stmt.where(sa.or_(at < after, sa.and_(at == after, model.id < row_id)))
    stmt = stmt.order_by(at.desc(), model.id.desc()).limit(limit + 1)
    rows = list((await session.execute(stmt)).scalars())
    page = rows[:limit]
    if len(rows) <= limit or not page:
        return page, None
    last = page[-1]
    return page, encode_time_cursor(getattr(last, at.key), last.id)


async def _notice_page(
    session: AsyncSession,
    clauses: list[sa.ColumnElement[bool]],
    limit: int,
    cursor: str | None,
) -> NoticePage:
    page, next_cursor = await _newest_first(
        session, Notice, Notice.created_at, clauses, limit, cursor
    )
    return NoticePage(items=[NoticePublic.model_validate(n) for n in page], next_cursor=next_cursor)


@router.get(
    "/notices",
    response_model=NoticePage,
    summary="Notices of every customer, newest first (failed ones with their reason)",
    description="`status=failed` lists what could not be sent and why; `pending` what is "
    "waiting, with its attempts, last error and next attempt.",
    responses=CURSOR_400,
)
async def list_notices(
    runtime: RuntimeDep,
    _: Ops,
    status: NoticeStatusName | None = None,
    kind: NoticeKindName | None = None,
    customer_id: Annotated[str | None, Query(max_length=64)] = None,
    reference: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> NoticePage:
    clauses: list[sa.ColumnElement[bool]] = []
    if status is not None:
        clauses.append(Notice.status == status)
    if kind is not None:
        clauses.append(Notice.kind == kind)
    if customer_id is not None:
        clauses.append(Notice.customer_id == customer_id)
    if reference is not None:
        clauses.append(Notice.reference == reference)
    async with runtime.db.reading() as session:
        return await _notice_page(session, clauses, limit, cursor)


@router.get("/notices/{notice_id}", response_model=NoticePublic, summary="One notice")
async def get_notice(notice_id: str, runtime: RuntimeDep, _: Ops) -> Any:
    async with runtime.db.reading() as session:
        notice = await session.get(Notice, notice_id)
    if notice is None:
        raise NotFound(f"notice {notice_id} not found")
    return NoticePublic.model_validate(notice)


@router.post(
    "/notices/{notice_id}/retry",
    response_model=NoticePublic,
    summary="Send a failed notice again (after fixing the customer's address, say)",
    description="Renders it again for the customer as they are now (email, language) "
    "and makes it pending. 409 `notice_pending` or `notice_sent` when it is not failed.",
    responses={409: {"description": "`notice_pending` / `notice_sent`: not a failed notice"}},
)
async def retry_notice(notice_id: str, runtime: RuntimeDep, _: Coordinator) -> Any:
    async with runtime.db.transaction() as session:
        notice = await notices.requeue(session, notice_id)
        return NoticePublic.model_validate(notice)


@router.get(
    "/customers/{customer_id}/notices",
    response_model=NoticePage,
    summary="A customer's notices, newest first (staff, or the customer itself)",
    responses=CURSOR_400,
)
async def customer_notices(
    customer_id: str,
    runtime: RuntimeDep,
    caller: StaffOrCustomer,
    status: NoticeStatusName | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> NoticePage:
    caller.ensure_customer(customer_id, "customer")
    clauses = [Notice.customer_id == customer_id]
    if status is not None:
        clauses.append(Notice.status == status)
    async with runtime.db.reading() as session:
        await _ensure_customer(session, customer_id)
        return await _notice_page(session, clauses, limit, cursor)


@router.get(
    "/customers/{customer_id}/interactions",
    response_model=InteractionPage,
    summary="A customer's interaction log, newest first (staff)",
    description="Every contact with the customer: today the notices sent by email.",
    responses=CURSOR_400,
)
async def customer_interactions(
    customer_id: str,
    runtime: RuntimeDep,
    _: Staff,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> InteractionPage:
    clauses = [Interaction.customer_id == customer_id]
    async with runtime.db.reading() as session:
        await _ensure_customer(session, customer_id)
        page, next_cursor = await _newest_first(
            session, Interaction, Interaction.occurred_at, clauses, limit, cursor
        )
    return InteractionPage(
        items=[InteractionPublic.model_validate(i) for i in page], next_cursor=next_cursor
    )
