"""Supplier service: Suppliers, replenishment signals, purchase orders and ASNs."""

from __future__ import annotations

from fastapi import FastAPI

from services.common import ops
from services.common.app import create_app
from services.supplier.settings import SupplierSettings, get_settings


def create(settings: SupplierSettings | None = None) -> FastAPI:
    return create_app(
        settings or get_settings(),
        title="Waybill supplier service",
        description="Suppliers, replenishment signals, purchase orders and ASNs.",
        routers=[ops.router],
    )
