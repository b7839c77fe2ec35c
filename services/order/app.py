"""Order service: catalogue, lot-aware stock ledger, reservations, orders and their status."""

from __future__ import annotations

from fastapi import FastAPI

from services.common import ops
from services.common.app import create_app
from services.order import handlers, lots_api, orders_api, stock_api
from services.order.api import diagnostics
from services.order.settings import OrderSettings, get_settings


def create(settings: OrderSettings | None = None) -> FastAPI:
    return create_app(
        settings or get_settings(),
        title="Waybill order service",
        description="Catalogue, lot-aware stock ledger, reservations and orders.",
        routers=[
            orders_api.router,
            *stock_api.routers,
            *lots_api.routers,
            orders_api.tasks,
            orders_api.internal,
            orders_api.replacements,
            diagnostics,
            ops.router,
        ],
        workers=handlers.workers,
        consumes=["shipment", "returns", "supplier"],
    )
