"""The request body size limit every service enforces (`max_body_bytes`, 1 MiB).

A `Content-Length` over the limit is refused before the route runs; a body without one
(chunked) is counted while it is read, and the read that crosses the limit fails with
413, so no request is ever held in memory past the limit.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.problems import PayloadTooLarge, problem_response


class BodyTooLarge(HTTPException):
    """Raised by the counting `receive`: FastAPI passes an `HTTPException` from the body
    read on unchanged (any other error there becomes a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request bodies are limited to {limit} bytes")


class BodyLimitMiddleware:
    """Answer 413 problem details for a body over `max_bytes` (plain ASGI)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        # A length with more digits than the limit is over it (and never reaches int()).
        if declared.isdigit() and (
            len(declared) > len(str(self.max_bytes)) or int(declared) > self.max_bytes
        ):
            response = problem_response(
                Request(scope),
                PayloadTooLarge.status,
                PayloadTooLarge.code,
                PayloadTooLarge.title,
                f"request bodies are limited to {self.max_bytes} bytes",
            )
            await response(scope, receive, send)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, counting_receive, send)
