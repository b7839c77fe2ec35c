"""Supplier service: Suppliers, replenishment signals, purchase orders and ASNs."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from services.common import ops
from services.common.app import Runtime, create_app
from services.common.tasks import supervise
from services.supplier import (
    forecast,
    handlers,
    purchase_orders_api,
    signals_api,
    suppliers_api,
)
from services.supplier.settings import SupplierSettings, get_settings
from services.supplier.webhooks import WebhookSender


def create(settings: SupplierSettings | None = None) -> FastAPI:
    settings = settings or get_settings()

    async def start(runtime: Runtime) -> None:
        """The forecasting library warmed up off the event loop, and the webhook sender,
        supervised like the outbox relay."""
        runtime.tasks.append(asyncio.create_task(asyncio.to_thread(forecast.warm_up)))
        if not settings.webhooks_enabled:
            return
        sender = WebhookSender(runtime.db, settings)
        runtime.db.commit_hooks.append(sender.commit_hook)
        runtime.tasks.append(asyncio.create_task(supervise("supplier webhook sender", sender.run)))

    return create_app(
        settings,
        title="Waybill supplier service",
        description="Suppliers, replenishment signals, purchase orders and ASNs.",
        routers=[
            *suppliers_api.routers,
            *signals_api.routers,
            *purchase_orders_api.routers,
            ops.router,
        ],
        workers=handlers.workers,
        consumes=["order", "returns"],
        on_start=start,
    )
