"""Transactional outbox: events are rows written in the state change's transaction,
then relayed to JetStream until the stream acknowledges them.

A relay that dies between publish and marking the row re-publishes after restart;
the `Nats-Msg-Id` header (the event id) lets JetStream drop that duplicate.
Several replicas relaying the same rows are harmless for the same reason.
Events about one entity (the envelope's `subject`) reach the stream in commit order;
different entities are published concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
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
from services.common.events import Event
from services.common.faults import crash_point
from services.common.tables import outbox

log = logging.getLogger(__name__)

WAKE_FLAG = "waybill_outbox_dirty"


async def stage(session: AsyncSession, source: str, event: Event, *, subject: str) -> Envelope:
    """Write `event` about entity `subject` to the outbox in the caller's transaction."""
    envelope = Envelope.new(
        source=source,
        type=event.TYPE,
        subject=subject,
        data=event.model_dump(mode="json"),
        correlation_id=correlation_id.get(),
    )
    await session.execute(
        outbox.insert().values(
            event_id=envelope.id,
            subject=envelope.nats_subject,
            type=envelope.type,
            envelope=envelope.model_dump_json(),
            headers=envelope.trace_headers(),
            created_at=envelope.time,
        )
    )
    session.info[WAKE_FLAG] = True
    return envelope


class OutboxRelay:
    """Moves committed outbox rows to JetStream, oldest first, many in flight at once."""

    def __init__(
        self, db: Database, bus: Bus, *, batch: int = 256, poll_seconds: float = 0.5
    ) -> None:
        self.db = db
        self.bus = bus
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
                    )
                    .where(outbox.c.published_at.is_(None))
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
        done = [seq for lane_done, _ in outcomes for seq in lane_done]
        failed = [f for _, lane_failed in outcomes for f in lane_failed]
        now = datetime.now(UTC)
        async with self.db.transaction() as session:
            if done:
                await session.execute(
                    outbox.update().where(outbox.c.seq.in_(done)).values(published_at=now)
                )
            for seq, err in failed:
                log.warning("outbox publish of row %s failed: %r", seq, err)
                await session.execute(
                    outbox.update()
                    .where(outbox.c.seq == seq)
                    .values(attempts=outbox.c.attempts + 1, last_error=repr(err)[:2000])
                )
        return len(done)

    async def _publish_lane(
        self, rows: list[Any]
    ) -> tuple[list[int], list[tuple[int, BaseException]]]:
        """Publish one entity's events in order; stop at the first failure so a later
        event never overtakes an earlier one on the stream."""
        done: list[int] = []
        for row in rows:
            try:
                await self._publish(row)
            except Exception as exc:
                return done, [(row.seq, exc)]
            done.append(row.seq)
        return done, []

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


def _entity(envelope_json: str) -> str:
    """The entity an event is about (its CloudEvents `subject`): the ordering key."""
    try:
        return str(json.loads(envelope_json).get("subject", ""))
    except ValueError:
        return ""
