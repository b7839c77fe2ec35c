"""NATS JetStream: connection, streams (one per domain), acknowledged publishing."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import PubAck, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from services.common.events import DEADLETTER_PREFIX, DEADLETTER_STREAM, stream_name
from services.common.settings import STREAM_RETENTION_DAYS

log = logging.getLogger(__name__)

DUPLICATE_WINDOW_SECONDS = 15 * 60
RETENTION_SECONDS = STREAM_RETENTION_DAYS * 24 * 3600


class Bus:
    """One process's NATS connection and JetStream context."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.name = name
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None

    async def connect(self) -> None:
        self._nc = await nats.connect(
            self.url,
            name=self.name,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=5,
            allow_reconnect=True,
        )
        self._js = self._nc.jetstream(timeout=10)

    @property
    def nc(self) -> NATS:
        if self._nc is None:
            raise RuntimeError("bus not connected")
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("bus not connected")
        return self._js

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def ready(self) -> bool:
        """NATS connected and JetStream answering."""
        if not self.connected:
            return False
        try:
            await self.js.account_info()
        except Exception:
            return False
        return True

    async def ensure_stream(self, name: str, subjects: list[str]) -> None:
        """Create the stream, or bring an existing one to this configuration."""
        config = StreamConfig(
            name=name,
            subjects=subjects,
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
            max_age=RETENTION_SECONDS,
        )
        try:
            info = await self.js.stream_info(name)
        except NotFoundError:
            try:
                await self.js.add_stream(config)
                return
            except Exception:
                info = await self.js.stream_info(name)  # another process won the race
        if sorted(info.config.subjects or []) != sorted(subjects):
            await self.js.update_stream(config)

    async def ensure_domain_stream(self, domain: str) -> None:
        await self.ensure_stream(stream_name(domain), [f"{domain}.>"])

    async def ensure_deadletter_stream(self) -> None:
        await self.ensure_stream(DEADLETTER_STREAM, [f"{DEADLETTER_PREFIX}.>"])

    async def publish(
        self, subject: str, payload: bytes, msg_id: str, headers: dict[str, Any] | None = None
    ) -> PubAck:
        """Publish and wait for the stream's ack; `msg_id` lets the stream drop duplicates."""
        hdrs = {"Nats-Msg-Id": msg_id, **(headers or {})}
        return await self.js.publish(subject, payload, headers=hdrs)

    async def close(self) -> None:
        """Flush and close. Not `drain()`: our consumers pull and ack explicitly and stop
        before this, so there is nothing in flight to drain (and draining an idle pull
        subscription waits for its timeout). A server already gone is no error here."""
        if self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(Exception):
                await self._nc.flush(timeout=2)
            with contextlib.suppress(ConnectionError, OSError):
                await self._nc.close()
        self._nc = None
        self._js = None
