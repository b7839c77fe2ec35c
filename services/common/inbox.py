"""Idempotent JetStream consumers: retry what may pass, dead-letter what never will.

`InboxConsumer` records each processed event id in the service's `inbox` table in
the same transaction as the handler's writes, so a redelivery changes nothing.
A failing message is classified (`services.common.retry`): transient failures are
retried with capped exponential back-off (`nak(delay)`) for as long as it takes, and
the durable consumer has no delivery limit, so the server never drops one; permanent
ones go at once, and unknown ones after a bounded number of attempts, to
`deadletter.<service>.<consumer>` with the error, and are terminated. While a batch is
being handled every message of it still waiting is marked in progress, so a long
handler is not redelivered to a second worker. Messages about the same entity are
handled in stream order (a failure holds back the entity's later messages of the
batch); different entities are handled concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import telemetry
from services.common.bus import Bus
from services.common.context import correlation_id
from services.common.db import Database
from services.common.envelope import Envelope
from services.common.events import DEADLETTER_PREFIX, Event, parse, stream_name
from services.common.retry import Failure, PermanentError, RetryPolicy, classify
from services.common.tables import inbox

__all__ = ["DLH", "Handler", "InboxConsumer", "JetStreamWorker", "PermanentError", "claim"]

log = logging.getLogger(__name__)


class DLH:
    """Dead-letter headers: what failed, where, how often, and when it first failed."""

    ERROR = "Waybill-Error"
    FAILURE = "Waybill-Failure"
    SUBJECT = "Waybill-Original-Subject"
    CONSUMER = "Waybill-Consumer"
    DELIVERIES = "Waybill-Deliveries"
    STREAM = "Waybill-Stream"
    STREAM_SEQ = "Waybill-Stream-Seq"
    FIRST_FAILURE = "Waybill-First-Failure"
    # Only on the notice of a parked outbox row (whose body is a summary, not the event).
    OUTBOX_SEQ = "Waybill-Outbox-Seq"
    EVENT_ID = "Waybill-Event-Id"
    # On a replayed dead letter: the one consumer (durable name) it is meant for.
    REPLAY_FOR = "Waybill-Replay-For"


@dataclass
class _Failing:
    """A message that failed at least once and is not yet acked or dead-lettered."""

    published_at: datetime
    first_failure_at: datetime
    unknown_failures: int = 0


@dataclass
class ConsumerHealth:
    """What `/ops/messaging` shows of one worker beside the server's numbers."""

    failures: int = 0
    dead_lettered: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_error_event: str | None = None
    failing: dict[int, _Failing] = field(default_factory=dict)

    def oldest_unacked_age_seconds(self, now: datetime) -> float | None:
        """Age of the oldest message that is failing and still retried."""
        if not self.failing:
            return None
        oldest = min(f.published_at for f in self.failing.values())
        return max(0.0, (now - oldest).total_seconds())

    def as_dict(self) -> dict[str, Any]:
        return {
            "failures": self.failures,
            "dead_lettered": self.dead_lettered,
            "retrying": len(self.failing),
            "oldest_unacked_age_seconds": self.oldest_unacked_age_seconds(datetime.now(UTC)),
            "last_error": self.last_error,
            "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
            "last_error_event": self.last_error_event,
        }


