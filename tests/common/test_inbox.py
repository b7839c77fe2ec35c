"""Idempotent consumers: duplicates change state once; poison ends on the dead-letter subject."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.bus import Bus
from services.common.db import Database
from services.common.envelope import Envelope
from services.common.events import PingRequested
from services.common.inbox import Handler, InboxConsumer, PermanentError
from services.common.tables import inbox
from services.order.models import Ping
from tests.harness import eventually


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


async def test_transient_failures_retry_past_any_attempt_limit(
    bus: Bus, order_db: Database
) -> None:
    """A dependency that refuses connections for longer than the unknown-error budget:
    the message is retried (back-off capped) until it passes, and nothing is parked."""
    await bus.ensure_domain_stream("order")
    await bus.ensure_deadletter_stream()
    attempts: list[int] = []

    async def handle(session: AsyncSession, event: Any, envelope: Envelope) -> None:
        attempts.append(1)
        if len(attempts) <= 8:
            raise ConnectionRefusedError(111, "Connection refused")

    consumer = InboxConsumer(
        db=order_db,
        bus=bus,
        service="test",
        name="outage",
        max_deliver=3,
        backoff_seconds=0.02,
        backoff_max_seconds=0.1,
        handlers={PingRequested: handle},
    )
    task = await run_consumer(consumer)
    envelope = ping_envelope(str(uuid.uuid4()))
    await publish(bus, envelope)
    await eventually(lambda: consumer.health.last_error, message="a failure noted")
    assert consumer.health.failing, "the failing message is counted as retrying"
    assert "ConnectionRefusedError" in (consumer.health.last_error or "")
    await eventually(lambda: len(attempts) == 9, message="ninth attempt succeeds")
    await eventually(lambda: not consumer.health.failing, message="no longer retrying")
    task.cancel()
    info = await bus.js.consumer_info("ORDER", "test-outage")
    assert info.config.max_deliver == -1
    assert consumer.health.dead_lettered == 0
    dlq = await bus.js.stream_info("DEADLETTER")
    assert dlq.state.messages == 0


@pytest.mark.parametrize("kind", ["permanent", "validation"])
async def test_permanent_failure_is_dead_lettered_at_once(
    bus: Bus, order_db: Database, kind: str
) -> None:
    """`PermanentError` or a pydantic ValidationError: one attempt, then the DLQ."""
    await bus.ensure_domain_stream("order")
    await bus.ensure_deadletter_stream()
    attempts: list[int] = []

    async def handle(session: AsyncSession, event: Any, envelope: Envelope) -> None:
        attempts.append(1)
        if kind == "permanent":
            raise PermanentError("never")
        PingRequested.model_validate({"ping_id": 5})

    dlq = await bus.nc.subscribe(f"deadletter.test.{kind}")
    consumer = InboxConsumer(
        db=order_db,
        bus=bus,
        service="test",
        name=kind,
        max_deliver=5,
        backoff_seconds=0.02,
        handlers={PingRequested: handle},
    )
    task = await run_consumer(consumer)
    await publish(bus, ping_envelope(str(uuid.uuid4())))
    parked = await dlq.next_msg(timeout=20)
    task.cancel()
    assert attempts == [1]
    assert parked.headers["Waybill-Deliveries"] == "1"
    assert parked.headers["Waybill-Failure"] == "permanent"
    assert parked.headers["Waybill-First-Failure"]


async def test_a_failure_holds_back_the_entitys_later_messages(
    bus: Bus, order_db: Database
) -> None:
    """Two events about one entity in one batch: while the first fails, the second
    waits, so the handler always sees them in stream order."""
    await bus.ensure_domain_stream("order")
    await bus.ensure_deadletter_stream()
    seen: list[str] = []
    failed: list[str] = []

    async def handle(session: AsyncSession, event: Any, envelope: Envelope) -> None:
        if envelope.data["message"] == "first" and len(failed) < 2:
            failed.append(envelope.id)
            raise TimeoutError("slow dependency")
        seen.append(envelope.data["message"])

    entity = str(uuid.uuid4())
    for message in ("first", "second"):
        event = PingRequested(ping_id=entity, message=message)
        await publish(
            bus,
            Envelope.new(source="/t", type=event.TYPE, subject=entity, data=event.model_dump()),
        )
    consumer = InboxConsumer(
        db=order_db,
        bus=bus,
        service="test",
        name="order",
        backoff_seconds=0.05,
        handlers={PingRequested: handle},
    )
    task = await run_consumer(consumer)
    await eventually(lambda: len(seen) == 2, message="both handled")
    task.cancel()
    assert seen == ["first", "second"]
