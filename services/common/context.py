"""Request-scoped values that follow a unit of work across HTTP, NATS and Temporal."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

correlation_id: ContextVar[str | None] = ContextVar("waybill_correlation_id", default=None)

CORRELATION_HEADER = "X-Correlation-ID"

# What a caller's correlation id may be: it is copied into every event and Temporal header
# of the unit of work, so it is bounded (a UUID, a ticket number, a W3C trace id all fit).
CORRELATION_MAX_LENGTH = 128
_CORRELATION_ID = re.compile(rf"[A-Za-z0-9._:@/+=-]{{1,{CORRELATION_MAX_LENGTH}}}")


def accepted_correlation_id(value: str | None) -> str:
    """The caller's correlation id when it is usable, else a new one: longer than
    `CORRELATION_MAX_LENGTH` or with characters outside `[A-Za-z0-9._:@/+=-]` is ignored
    (not refused: the header is a diagnostic aid, and a proxy may set it)."""
    if value is not None and _CORRELATION_ID.fullmatch(value):
        return value
    return str(uuid.uuid4())


class CorrelationMiddleware:
    """Give every HTTP request a correlation id (the caller's `X-Correlation-ID` when
    `accepted_correlation_id` takes it, else a new one), visible to the handler through
    `correlation_id` (events it stages carry it) and echoed on the response. Plain ASGI:
    Starlette's `BaseHTTPMiddleware` costs a task and a stream per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value = accepted_correlation_id(Headers(scope=scope).get(CORRELATION_HEADER))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[CORRELATION_HEADER] = value
            await send(message)

        token = correlation_id.set(value)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            correlation_id.reset(token)
