"""Idempotent consumers: duplicates change state once; poison ends on the dead-letter subject."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.bus import Bus
from services.common.db import Database
from services.common.envelope import Envelope
from services.common.events import PingRequested
from services.common.inbox import Handler, InboxConsumer
from services.common.migrate import upgrade_to_head
from services.common.tables import inbox
from services.order.models import Ping
from tests.harness import Databases, eventually


@pytest.fixture
async def order_db(databases: Databases) -> AsyncIterator[Database]:
    db = Database(await databases.new("order"))
    await upgrade_to_head(db, "order")
    yield db
    await db.dispose()


async def publish(bus: Bus, envelope: Envelope, msg_id: str | None = None) -> None:
    await bus.publish(
        envelope.nats_subject, envelope.model_dump_json().encode(), msg_id or envelope.id
    )


def ping_envelope(ping_id: str) -> Envelope:
    event = PingRequested(ping_id=ping_id, message="m")
    return Envelope.new(source="/tests", type=event.TYPE, subject=ping_id, data=event.model_dump())


async def run_consumer(consumer: InboxConsumer) -> asyncio.Task[None]:
    task = asyncio.create_task(consumer.run())
    await asyncio.sleep(0)
    return task


def store_ping(calls: list[str], fail_first: int = 0) -> Handler:
    """A handler that writes a row, and fails (after writing) on its first attempts."""

    async def handle(session: AsyncSession, event: Any, envelope: Envelope) -> None:
        calls.append(event.ping_id)
        session.add(
            Ping(
                id=event.ping_id,
                message=event.message,
                status="seen",
                requested_by="t",
                created_at=datetime.now(UTC),
            )
        )
        await session.flush()
        if len(calls) <= fail_first:
            raise RuntimeError("transient failure after the write")

    return handle


async def count_pings(db: Database) -> int:
    async with db.reading() as s:
        return int((await s.execute(sa.select(sa.func.count()).select_from(Ping))).scalar_one())


async def test_duplicate_delivery_changes_state_once(bus: Bus, order_db: Database) -> None:
    """The same event, stored twice on the stream, is handled once (inbox)."""
    await bus.ensure_domain_stream("order")
    await bus.ensure_deadletter_stream()
    calls: list[str] = []
    consumer = InboxConsumer(
        db=order_db,
        bus=bus,
        service="test",
        name="dupes",
        handlers={PingRequested: store_ping(calls)},
    )
    task = await run_consumer(consumer)
    envelope = ping_envelope(str(uuid.uuid4()))
    await publish(bus, envelope, msg_id="copy-1")
    await publish(bus, envelope, msg_id="copy-2")  # a second copy the stream does not dedupe
    marker = ping_envelope(str(uuid.uuid4()))
    await publish(bus, marker)
    await eventually(lambda: marker.subject in calls, message="marker handled")
    task.cancel()
    assert calls.count(envelope.subject) == 1
    assert await count_pings(order_db) == 2
    async with order_db.reading() as s:
        rows = (await s.execute(sa.select(inbox.c.event_id, inbox.c.consumer))).all()
    assert sorted(rows) == sorted([(envelope.id, "test-dupes"), (marker.id, "test-dupes")])


async def test_failed_attempt_rolls_back_with_its_inbox_row(bus: Bus, order_db: Database) -> None:
    """A handler that fails after writing is retried; its partial write never commits."""
    await bus.ensure_domain_stream("order")
    await bus.ensure_deadletter_stream()
    calls: list[str] = []
    consumer = InboxConsumer(
        db=order_db,
        bus=bus,
        service="test",
        name="retry",
        backoff_seconds=0.05,
        handlers={PingRequested: store_ping(calls, fail_first=2)},
    )
    task = await run_consumer(consumer)
    envelope = ping_envelope(str(uuid.uuid4()))
    await publish(bus, envelope)
    await eventually(lambda: len(calls) == 3, message="third attempt")
    await eventually(lambda: count_pings(order_db), message="row committed")
    task.cancel()
    assert await count_pings(order_db) == 1


async def test_poison_message_ends_on_dead_letter_with_its_error(
    bus: Bus, order_db: Database
) -> None:
    """A handler that always fails: bounded retries, then the dead-letter subject, with the
    error; the consumer goes on with the next message."""
    await bus.ensure_domain_stream("order")
    await bus.ensure_deadletter_stream()
    attempts: list[str] = []
    good: list[str] = []
    poison_id = str(uuid.uuid4())

    async def handle(session: AsyncSession, event: Any, envelope: Envelope) -> None:
        if event.ping_id == poison_id:
            attempts.append(event.ping_id)
            raise ValueError("cannot handle this one")
        good.append(event.ping_id)

    dlq = await bus.nc.subscribe("deadletter.test.poison")
    consumer = InboxConsumer(
        db=order_db,
        bus=bus,
        service="test",
        name="poison",
        max_deliver=3,
        backoff_seconds=0.05,
        handlers={PingRequested: handle},
    )
    task = await run_consumer(consumer)
    poison = ping_envelope(poison_id)
    await publish(bus, poison)
    after = ping_envelope(str(uuid.uuid4()))
    await publish(bus, after)
    parked = await dlq.next_msg(timeout=20)
    await eventually(lambda: after.subject in good, message="next message handled")
    task.cancel()
    assert len(attempts) == 3
    assert parked.headers["Waybill-Error"] == "ValueError: cannot handle this one"
    assert parked.headers["Waybill-Original-Subject"] == "order.ping.requested"
    assert parked.headers["Waybill-Deliveries"] == "3"
    assert Envelope.model_validate_json(parked.data).id == poison.id
    # Parked durably on the DEADLETTER stream, not only sent to live subscribers.
    stored = await bus.js.get_last_msg("DEADLETTER", "deadletter.test.poison")
    assert Envelope.model_validate_json(stored.data).id == poison.id
    async with order_db.reading() as s:
        ids = (await s.execute(sa.select(inbox.c.event_id))).scalars().all()
    assert poison.id not in ids


async def test_malformed_message_is_dead_lettered_at_once(bus: Bus, order_db: Database) -> None:
    await bus.ensure_domain_stream("order")
    await bus.ensure_deadletter_stream()
    dlq = await bus.nc.subscribe("deadletter.test.junk")
    consumer = InboxConsumer(
        db=order_db,
        bus=bus,
        service="test",
        name="junk",
        handlers={PingRequested: store_ping([])},
    )
    task = await run_consumer(consumer)
    await bus.publish("order.ping.requested", b"not json", "junk-1")
    parked = await dlq.next_msg(timeout=20)
    task.cancel()
    assert parked.data == b"not json"
    assert "not a CloudEvents envelope" in parked.headers["Waybill-Error"]
    assert parked.headers["Waybill-Deliveries"] == "1"
