"""Returns service: Return authorizations, receipts, inspections, dispositions and recalls."""

from __future__ import annotations

from fastapi import FastAPI

from services.common import ops
from services.common.app import create_app
from services.returns.settings import ReturnsSettings, get_settings


def create(settings: ReturnsSettings | None = None) -> FastAPI:
    return create_app(
        settings or get_settings(),
        title="Waybill returns service",
        description="Return authorizations, receipts, inspections, dispositions and recalls.",
        routers=[ops.router],
    )
