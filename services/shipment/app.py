"""Shipment service: Carriers, shipments per warehouse, packages, picked lots and tracking."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from services.common import ops
from services.common.app import Runtime, create_app
from services.shipment.api import routers
from services.shipment.carriers import Carriers
from services.shipment.carriers.simulated import SimulatedCarrier
from services.shipment.returns_api import routers as return_routers
from services.shipment.settings import ShipmentSettings, get_settings
from services.shipment.simulator import SimulatorFeeder


def create(settings: ShipmentSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    carriers = Carriers(settings)

    async def on_start(runtime: Runtime) -> None:
        simulated = carriers.get(SimulatedCarrier.code)
        if settings.simulator_enabled and isinstance(simulated, SimulatedCarrier):
            feeder = SimulatorFeeder(
                runtime.db,
                simulated,
                source=runtime.source,
                poll_seconds=settings.simulator_poll_seconds,
            )
            app.state.simulator = feeder
            runtime.tasks.append(asyncio.create_task(feeder.run(), name="simulated-carrier"))

    app = create_app(
        settings,
        title="Waybill shipment service",
        description="Carriers, shipments per warehouse, packages, picked lots and tracking.",
        routers=[*routers, *return_routers, ops.router],
        on_start=on_start,
    )
    app.state.carriers = carriers
    app.state.simulator = None
    return app
