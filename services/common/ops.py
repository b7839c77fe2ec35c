"""`/ops/messaging` on every service: outbox backlog, inbox totals, consumer lag."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends

from services.common.auth import Principal, Role, require
from services.common.deps import RuntimeDep
from services.common.tables import inbox, outbox

router = APIRouter(prefix="/ops", tags=["ops"])

Staff = Annotated[Principal, Depends(require(Role.OPS, Role.COORDINATOR))]


@router.get("/messaging", summary="Outbox backlog, inbox totals and consumer lag")
async def messaging(_: Staff, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.db.reading() as session:
        pending = (
            await session.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.min(outbox.c.created_at),
                    sa.func.max(outbox.c.attempts),
                ).where(outbox.c.published_at.is_(None))
            )
        ).one()
        processed = (
            await session.execute(
                sa.select(inbox.c.consumer, sa.func.count()).group_by(inbox.c.consumer)
            )
        ).all()
    oldest = pending[1]
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    consumers = []
    for worker in runtime.workers:
        entry: dict[str, Any] = {"name": worker.durable, "stream": worker.stream}
        try:
            info = await runtime.bus.js.consumer_info(worker.stream, worker.durable)
            entry.update(
                pending=info.num_pending,
                ack_pending=info.num_ack_pending,
                redelivered=info.num_redelivered,
            )
        except Exception as exc:
            entry["error"] = type(exc).__name__
        consumers.append(entry)
    return {
        "service": runtime.settings.service,
        "outbox": {
            "pending": pending[0],
            "oldest_pending_age_seconds": (
                (datetime.now(UTC) - oldest).total_seconds() if oldest else None
            ),
            "max_attempts": pending[2] or 0,
        },
        "inbox": {name: count for name, count in processed},
        "consumers": consumers,
        "deadletter_subject_prefix": f"deadletter.{runtime.settings.service}.",
    }