class JetStreamWorker:
    """Pulls from one durable consumer and runs `process` per message, with retry and DLQ.

    `backoff_seconds`, `backoff_max_seconds` and `max_deliver` (the attempts an
    exception of unknown kind gets) make the `RetryPolicy` unless `retry` is given."""

    def __init__(
        self,
        *,
        bus: Bus,
        service: str,
        name: str,
        stream: str,
        subjects: list[str],
        max_deliver: int = 10,
        backoff_seconds: float = 0.5,
        backoff_max_seconds: float = 60.0,
        retry: RetryPolicy | None = None,
        fetch_batch: int = 64,
        ack_wait_seconds: float = 30.0,
    ) -> None:
        self.bus = bus
        self.service = service
        self.name = name
        self.stream = stream
        self.subjects = subjects
        self.retry = retry or RetryPolicy(
            initial_seconds=backoff_seconds,
            cap_seconds=backoff_max_seconds,
            unknown_attempts=max_deliver,
        )
        self.fetch_batch = fetch_batch
        self.ack_wait_seconds = ack_wait_seconds
        self.health = ConsumerHealth()
        self._tracer = telemetry.tracer("waybill.consumer")

    @property
    def durable(self) -> str:
        return f"{self.service}-{self.name}"

    @property
    def deadletter_subject(self) -> str:
        return f"{DEADLETTER_PREFIX}.{self.service}.{self.name}"

    async def process(self, envelope: Envelope, msg: Msg) -> None:
        raise NotImplementedError

    def consumer_config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.durable,
            name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            # Unlimited: we decide when a message is hopeless, never the server.
            max_deliver=-1,
            ack_wait=self.ack_wait_seconds,
            filter_subjects=self.subjects if len(self.subjects) > 1 else None,
            filter_subject=self.subjects[0] if len(self.subjects) == 1 else None,
            max_ack_pending=4096,
        )

    async def run(self) -> None:
        await self._ensure_consumer(self.consumer_config())
        sub = await self.bus.js.pull_subscribe_bind(durable=self.durable, stream=self.stream)
        while True:
            try:
                msgs = await sub.fetch(self.fetch_batch, timeout=1.0)
            except (TimeoutError, NatsTimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: fetch failed", self.durable)
                await asyncio.sleep(1.0)
                continue
            await self._handle_batch(msgs)

    async def _ensure_consumer(self, config: ConsumerConfig) -> None:
        """Create the durable consumer, or update it when its subjects or limits changed
        (a consumer created by an older version capped deliveries; now none is)."""
        try:
            info = await self.bus.js.consumer_info(self.stream, self.durable)
        except NotFoundError:
            pass
        else:
            have = sorted(info.config.filter_subjects or [info.config.filter_subject or ""])
            if (
                have == sorted(self.subjects)
                and info.config.max_deliver == config.max_deliver
                and info.config.ack_wait == config.ack_wait
            ):
                return
        await self.bus.js.add_consumer(self.stream, config=config)

    async def _handle_batch(self, msgs: list[Msg]) -> None:
        lanes: dict[str, list[tuple[Msg, Envelope | None]]] = {}
        for msg in msgs:
            try:
                envelope: Envelope | None = Envelope.model_validate_json(msg.data)
            except ValueError:
                envelope = None
            key = envelope.subject if envelope else f"raw:{msg.metadata.sequence.stream}"
            lanes.setdefault(key, []).append((msg, envelope))
        waiting = {id(msg): msg for msg in msgs}  # Msg is not hashable

        async def lane(items: list[tuple[Msg, Envelope | None]]) -> None:
            for i, (msg, envelope) in enumerate(items):
                delay = await self._handle(msg, envelope)
                waiting.pop(id(msg), None)
                if delay is not None:
                    # Keep the entity's order: its later messages wait for this one.
                    for later, _ in items[i + 1 :]:
                        waiting.pop(id(later), None)
                        with contextlib.suppress(Exception):
                            await later.nak(delay=delay)
                    return

        heartbeat = asyncio.create_task(self._keep_in_progress(waiting))
        try:
            await asyncio.gather(*(lane(items) for items in lanes.values()))
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _keep_in_progress(self, waiting: dict[int, Msg]) -> None:
        """Tell the server, every third of `ack_wait`, that the batch is still being
        worked on, so a slow handler's message is not handed to another worker."""
        while True:
            await asyncio.sleep(self.ack_wait_seconds / 3)
            for msg in list(waiting.values()):
                with contextlib.suppress(Exception):
                    await msg.in_progress()

    async def _handle(self, msg: Msg, envelope: Envelope | None) -> float | None:
        """Handle one message; the back-off delay when it was nak'ed, else None."""
        headers: Mapping[str, str] = msg.headers or {}
        if headers.get(DLH.REPLAY_FOR, self.durable) != self.durable:
            await msg.ack()  # a replay for another consumer of this subject
            return None
        with self._tracer.start_as_current_span(
            f"{msg.subject} process",
            context=telemetry.extract(headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.consumer.group.name": self.durable,
                "messaging.destination.name": msg.subject,
                "messaging.message.id": envelope.id if envelope else "",
                "messaging.nats.delivery": msg.metadata.num_delivered,
            },
        ) as span:
            if envelope is None:
                exc = PermanentError("not a CloudEvents envelope")
                self._note_failure(msg, "", exc)
                await self._dead_letter(msg, exc, Failure.PERMANENT)
                return None
            token = correlation_id.set(envelope.correlationid)
            try:
                await self.process(envelope, msg)
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                return await self._failed(msg, envelope, exc)
            finally:
                correlation_id.reset(token)
            self.health.failing.pop(msg.metadata.sequence.stream, None)
            await msg.ack()
            return None

    def _note_failure(self, msg: Msg, event_id: str, exc: BaseException) -> _Failing:
        now = datetime.now(UTC)
        self.health.failures += 1
        self.health.last_error = f"{type(exc).__name__}: {exc}"[:1000]
        self.health.last_error_at = now
        self.health.last_error_event = event_id
        return self.health.failing.setdefault(
            msg.metadata.sequence.stream, _Failing(msg.metadata.timestamp or now, now)
        )

    async def _failed(self, msg: Msg, envelope: Envelope, exc: Exception) -> float | None:
        failing = self._note_failure(msg, envelope.id, exc)
        kind = classify(exc)
        attempt = msg.metadata.num_delivered
        if kind is Failure.UNKNOWN:
            failing.unknown_failures += 1
        if self.retry.gives_up(kind, failing.unknown_failures):
            log.error(
                "%s: dead-lettering %s after %d attempts (%s): %r",
                self.durable,
                envelope.id,
                attempt,
                kind,
                exc,
            )
            await self._dead_letter(msg, exc, kind)
            return None
        delay = self.retry.delay(attempt)
        log.warning(
            "%s: attempt %d for %s failed (%s, %r); retry in %.1fs",
            self.durable,
            attempt,
            envelope.id,
            kind,
            exc,
            delay,
        )
        await msg.nak(delay=delay)
        return delay

    async def _dead_letter(self, msg: Msg, exc: BaseException, kind: Failure) -> None:
        failing = self.health.failing.pop(msg.metadata.sequence.stream, None)
        first = failing.first_failure_at if failing else datetime.now(UTC)
        headers = dict(msg.headers or {})
        headers.pop("Nats-Msg-Id", None)
        headers.update(
            {
                DLH.ERROR: f"{type(exc).__name__}: {exc}"[:4000],
                DLH.FAILURE: str(kind),
                DLH.SUBJECT: msg.subject,
                DLH.CONSUMER: self.durable,
                DLH.DELIVERIES: str(msg.metadata.num_delivered),
                DLH.STREAM: msg.metadata.stream,
                DLH.STREAM_SEQ: str(msg.metadata.sequence.stream),
                DLH.FIRST_FAILURE: first.isoformat(),
            }
        )
        headers.update(telemetry.inject())
        msg_id = f"{self.durable}:{msg.metadata.stream}:{msg.metadata.sequence.stream}"
        await self.bus.publish(self.deadletter_subject, msg.data, msg_id, headers=headers)
        self.health.dead_lettered += 1
        await msg.term()


Handler = Callable[[AsyncSession, Any, Envelope], Awaitable[None]]


class InboxConsumer(JetStreamWorker):
    """A worker whose handlers write to the service database exactly once per event."""

    def __init__(
        self,
        *,
        db: Database,
        handlers: dict[type[Event], Handler],
        **kwargs: Any,
    ) -> None:
        domains = {event.domain() for event in handlers}
        if len(domains) != 1:
            raise ValueError("one consumer reads one domain's stream")
        self.db = db
        self.handlers = {event.TYPE: handler for event, handler in handlers.items()}
        super().__init__(
            stream=stream_name(domains.pop()),
            subjects=sorted({event.subject() for event in handlers}),
            **kwargs,
        )

    async def process(self, envelope: Envelope, msg: Msg) -> None:
        handler = self.handlers.get(envelope.type)
        if handler is None:
            return  # a newer version or a type this consumer does not read
        try:
            event = parse(envelope)
        except ValueError as exc:
            raise PermanentError(f"payload does not match {envelope.type}: {exc}") from exc
        async with self.db.transaction() as session:
            if await claim(session, self.durable, envelope):
                await handler(session, event, envelope)


async def claim(session: AsyncSession, consumer: str, envelope: Envelope) -> bool:
    """Record the event as processed by `consumer`; False when it already was."""
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(inbox)
    stmt = insert.values(
        consumer=consumer,
        event_id=envelope.id,
        event_type=envelope.type,
        processed_at=datetime.now(UTC),
    ).on_conflict_do_nothing()
    result = await session.execute(stmt)
    return bool(result.rowcount)  # type: ignore[attr-defined]
