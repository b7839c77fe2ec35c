"""Shipment service: Carriers, shipments per warehouse, packages, picked lots and tracking."""

from __future__ import annotations

from fastapi import FastAPI

from services.common import ops
from services.common.app import create_app
from services.shipment.settings import ShipmentSettings, get_settings


def create(settings: ShipmentSettings | None = None) -> FastAPI:
    return create_app(
        settings or get_settings(),
        title="Waybill shipment service",
        description="Carriers, shipments per warehouse, packages, picked lots and tracking.",
        routers=[ops.router],
    )
