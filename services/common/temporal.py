"""Temporal client and worker interceptors: trace context and the correlation id.

OpenTelemetry's interceptor carries the trace; `CorrelationInterceptor` carries the
correlation id the same way, as a Temporal header: from whoever starts, signals or
updates a workflow (the bridge, inside a consumer of the order's event; a service, inside
an HTTP request), to the workflow, to every activity it starts, where it is set again so
the activity's HTTP calls (and so the events they stage) carry it. One order thus keeps
one correlation id through every service and workflow step.

The workflow half runs in the workflow sandbox: it imports nothing but temporalio.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

import temporalio.activity
import temporalio.api.common.v1
import temporalio.client
import temporalio.converter
import temporalio.worker
from temporalio.contrib.opentelemetry import TracingInterceptor

HEADER = "waybill-correlation-id"
_converter = temporalio.converter.PayloadConverter.default

Headers = Mapping[str, temporalio.api.common.v1.Payload]


def _context() -> ContextVar[str | None]:
    # Imported late: the workflow sandbox never needs it (see the module docstring).
    from services.common.context import correlation_id

    return correlation_id


def _with(headers: Headers, value: str | None) -> dict[str, temporalio.api.common.v1.Payload]:
    out = dict(headers)
    if value and HEADER not in out:
        out[HEADER] = _converter.to_payloads([value])[0]
    return out


def _read(headers: Headers) -> str | None:
    payload = headers.get(HEADER)
    if payload is None:
        return None
    value = _converter.from_payloads([payload])[0]
    return value if isinstance(value, str) else None


class CorrelationInterceptor(temporalio.client.Interceptor, temporalio.worker.Interceptor):
    """Put on every client (it then also serves the worker built from that client)."""

    def intercept_client(
        self, next: temporalio.client.OutboundInterceptor
    ) -> temporalio.client.OutboundInterceptor:
        return _ClientOutbound(next)

    def intercept_activity(
        self, next: temporalio.worker.ActivityInboundInterceptor
    ) -> temporalio.worker.ActivityInboundInterceptor:
        return _ActivityInbound(next)

    def workflow_interceptor_class(
        self, input: temporalio.worker.WorkflowInterceptorClassInput
    ) -> type[temporalio.worker.WorkflowInboundInterceptor]:
        return _WorkflowInbound


def interceptors() -> list[Any]:
    """What every Waybill Temporal client is built with."""
    return [TracingInterceptor(), CorrelationInterceptor()]


class _ClientOutbound(temporalio.client.OutboundInterceptor):
    async def start_workflow(
        self, input: temporalio.client.StartWorkflowInput
    ) -> temporalio.client.WorkflowHandle[Any, Any]:
        input.headers = _with(input.headers, _context().get())
        return await super().start_workflow(input)

    async def signal_workflow(self, input: temporalio.client.SignalWorkflowInput) -> None:
        input.headers = _with(input.headers, _context().get())
        await super().signal_workflow(input)

    async def start_workflow_update(
        self, input: temporalio.client.StartWorkflowUpdateInput
    ) -> temporalio.client.WorkflowUpdateHandle[Any]:
        input.headers = _with(input.headers, _context().get())
        return await super().start_workflow_update(input)


class _ActivityInbound(temporalio.worker.ActivityInboundInterceptor):
    async def execute_activity(self, input: temporalio.worker.ExecuteActivityInput) -> Any:
        value = _read(input.headers)
        if value is None:
            return await super().execute_activity(input)
        var = _context()
        token = var.set(value)
        try:
            return await super().execute_activity(input)
        finally:
            var.reset(token)


class _WorkflowInbound(temporalio.worker.WorkflowInboundInterceptor):
    """Remembers the id the workflow was started with and hands it to its activities."""

    correlation: str | None = None

    def init(self, outbound: temporalio.worker.WorkflowOutboundInterceptor) -> None:
        super().init(_WorkflowOutbound(outbound, self))

    async def execute_workflow(self, input: temporalio.worker.ExecuteWorkflowInput) -> Any:
        self.correlation = _read(input.headers)
        return await super().execute_workflow(input)


class _WorkflowOutbound(temporalio.worker.WorkflowOutboundInterceptor):
    def __init__(
        self, next: temporalio.worker.WorkflowOutboundInterceptor, root: _WorkflowInbound
    ) -> None:
        super().__init__(next)
        self.root = root

    def start_activity(
        self, input: temporalio.worker.StartActivityInput
    ) -> temporalio.workflow.ActivityHandle[Any]:
        input.headers = _with(input.headers, self.root.correlation)
        return super().start_activity(input)

    def start_local_activity(
        self, input: temporalio.worker.StartLocalActivityInput
    ) -> temporalio.workflow.ActivityHandle[Any]:
        input.headers = _with(input.headers, self.root.correlation)
        return super().start_local_activity(input)
