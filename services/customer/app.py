"""Customer service: Customers, contacts, credit, open-order exposure and notices."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from services.common import ops
from services.common.app import Runtime, create_app
from services.common.tasks import supervise
from services.customer.api import router
from services.customer.handlers import workers
from services.customer.mailer import NoticeSender
from services.customer.notices_api import router as notices_router
from services.customer.settings import CustomerSettings, get_settings


def create(settings: CustomerSettings | None = None) -> FastAPI:
    settings = settings or get_settings()

    async def start_sender(runtime: Runtime) -> None:
        """The notice sender, supervised like the outbox relay."""
        if not settings.notices_enabled:
            return
        sender = NoticeSender(runtime.db, settings, runtime.source)
        runtime.db.commit_hooks.append(sender.commit_hook)
        runtime.tasks.append(asyncio.create_task(supervise("customer notice sender", sender.run)))

    return create_app(
        settings,
        title="Waybill customer service",
        description="Customers, contacts, credit, open-order exposure and notices.",
        routers=[router, notices_router, ops.router],
        workers=workers,
        consumes=["order", "returns", "shipment"],
        on_start=start_sender,
    )
