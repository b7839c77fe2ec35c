"""Order service routes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import telemetry
from services.common.auth import Principal, Role, require
from services.common.deps import IdempotencyKey, RuntimeDep
from services.common.events import PingAnswered, PingRequested
from services.common.idempotency import run_idempotent
from services.common.outbox import stage
from services.common.problems import NotFound
from services.order.models import Ping
from services.order.schemas import PingAnswer, PingCreate, PingPublic

diagnostics = APIRouter(prefix="/diagnostics", tags=["diagnostics"])


@diagnostics.post(
    "/pings",
    status_code=202,
    response_model=PingPublic,
    summary="Start a round trip through NATS, the bridge and a Temporal workflow",
)
async def create_ping(
    caller: Annotated[Principal, Depends(require(Role.OPS, Role.COORDINATOR))],
    body: PingCreate,
    runtime: RuntimeDep,
    key: IdempotencyKey,
) -> Any:
    async def create(session: AsyncSession) -> tuple[int, Any]:
        ping = Ping(
            id=str(uuid.uuid4()),
            message=body.message,
            status="requested",
            requested_by=caller.subject,
            trace_id=telemetry.current_trace_id(),
            created_at=datetime.now(UTC),
        )
        session.add(ping)
        await session.flush()
        await stage(
            session,
            runtime.source,
            PingRequested(ping_id=ping.id, message=ping.message),
            subject=ping.id,
        )
        return 202, PingPublic.model_validate(ping).model_dump(mode="json")

    return await run_idempotent(
        runtime.db,
        route="POST /diagnostics/pings",
        principal=caller,
        key=key,
        payload=body,
        action=create,
    )


@diagnostics.get("/pings/{ping_id}", response_model=PingPublic)
async def get_ping(
    ping_id: str,
    runtime: RuntimeDep,
    _: Annotated[Principal, Depends(require(Role.OPS, Role.COORDINATOR, Role.SERVICE))],
) -> Ping:
    async with runtime.db.reading() as session:
        ping = await session.get(Ping, ping_id)
    if ping is None:
        raise NotFound(f"ping {ping_id} not found")
    return ping


@diagnostics.post(
    "/pings/{ping_id}/answer",
    response_model=PingPublic,
    summary="Called by the ping workflow; answering twice changes nothing",
)
async def answer_ping(
    ping_id: str,
    body: PingAnswer,
    runtime: RuntimeDep,
    _: Annotated[Principal, Depends(require(Role.SERVICE))],
) -> Ping:
    async with runtime.db.transaction() as session:
        ping = await session.get(Ping, ping_id)
        if ping is None:
            raise NotFound(f"ping {ping_id} not found")
        if ping.status != "answered":
            ping.status = "answered"
            ping.workflow_id = body.workflow_id
            ping.answered_at = datetime.now(UTC)
            await stage(
                session,
                runtime.source,
                PingAnswered(ping_id=ping.id, workflow_id=body.workflow_id),
                subject=ping.id,
            )
    return ping
