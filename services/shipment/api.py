"""Shipment service routes: shipments, public tracking, carrier webhooks.

Routes stay thin: creation and cancellation rules live in `shipments.py`, tracking in
`domain.py`, carrier pushes in `webhooks.py`. `/shipments` answers outbound shipments
only; return shipments have `returns_api.py`. Public tracking and the simulation view
serve both.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.app import Runtime
from services.common.auth import Principal, Role, require
from services.common.deps import IdempotencyKey, RuntimeDep
from services.common.pagination import decode_time_cursor, encode_time_cursor
from services.common.problems import BadRequest, NotFound
from services.common.statuses import ShipmentStatus
from services.shipment import shipments as rules
from services.shipment import webhooks
from services.shipment.carriers import Carriers
from services.shipment.carriers.base import CarrierAdapter, CarrierError
from services.shipment.carriers.simulated import Scenario
from services.shipment.models import (
    OUTBOUND,
    Shipment,
    ShipmentLineLot,
    SimulatedEvent,
    TrackingEvent,
)
from services.shipment.schemas import (
    CancelIn,
    LocationOut,
    PlannedScanOut,
    PublicLocation,
    PublicTracking,
    PublicTrackingEvent,
    ShipmentCreate,
    ShipmentDetail,
    ShipmentPage,
    SimulationOut,
    WebhookResult,
)
from services.shipment.settings import ShipmentSettings
from services.shipment.simulator import SimulatorFeeder
from services.shipment.views import history, shipment_detail, shipment_out

Creator = Annotated[Principal, Depends(require(Role.SERVICE, Role.COORDINATOR))]
Reader = Annotated[
    Principal, Depends(require(Role.COORDINATOR, Role.OPS, Role.SERVICE, Role.CUSTOMER))
]
Staff = Annotated[Principal, Depends(require(Role.COORDINATOR, Role.OPS, Role.SERVICE))]

# Path and query values, bounded by the columns they are compared with.
ShipmentId = Annotated[str, Path(max_length=36)]
TrackingNumber = Annotated[str, Path(max_length=64)]
CarrierCode = Annotated[str, Path(max_length=32)]
RefFilter = Annotated[str | None, Query(max_length=64)]


async def carriers_of(request: Request) -> Carriers:
    carriers: Carriers = request.app.state.carriers
    return carriers


async def settings_of(request: Request) -> ShipmentSettings:
    settings = request.app.state.settings
    assert isinstance(settings, ShipmentSettings)
    return settings


async def feeder_of(request: Request) -> SimulatorFeeder | None:
    feeder: SimulatorFeeder | None = getattr(request.app.state, "simulator", None)
    return feeder


CarriersDep = Annotated[Carriers, Depends(carriers_of)]
SettingsDep = Annotated[ShipmentSettings, Depends(settings_of)]
FeederDep = Annotated[SimulatorFeeder | None, Depends(feeder_of)]

shipments = APIRouter(prefix="/shipments", tags=["shipments"])
tracking = APIRouter(prefix="/tracking", tags=["tracking"])
carriers = APIRouter(prefix="/carriers", tags=["carriers"])


async def _visible_shipment(session: AsyncSession, shipment_id: str, caller: Principal) -> Shipment:
    shipment = await session.get(Shipment, shipment_id)
    if shipment is None or shipment.direction != OUTBOUND:
        raise NotFound(f"shipment {shipment_id} not found")
    caller.ensure_customer(shipment.customer_id, f"shipment {shipment_id}")
    return shipment


def time_cursor(cursor: str) -> tuple[datetime, str]:
    """A list cursor whose time the database can hold (400 `invalid_cursor` otherwise)."""
    after_created, after_id = decode_time_cursor(cursor)
    try:
        return after_created.astimezone(UTC), after_id
    except OverflowError:
        raise BadRequest("cursor is not one this API handed out", code="invalid_cursor") from None


async def newest_first(
    runtime: Runtime, query: sa.Select[Shipment], limit: int, cursor: str | None
) -> tuple[list[Shipment], str | None]:
    """One page of `query`'s shipments, newest first, and the next page's cursor."""
    if cursor is not None:
        after_created, after_id = time_cursor(cursor)
        query = query.where(
            sa.or_(
                Shipment.created_at < after_created,
                sa.and_(Shipment.created_at == after_created, Shipment.id < after_id),
            )
        )
    query = query.order_by(Shipment.created_at.desc(), Shipment.id.desc()).limit(limit + 1)
    async with runtime.db.reading() as session:
        rows = list((await session.execute(query)).scalars())
    page = rows[:limit]
    more = len(rows) > limit
    return page, encode_time_cursor(page[-1].created_at, page[-1].id) if more else None


# --- shipments ------------------------------------------------------------------


@shipments.post(
    "",
    status_code=201,
    response_model=ShipmentDetail,
    summary="Create the shipment of one order from one warehouse (buys the label)",
    responses={
        200: {
            "model": ShipmentDetail,
            "description": "The order already has a live shipment from this warehouse; "
            "that one is returned instead of creating a second",
        },
        422: {
            "description": "`too_many_packages`: the lines need more parcels than one "
            "shipment may have (nothing is bought or written); `unknown_carrier`; "
            "`simulation_unsupported`; or a validation error"
        },
    },
)
async def create_shipment(
    caller: Creator,  # authentication before the Idempotency-Key check
    body: ShipmentCreate,
    runtime: RuntimeDep,
    key: IdempotencyKey,
    carriers: CarriersDep,
    settings: SettingsDep,
    feeder: FeederDep,
) -> Any:
    response = await rules.create_shipment(
        runtime, body, caller=caller, key=key, carriers=carriers, settings=settings
    )
    if feeder is not None and response.status_code == 201:
        feeder.wake()
    return response


@shipments.post(
    "/{shipment_id}/cancel",
    response_model=ShipmentDetail,
    summary="Cancel a shipment the carrier has not picked up yet (voids the label)",
    responses={409: {"description": "`already_dispatched`: the carrier has the parcel"}},
)
async def cancel_shipment(
    shipment_id: ShipmentId,
    runtime: RuntimeDep,
    caller: Creator,
    carriers: CarriersDep,
    body: CancelIn | None = None,
) -> ShipmentDetail:
    return await rules.cancel_shipment(
        runtime, carriers, shipment_id, body.reason if body else None
    )


@shipments.get(
    "",
    response_model=ShipmentPage,
    summary="Shipments, newest first (a customer sees only its own)",
)
async def list_shipments(
    runtime: RuntimeDep,
    caller: Reader,
    order_id: RefFilter = None,
    customer_id: RefFilter = None,
    warehouse_id: RefFilter = None,
    status: ShipmentStatus | None = None,
    sku: str | None = Query(default=None, max_length=64, description="shipments carrying this SKU"),
    lot: str | None = Query(
        default=None, max_length=64, description="shipments carrying this lot (recalls)"
    ),
    limit: int = Query(default=50, ge=1, le=200),
    cursor: str | None = Query(default=None, max_length=512),
) -> ShipmentPage:
    query = sa.select(Shipment).where(Shipment.direction == OUTBOUND)
    if caller.role is Role.CUSTOMER:
        query = query.where(Shipment.customer_id == caller.customer_id)
    if customer_id is not None:
        query = query.where(Shipment.customer_id == customer_id)
    if order_id is not None:
        query = query.where(Shipment.order_id == order_id)
    if warehouse_id is not None:
        query = query.where(Shipment.warehouse_id == warehouse_id)
    if status is not None:
        query = query.where(Shipment.status == status.value)
    if lot is not None or sku is not None:
        picked = sa.select(ShipmentLineLot.shipment_id).where(
            ShipmentLineLot.shipment_id == Shipment.id
        )
        if lot is not None:
            picked = picked.where(ShipmentLineLot.lot == lot)
        if sku is not None:
            picked = picked.where(ShipmentLineLot.sku == sku)
        query = query.where(picked.exists())
    page, next_cursor = await newest_first(runtime, query, limit, cursor)
    return ShipmentPage(items=[shipment_out(s) for s in page], next_cursor=next_cursor)


@shipments.get(
    "/{shipment_id}",
    response_model=ShipmentDetail,
    summary="One shipment with its tracking history (oldest scan first)",
)
async def get_shipment(
    shipment_id: ShipmentId, runtime: RuntimeDep, caller: Reader
) -> ShipmentDetail:
    async with runtime.db.reading() as session:
        shipment = await _visible_shipment(session, shipment_id, caller)
        return await shipment_detail(session, shipment)


@shipments.get(
    "/{shipment_id}/simulation",
    response_model=SimulationOut,
    summary="The simulated carrier's plan for this shipment (outbound or return), and what "
    "it has pushed so far",
)
async def get_simulation(
    shipment_id: ShipmentId,
    runtime: RuntimeDep,
    _: Staff,
    settings: SettingsDep,
    carriers: CarriersDep,
) -> SimulationOut:
    async with runtime.db.reading() as session:
        shipment = await session.get(Shipment, shipment_id)
        if shipment is None:
            raise NotFound(f"shipment {shipment_id} not found")
        rows = (
            await session.execute(
                sa.select(SimulatedEvent)
                .where(SimulatedEvent.shipment_id == shipment_id)
                .order_by(SimulatedEvent.seq)
            )
        ).scalars()
        adapter = carriers.get(shipment.carrier)
        scans = [
            PlannedScanOut(
                seq=r.seq,
                raw_code=r.raw_code,
                status=adapter.normalize(r.raw_code).value if adapter else r.raw_code,
                offset_hours=r.offset_hours,
                due_at=r.due_at,
                location=LocationOut(city=r.city, region=r.region, country=r.country),
                description=r.description,
                delivered=r.delivered,
                cancelled=r.cancelled,
            )
            for r in rows
        ]
    scenario = shipment.simulation_scenario
    return SimulationOut(
        shipment_id=shipment.id,
        tracking_number=shipment.tracking_number,
        scenario=Scenario(scenario) if scenario else None,
        seed=settings.simulator_seed,
        scans=scans,
    )


# --- public tracking ------------------------------------------------------------


@tracking.get(
    "/{tracking_number}",
    response_model=PublicTracking,
    summary="Public tracking page data: no authentication, no customer data",
)
async def public_tracking(
    tracking_number: TrackingNumber, runtime: RuntimeDep, carriers: CarriersDep
) -> PublicTracking:
    async with runtime.db.reading() as session:
        shipment = (
            (
                await session.execute(
                    sa.select(Shipment).where(Shipment.tracking_number == tracking_number)
                )
            )
            .scalars()
            .first()
        )
        if shipment is None:
            raise NotFound("no shipment with this tracking number")
        events = await history(session, shipment.id)
    adapter = carriers.get(shipment.carrier)

    def describe(e: TrackingEvent) -> str:
        # Carrier free text can name the recipient ("signed for by ..."): show the code's text.
        if adapter is not None:
            try:
                return adapter.describe(e.raw_code) or e.status.replace("_", " ")
            except CarrierError:
                pass
        return e.status.replace("_", " ")

    return PublicTracking(
        tracking_number=shipment.tracking_number,
        carrier=shipment.carrier,
        status=shipment.status,
        promised_date=shipment.promised_date,
        eta=shipment.eta,
        delivered_at=shipment.delivered_at,
        events=[
            PublicTrackingEvent(
                status=e.status,
                occurred_at=e.occurred_at,
                location=(
                    PublicLocation(city=e.city, country=e.country) if e.city or e.country else None
                ),
                description=describe(e),
            )
            for e in events
        ],
    )


# --- carriers -------------------------------------------------------------------


@carriers.get("", summary="The carriers this service can ship with")
async def list_carriers(_: Staff, carriers: CarriersDep) -> list[dict[str, str]]:
    adapters = [carriers.get(code) for code in carriers.codes]
    return [{"code": a.code, "name": a.name} for a in adapters if a is not None]


WEBHOOK_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The carrier's own format. The simulated carrier sends "
        '`{"events": [{"id", "tracking_number", "code", "occurred_at", '
        '"location": {"city", "region", "postal_code", "country"}, "description"}]}`, '
        "signed in `X-Waybill-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "
        '"<t>." + the raw body>` (more than 300 s off is refused as a replay).',
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


@carriers.post(
    "/{carrier}/webhook",
    response_model=WebhookResult,
    summary="A carrier pushes tracking scans (signed; no bearer token)",
    openapi_extra=WEBHOOK_DOC,
    responses={
        401: {"description": "`invalid_signature`"},
        413: {"description": "`payload_too_large`: more than `webhook_max_bytes` or events"},
    },
)
async def carrier_webhook(
    carrier: CarrierCode,
    request: Request,
    runtime: RuntimeDep,
    carriers: CarriersDep,
    settings: SettingsDep,
) -> JSONResponse:
    adapter: CarrierAdapter | None = carriers.get(carrier)
    if adapter is None:
        raise NotFound(f"unknown carrier {carrier!r}")
    result = await webhooks.receive(runtime, adapter, request, settings)
    return JSONResponse(result.model_dump(mode="json"))


routers = [shipments, tracking, carriers]
