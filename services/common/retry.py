"""Which failures are worth retrying, and how long to wait before the next attempt.

Every consumer (and the bridge) classifies a handler's exception:

    Failure.TRANSIENT   a dependency is down or slow: connection refused/reset, a timeout,
                        Temporal UNAVAILABLE / DEADLINE_EXCEEDED / RESOURCE_EXHAUSTED, a
                        database OperationalError or lost connection, a 5xx (or 408/425/429)
                        from a service, a NATS error. Retried with capped back-off for as
                        long as it takes: the outage ends, the message goes through.
    Failure.PERMANENT   the message itself is wrong: `PermanentError`, a payload that does
                        not parse (pydantic `ValidationError`), a 4xx from a service, a
                        Temporal INVALID_ARGUMENT. Dead-lettered at once.
    Failure.UNKNOWN     anything else (most likely a bug in a handler). Retried a bounded
                        number of times (`unknown_attempts`), then dead-lettered, where it
                        waits for the fix and a replay.

The exception's causes (`__cause__`, `__context__`) count too: SQLAlchemy wraps a
refused connection in its own error, a handler may wrap it in another.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import httpx
import nats.errors
import nats.js.errors
import pydantic
import sqlalchemy.exc
from temporalio.service import RPCError, RPCStatusCode


class PermanentError(Exception):
    """A message that can never succeed: dead-letter it without further retries."""


class Failure(enum.StrEnum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    UNKNOWN = "unknown"


_TRANSIENT_RPC = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
    RPCStatusCode.ABORTED,
    RPCStatusCode.CANCELLED,
}
_PERMANENT_RPC = {RPCStatusCode.INVALID_ARGUMENT}
_RETRYABLE_4XX = {408, 425, 429}


def _one(exc: BaseException) -> Failure:
    """The class of one exception, not looking at its causes."""
    if isinstance(exc, PermanentError | pydantic.ValidationError):
        return Failure.PERMANENT
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        if status >= 500 or status in _RETRYABLE_4XX:
            return Failure.TRANSIENT
        return Failure.PERMANENT if 400 <= status < 500 else Failure.UNKNOWN
    if isinstance(exc, RPCError):
        if exc.status in _TRANSIENT_RPC:
            return Failure.TRANSIENT
        return Failure.PERMANENT if exc.status in _PERMANENT_RPC else Failure.UNKNOWN
    if isinstance(exc, nats.errors.MaxPayloadError | nats.js.errors.BadRequestError):
        return Failure.PERMANENT
    if isinstance(
        exc,
        ConnectionError
        | TimeoutError
        | httpx.TransportError
        | nats.errors.Error
        | sqlalchemy.exc.OperationalError
        | sqlalchemy.exc.InterfaceError
        | sqlalchemy.exc.DisconnectionError
        | sqlalchemy.exc.TimeoutError,
    ):
        return Failure.TRANSIENT
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return Failure.TRANSIENT
    if isinstance(exc, OSError) and exc.errno is not None:
        return Failure.TRANSIENT  # socket-level errors: unreachable host, broken pipe
    return Failure.UNKNOWN


def classify(exc: BaseException) -> Failure:
    """TRANSIENT if anything in the chain is; else PERMANENT if anything is; else UNKNOWN."""
    seen: set[int] = set()
    found = Failure.UNKNOWN
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        kind = _one(current)
        if kind is Failure.TRANSIENT:
            return kind
        if kind is Failure.PERMANENT:
            found = kind
        current = current.__cause__ or current.__context__
    return found


@dataclass(frozen=True)
class RetryPolicy:
    """Back-off `initial · 2^(n-1)` capped at `cap` seconds; UNKNOWN failures give up
    after `unknown_attempts`, TRANSIENT ones never."""

    initial_seconds: float = 0.5
    cap_seconds: float = 60.0
    unknown_attempts: int = 10

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt `attempt + 1` (`attempt` counts from 1)."""
        exponent = min(max(attempt - 1, 0), 32)  # 2^32 · anything is past every cap
        return float(min(self.cap_seconds, self.initial_seconds * 2**exponent))

    def gives_up(self, failure: Failure, attempt: int) -> bool:
        """Whether the `attempt`-th failure of this kind ends on the dead-letter stream."""
        if failure is Failure.PERMANENT:
            return True
        return failure is Failure.UNKNOWN and attempt >= self.unknown_attempts
