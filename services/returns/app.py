"""Returns service: Return authorizations, receipts, inspections, dispositions and recalls."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI

from services.common import ops
from services.common.app import Runtime, create_app
from services.common.inbox import JetStreamWorker
from services.returns import delivered, recall_handlers, recalls_api, returns_api
from services.returns.settings import ReturnsSettings, get_settings


def workers(runtime: Runtime) -> Sequence[JetStreamWorker]:
    """Every consumer of the returns service (each part adds its own)."""
    return [*delivered.workers(runtime), *recall_handlers.workers(runtime)]


def create(settings: ReturnsSettings | None = None) -> FastAPI:
    return create_app(
        settings or get_settings(),
        title="Waybill returns service",
        description="Return authorizations, receipts, inspections, dispositions and recalls.",
        routers=[*returns_api.routers, recalls_api.router, recalls_api.internal, ops.router],
        workers=workers,
        consumes=["customer", "order", "shipment"],
    )
