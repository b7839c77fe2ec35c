"""Customer service: Customers, contacts, credit and open-order exposure."""

from __future__ import annotations

from fastapi import FastAPI

from services.common import ops
from services.common.app import create_app
from services.customer.api import router
from services.customer.handlers import workers
from services.customer.settings import CustomerSettings, get_settings


def create(settings: CustomerSettings | None = None) -> FastAPI:
    return create_app(
        settings or get_settings(),
        title="Waybill customer service",
        description="Customers, contacts, credit and open-order exposure.",
        routers=[router, ops.router],
        workers=workers,
        consumes=["order"],
    )
