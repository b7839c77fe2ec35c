"""Request-scoped values that follow a unit of work across HTTP, NATS and Temporal."""

from __future__ import annotations

import uuid
from contextvars import ContextVar

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

correlation_id: ContextVar[str | None] = ContextVar("waybill_correlation_id", default=None)

CORRELATION_HEADER = "X-Correlation-ID"


class CorrelationMiddleware:
    """Give every HTTP request a correlation id (the caller's `X-Correlation-ID`, or a new
    one), visible to the handler through `correlation_id` (events it stages carry it)
    and echoed on the response. Plain ASGI: Starlette's `BaseHTTPMiddleware` costs a
    task and a stream per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value = Headers(scope=scope).get(CORRELATION_HEADER) or str(uuid.uuid4())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[CORRELATION_HEADER] = value
            await send(message)

        token = correlation_id.set(value)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            correlation_id.reset(token)
