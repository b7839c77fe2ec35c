"""Idempotent JetStream consumers with bounded retries and a dead-letter subject.

`InboxConsumer` records each processed event id in the service's `inbox` table in
the same transaction as the handler's writes, so a redelivery changes nothing.
A failing message is retried with exponential back-off (`nak(delay)`); after the
last attempt it is published to `deadletter.<service>.<consumer>` with the error
and terminated. Messages about the same entity are handled in stream order;
different entities are handled concurrently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
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
from services.common.tables import inbox

log = logging.getLogger(__name__)


class PermanentError(Exception):
    """A message that can never succeed: dead-letter it without further retries."""


class JetStreamWorker:
    """Pulls from one durable consumer and runs `process` per message, with retry and DLQ."""

    def __init__(
        self,
        *,
        bus: Bus,
        service: str,
        name: str,
        stream: str,
        subjects: list[str],
        max_deliver: int = 5,
        backoff_seconds: float = 0.5,
        fetch_batch: int = 64,
        ack_wait_seconds: float = 30.0,
    ) -> None:
        self.bus = bus
        self.service = service
        self.name = name
        self.stream = stream
        self.subjects = subjects
        self.max_deliver = max_deliver
        self.backoff_seconds = backoff_seconds
        self.fetch_batch = fetch_batch
        self.ack_wait_seconds = ack_wait_seconds
        self._tracer = telemetry.tracer("waybill.consumer")

    @property
    def durable(self) -> str:
        return f"{self.service}-{self.name}"

    @property
    def deadletter_subject(self) -> str:
        return f"{DEADLETTER_PREFIX}.{self.service}.{self.name}"

    async def process(self, envelope: Envelope, msg: Msg) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            # The server's cap is a backstop; we terminate after our own last attempt.
            max_deliver=self.max_deliver + 1,
            ack_wait=self.ack_wait_seconds,
            filter_subjects=self.subjects if len(self.subjects) > 1 else None,
            filter_subject=self.subjects[0] if len(self.subjects) == 1 else None,
            max_ack_pending=4096,
        )
        await self._ensure_consumer(config)
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
        """Create the durable consumer, or update it when its subjects changed."""
        try:
            info = await self.bus.js.consumer_info(self.stream, self.durable)
        except NotFoundError:
            pass
        else:
            have = sorted(info.config.filter_subjects or [info.config.filter_subject or ""])
            if have == sorted(self.subjects):
                return
        config.name = self.durable
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

        async def lane(items: list[tuple[Msg, Envelope | None]]) -> None:
            for msg, envelope in items:
                await self._handle(msg, envelope)

        await asyncio.gather(*(lane(items) for items in lanes.values()))

    async def _handle(self, msg: Msg, envelope: Envelope | None) -> None:
        headers: Mapping[str, str] = msg.headers or {}
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
                await self._dead_letter(msg, PermanentError("not a CloudEvents envelope"))
                return
            token = correlation_id.set(envelope.correlationid)
            try:
                await self.process(envelope, msg)
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                attempt = msg.metadata.num_delivered
                if isinstance(exc, PermanentError) or attempt >= self.max_deliver:
                    log.error(
                        "%s: giving up on %s after %d attempts: %r",
                        self.durable,
                        envelope.id,
                        attempt,
                        exc,
                    )
                    await self._dead_letter(msg, exc)
                else:
                    delay = self.backoff_seconds * 2 ** (attempt - 1)
                    log.warning(
                        "%s: attempt %d for %s failed (%r); retry in %.1fs",
                        self.durable,
                        attempt,
                        envelope.id,
                        exc,
                        delay,
                    )
                    await msg.nak(delay=delay)
                return
            finally:
                correlation_id.reset(token)
            await msg.ack()

    async def _dead_letter(self, msg: Msg, exc: BaseException) -> None:
        headers = dict(msg.headers or {})
        headers.pop("Nats-Msg-Id", None)
        headers.update(
            {
                "Waybill-Error": f"{type(exc).__name__}: {exc}"[:4000],
                "Waybill-Original-Subject": msg.subject,
                "Waybill-Consumer": self.durable,
                "Waybill-Deliveries": str(msg.metadata.num_delivered),
                "Waybill-Stream-Seq": str(msg.metadata.sequence.stream),
            }
        )
        headers.update(telemetry.inject())
        msg_id = f"{self.durable}:{msg.metadata.stream}:{msg.metadata.sequence.stream}"
        await self.bus.publish(self.deadletter_subject, msg.data, msg_id, headers=headers)
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
