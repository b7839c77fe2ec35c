"""`/ops` on every service: messaging (outbox backlog and parked rows, inbox totals,
consumer lag and errors) and the dead letters (list, show, replay, discard)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from services.common.auth import Principal, Role, require
from services.common.bus import Bus
from services.common.deadletters import MAX_ID, DeadLetters
from services.common.deps import RuntimeDep
from services.common.inbox import JetStreamWorker
from services.common.outbox import PARKED, is_parked, is_pending
from services.common.tables import inbox, outbox

router = APIRouter(prefix="/ops", tags=["ops"])

PARKED_SHOWN = 100  # parked outbox rows listed on /ops/messaging, oldest first

Staff = Annotated[Principal, Depends(require(Role.OPS, Role.COORDINATOR))]


async def consumer_stats(bus: Bus, workers: Sequence[JetStreamWorker]) -> list[dict[str, Any]]:
    """Per consumer: the server's pending, ack-pending and redelivered counts, and the
    worker's own failures, messages retrying, oldest of them, and last error."""
    consumers = []
    for worker in workers:
        entry: dict[str, Any] = {"name": worker.durable, "stream": worker.stream}
        try:
            info = await bus.js.consumer_info(worker.stream, worker.durable)
            entry.update(
                pending=info.num_pending,
                ack_pending=info.num_ack_pending,
                redelivered=info.num_redelivered,
            )
        except Exception as exc:
            entry["error"] = type(exc).__name__
        entry.update(worker.health.as_dict())
        consumers.append(entry)
    return consumers


@router.get("/messaging", summary="Outbox backlog, inbox totals and consumer lag")
async def messaging(_: Staff, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.db.reading() as session:
        pending = (
            await session.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.min(outbox.c.created_at),
                    sa.func.max(outbox.c.attempts),
                ).where(is_pending())
            )
        ).one()
        parked = (
            await session.execute(
                sa.select(
                    outbox.c.seq,
                    outbox.c.event_id,
                    outbox.c.type,
                    outbox.c.created_at,
                    outbox.c.attempts,
                    outbox.c.last_error,
                )
                .where(is_parked())
                .order_by(outbox.c.seq)
                .limit(PARKED_SHOWN)
            )
        ).all()
        processed = (
            await session.execute(
                sa.select(inbox.c.consumer, sa.func.count()).group_by(inbox.c.consumer)
            )
        ).all()
    oldest = pending[1]
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    consumers = await consumer_stats(runtime.bus, runtime.workers)
    return {
        "service": runtime.settings.service,
        "outbox": {
            "pending": pending[0],
            "oldest_pending_age_seconds": (
                (datetime.now(UTC) - oldest).total_seconds() if oldest else None
            ),
            "max_attempts": pending[2] or 0,
            "parked": [
                {
                    "seq": row.seq,
                    "event_id": row.event_id,
                    "type": row.type,
                    "created_at": row.created_at.isoformat(),
                    "attempts": row.attempts,
                    "error": row.last_error.removeprefix(PARKED),
                }
                for row in parked
            ],
        },
        "inbox": {name: count for name, count in processed},
        "consumers": consumers,
        "deadletter_subject_prefix": f"deadletter.{runtime.settings.service}.",
    }


def consumers_router(
    source: Callable[[], tuple[Bus | None, Sequence[JetStreamWorker]]],
) -> APIRouter:
    """`GET /ops/messaging` for a process with consumers but no database (the bridge);
    `source()` gives its bus (None before it is connected) and workers."""
    consumers_only = APIRouter(prefix="/ops", tags=["ops"])

    @consumers_only.get("/messaging", summary="Consumer lag and last errors")
    async def bridge_messaging(_: Staff) -> dict[str, Any]:
        bus, workers = source()
        return {"consumers": await consumer_stats(bus, workers) if bus else []}

    return consumers_only


OpsOnly = Annotated[Principal, Depends(require(Role.OPS))]
LetterId = Annotated[int, Path(ge=1, le=MAX_ID, description="the dead letter's stream sequence")]


class ReplayBySubject(BaseModel):
    subject: str = Field(min_length=1, max_length=255, description="original subject; wildcards")


class Discard(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


@router.get("/deadletters", summary="Dead letters, oldest first (open ones unless all)")
async def list_deadletters(
    _: OpsOnly,
    runtime: RuntimeDep,
    subject: Annotated[str | None, Query(max_length=255)] = None,
    all: bool = False,
) -> dict[str, Any]:
    letters = await DeadLetters(runtime.bus).find(subject=subject, all_states=all)
    return {"items": [letter.as_dict() for letter in letters]}


@router.get("/deadletters/{letter_id}", summary="One dead letter with its body and headers")
async def show_deadletter(_: OpsOnly, runtime: RuntimeDep, letter_id: LetterId) -> dict[str, Any]:
    return await DeadLetters(runtime.bus).show(letter_id)


@router.post("/deadletters/replay", summary="Replay every open dead letter of a subject")
async def replay_deadletters(
    who: OpsOnly, runtime: RuntimeDep, body: ReplayBySubject
) -> dict[str, Any]:
    letters = await DeadLetters(runtime.bus).replay_all(body.subject, who.subject)
    return {"items": [letter.as_dict() for letter in letters]}


@router.post("/deadletters/{letter_id}/replay", summary="Publish the original message again")
async def replay_deadletter(
    who: OpsOnly, runtime: RuntimeDep, letter_id: LetterId
) -> dict[str, Any]:
    return (await DeadLetters(runtime.bus).replay(letter_id, who.subject)).as_dict()


@router.post("/deadletters/{letter_id}/discard", summary="Close a dead letter, saying why")
async def discard_deadletter(
    who: OpsOnly, runtime: RuntimeDep, letter_id: LetterId, body: Discard
) -> dict[str, Any]:
    letter = await DeadLetters(runtime.bus).discard(letter_id, who.subject, body.reason)
    return letter.as_dict()
