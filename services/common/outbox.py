"""Transactional outbox: events are rows written in the state change's transaction,
then relayed to JetStream until the stream acknowledges them.

A relay that dies between publish and marking the row re-publishes after restart;
the `Nats-Msg-Id` header (the event id) lets JetStream drop that duplicate.
Several replicas relaying the same rows are harmless for the same reason.
Events about one entity (the envelope's `subject`) reach the stream in commit order;
different entities are published concurrently.

Poison rows: `stage()` refuses an event bigger than `max_event_bytes` (below the NATS
server's `max_payload`) with a 422 `event_too_large`, so the request fails before its
commit. A row that still fails for good when published (the classes of
`services.common.retry`: too big for the server, refused by the stream) is *parked*:
marked (`last_error` starting with `parked: `, so no migration), shown on
`/ops/messaging`, announced on `deadletter.<service>.outbox` for `waybill deadletters`,
and skipped: the entity's later events and every other row go on. A transient failure
(NATS down, a timeout) keeps the row and its entity's later rows waiting, and retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import telemetry
from services.common.bus import Bus
from services.common.context import correlation_id
from services.common.db import Database
from services.common.envelope import Envelope
from services.common.events import DEADLETTER_PREFIX, Event
from services.common.faults import crash_point
from services.common.inbox import DLH
from services.common.problems import Unprocessable
from services.common.retry import Failure, classify
from services.common.settings import get_shared_settings
from services.common.tables import outbox

log = logging.getLogger(__name__)

WAKE_FLAG = "waybill_outbox_dirty"


PARKED = "parked: "


def is_pending() -> sa.ColumnElement[bool]:
    """Rows still to publish: not published, not parked."""
    return sa.and_(
        outbox.c.published_at.is_(None),
        sa.or_(outbox.c.last_error.is_(None), sa.not_(outbox.c.last_error.startswith(PARKED))),
    )


def is_parked() -> sa.ColumnElement[bool]:
    return sa.and_(outbox.c.published_at.is_(None), outbox.c.last_error.startswith(PARKED))


async def stage(
    session: AsyncSession,
    source: str,
    event: Event,
    *,
    subject: str,
    max_bytes: int | None = None,
    nats_subject: str | None = None,
) -> Envelope:
    """Write `event` about entity `subject` to the outbox in the caller's transaction;
    422 `event_too_large` when its envelope exceeds `max_bytes` (default: the
    `max_event_bytes` setting). The relay publishes it on its type's subject, or on
    `nats_subject` when given (a copy for one recipient, such as a supplier's own
    `supplier.<id>.signals`: stage it again, so the copy has an envelope id of its own
    and the stream does not drop it as a duplicate)."""
    envelope = Envelope.new(
        source=source,
        type=event.TYPE,
        subject=subject,
        data=event.model_dump(mode="json"),
        correlation_id=correlation_id.get(),
    )
    body = envelope.model_dump_json()
    limit = max_bytes if max_bytes is not None else get_shared_settings().max_event_bytes
    if len(body.encode()) > limit:
        raise Unprocessable(
            f"the {event.TYPE} event this request makes would be {len(body.encode())} bytes; "
            f"at most {limit} are allowed",
            code="event_too_large",
        )
    await session.execute(
        outbox.insert().values(
            event_id=envelope.id,
            subject=nats_subject or envelope.nats_subject,
            type=envelope.type,
            envelope=body,
            headers=envelope.trace_headers(),
            created_at=envelope.time,
        )
    )
    session.info[WAKE_FLAG] = True
    return envelope


class OutboxRelay:
    """Moves committed outbox rows to JetStream, oldest first, many in flight at once."""

    def __init__(
        self,
        db: Database,
        bus: Bus,
        *,
        service: str = "",
        batch: int = 256,
        poll_seconds: float = 0.5,
    ) -> None:
        self.db = db
        self.bus = bus
        self.service = service
        self.batch = batch
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._tracer = telemetry.tracer("waybill.outbox")

    def wake(self) -> None:
        """Called after a commit that staged events, so they leave without waiting a poll."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                moved = await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay pass failed; retrying")
                moved = 0
            if moved >= self.batch:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)

    async def relay_once(self) -> int:
        """Publish one batch of pending rows; returns how many were published."""
        async with self.db.reading() as session:
            rows = (
                await session.execute(
                    sa.select(
                        outbox.c.seq,
                        outbox.c.event_id,
                        outbox.c.subject,
                        outbox.c.envelope,
                        outbox.c.headers,
                        outbox.c.type,
                        outbox.c.attempts,
                        outbox.c.created_at,
                    )
                    .where(is_pending())
                    .order_by(outbox.c.seq)
                    .limit(self.batch)
                )
            ).all()
        if not rows:
            return 0
        crash_point("outbox.before_publish")
        lanes: dict[str, list[Any]] = {}
        for row in rows:
            lanes.setdefault(_entity(row.envelope), []).append(row)
        outcomes = await asyncio.gather(*(self._publish_lane(lane) for lane in lanes.values()))
        crash_point("outbox.after_publish")
        done = [seq for lane in outcomes for seq in lane.done]
        failed = [f for lane in outcomes for f in lane.failed]
        parked = [p for lane in outcomes for p in lane.parked]
        now = datetime.now(UTC)
        async with self.db.transaction() as session:
            if done:
                await session.execute(
                    outbox.update().where(outbox.c.seq.in_(done)).values(published_at=now)
                )
            for seq, err, prefix in [
                *((s, e, "") for s, e in failed),
                *((s, e, PARKED) for s, e in parked),
            ]:
                log.warning(
                    "outbox publish of row %s failed%s: %r", seq, " for good" if prefix else "", err
                )
                await session.execute(
                    outbox.update()
                    .where(outbox.c.seq == seq)
                    .values(
                        attempts=outbox.c.attempts + 1,
                        last_error=(prefix + f"{type(err).__name__}: {err}")[:2000],
                    )
                )
        return len(done) + len(parked)

    async def _publish_lane(self, rows: list[Any]) -> _Lane:
        """Publish one entity's events in order; stop at the first transient failure so a
        later event never overtakes an earlier one on the stream. A row that can never be
        published is parked (once its dead-letter notice is out) and the lane goes on."""
        lane = _Lane()
        for row in rows:
            try:
                await self._publish(row)
            except Exception as exc:
                if classify(exc) is not Failure.PERMANENT:
                    lane.failed.append((row.seq, exc))
                    return lane
                try:
                    await self._announce_parked(row, exc)
                except Exception as notice_exc:
                    lane.failed.append((row.seq, notice_exc))
                    return lane
                lane.parked.append((row.seq, exc))
                continue
            lane.done.append(row.seq)
        return lane

    async def _announce_parked(self, row: Any, exc: BaseException) -> None:
        """A small notice on `deadletter.<service>.outbox` (the event itself may be what
        is too big), so `waybill deadletters` lists the parked row."""
        now = datetime.now(UTC).isoformat()
        notice = {
            "outbox_seq": row.seq,
            "event_id": row.event_id,
            "type": row.type,
            "subject": row.subject,
            "bytes": len(row.envelope.encode()),
        }
        headers = {
            DLH.ERROR: f"{type(exc).__name__}: {exc}"[:4000],
            DLH.FAILURE: str(Failure.PERMANENT),
            DLH.SUBJECT: row.subject,
            DLH.CONSUMER: f"{self.service}-outbox",
            DLH.DELIVERIES: str(row.attempts + 1),
            DLH.FIRST_FAILURE: now,
            DLH.OUTBOX_SEQ: str(row.seq),
            DLH.EVENT_ID: row.event_id,
        }
        await self.bus.publish(
            f"{DEADLETTER_PREFIX}.{self.service}.outbox",
            json.dumps(notice).encode(),
            f"outbox:{self.service}:{row.event_id}",
            headers=headers,
        )

    async def _publish(self, row: Any) -> None:
        parent = telemetry.extract(row.headers)
        with self._tracer.start_as_current_span(
            f"{row.subject} publish",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "nats",
                "messaging.destination.name": row.subject,
                "messaging.message.id": row.event_id,
            },
        ) as span:
            headers = telemetry.inject()
            ack = await self.bus.publish(
                row.subject, row.envelope.encode(), row.event_id, headers=headers
            )
            span.set_attribute("messaging.nats.stream_seq", ack.seq)
            if ack.duplicate:
                span.set_attribute("messaging.nats.duplicate", True)


@dataclass
class _Lane:
    """What one entity's lane did in a pass."""

    done: list[int] = field(default_factory=list)
    failed: list[tuple[int, BaseException]] = field(default_factory=list)
    parked: list[tuple[int, BaseException]] = field(default_factory=list)


def _entity(envelope_json: str) -> str:
    """The entity an event is about (its CloudEvents `subject`): the ordering key."""
    try:
        return str(json.loads(envelope_json).get("subject", ""))
    except ValueError:
        return ""
