"""The CloudEvents 1.0 envelope every Waybill event travels in (structured JSON mode)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.common import telemetry


def subject_of(event_type: str) -> str:
    """NATS subject for a versioned type: `order.order.placed.v1` -> `order.order.placed`."""
    head, _, tail = event_type.rpartition(".")
    return head if tail.startswith("v") and tail[1:].isdigit() else event_type


class Envelope(BaseModel):
    """CloudEvents attributes plus the `traceparent` and `correlationid` extensions."""

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    source: str
    type: str
    subject: str
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    datacontenttype: str = "application/json"
    data: dict[str, Any]
    traceparent: str | None = None
    tracestate: str | None = None
    correlationid: str | None = None

    @property
    def nats_subject(self) -> str:
        return subject_of(self.type)

    def trace_headers(self) -> dict[str, str]:
        headers = {}
        if self.traceparent:
            headers["traceparent"] = self.traceparent
        if self.tracestate:
            headers["tracestate"] = self.tracestate
        return headers

    @classmethod
    def new(
        cls,
        *,
        source: str,
        type: str,
        subject: str,
        data: dict[str, Any],
        correlation_id: str | None = None,
    ) -> Envelope:
        """An envelope stamped with the current trace context."""
        ctx = telemetry.inject()
        return cls(
            source=source,
            type=type,
            subject=subject,
            data=data,
            traceparent=ctx.get("traceparent"),
            tracestate=ctx.get("tracestate"),
            correlationid=correlation_id,
        )
