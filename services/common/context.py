"""Request-scoped values that follow a unit of work across HTTP, NATS and Temporal."""

from __future__ import annotations

from contextvars import ContextVar

correlation_id: ContextVar[str | None] = ContextVar("waybill_correlation_id", default=None)

CORRELATION_HEADER = "X-Correlation-ID"
