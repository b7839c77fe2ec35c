"""Shipment service routes: shipments, public tracking, carrier webhooks."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.auth import Principal, Role, require
from services.common.deps import IdempotencyKey, RuntimeDep
from services.common.events import ShipmentCancelled, ShipmentCreated
from services.common.faults import crash_point
from services.common.idempotency import run_idempotent
from services.common.outbox import stage
from services.common.pagination import decode_time_cursor, encode_time_cursor
from services.common.problems import (
    Conflict,
    NotFound,
    ProblemError,
    Unauthorized,
    Unprocessable,
)
from services.shipment import domain
from services.shipment.carriers import Carriers
from services.shipment.carriers.base import (
    CarrierAdapter,
    CarrierError,
    Label,
    LabelAddress,
    LabelPackage,
    LabelRequest,
    WebhookPayloadError,
    WebhookSignatureError,
)
from services.shipment.carriers.simulated import Scenario, SimulatedCarrier
from services.shipment.domain import ShipmentStatus
from services.shipment.models import (
    Shipment,
    ShipmentLine,
    ShipmentLineLot,
    ShipmentPackage,
    SimulatedEvent,
    TrackingEvent,
)
from services.shipment.schemas import (
    Address,
    CancelIn,
    LineOut,
    LocationOut,
    LotOut,
    PackageItem,
    PackageOut,
    PlannedScanOut,
    PublicLocation,
    PublicTracking,
    PublicTrackingEvent,
    ShipmentCreate,
    ShipmentDetail,
    ShipmentOut,
    ShipmentPage,
    SimulationOut,
    TrackingEventOut,
    WebhookEventResult,
    WebhookResult,
)
from services.shipment.settings import ShipmentSettings
from services.shipment.simulator import SimulatorFeeder, plan_rows

Creator = Annotated[Principal, Depends(require(Role.SERVICE, Role.COORDINATOR))]
Reader = Annotated[
    Principal, Depends(require(Role.COORDINATOR, Role.OPS, Role.SERVICE, Role.CUSTOMER))
]
Staff = Annotated[Principal, Depends(require(Role.COORDINATOR, Role.OPS, Role.SERVICE))]


class CarrierFailed(ProblemError):
    status, code, title = 502, "carrier_error", "The carrier failed the request"


class PayloadTooLarge(ProblemError):
    status, code, title = 413, "payload_too_large", "Payload too large"


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


# --- views ----------------------------------------------------------------------


def shipment_out(s: Shipment) -> ShipmentOut:
    return ShipmentOut(
        id=s.id,
        order_id=s.order_id,
        customer_id=s.customer_id,
        warehouse_id=s.warehouse_id,
        carrier=s.carrier,
        service_level=s.service_level,
        tracking_number=s.tracking_number,
        label_url=s.label_url,
        status=s.status,
        promised_date=s.promised_date,
        eta=s.eta,
        ship_to=Address(
            name=s.ship_to_name,
            line1=s.ship_to_line1,
            line2=s.ship_to_line2,
            city=s.ship_to_city,
            region=s.ship_to_region,
            postal_code=s.ship_to_postal_code,
            country=s.ship_to_country,
        ),
        packages=[
            PackageOut(
                number=p.number,
                weight_grams=p.weight_grams,
                items=[PackageItem.model_validate(i) for i in p.items],
            )
            for p in s.packages
        ],
        lines=[
            LineOut(
                line_no=line.line_no,
                sku=line.sku,
                quantity=line.quantity,
                unit_weight_grams=line.unit_weight_grams,
                lots=[LotOut(lot=lot.lot, quantity=lot.quantity) for lot in line.lots],
            )
            for line in s.lines
        ],
        simulation_scenario=s.simulation_scenario,
        created_at=s.created_at,
        dispatched_at=s.dispatched_at,
        delivered_at=s.delivered_at,
        returned_at=s.returned_at,
        cancelled_at=s.cancelled_at,
        cancel_reason=s.cancel_reason,
        last_event_at=s.last_event_at,
    )


def _location(e: TrackingEvent) -> LocationOut | None:
    if not any((e.city, e.region, e.postal_code, e.country)):
        return None
    return LocationOut(city=e.city, region=e.region, postal_code=e.postal_code, country=e.country)


async def history(session: AsyncSession, shipment_id: str) -> list[TrackingEvent]:
    """A shipment's scans in the order they happened."""
    result = await session.execute(
        sa.select(TrackingEvent)
        .where(TrackingEvent.shipment_id == shipment_id)
        .order_by(TrackingEvent.occurred_at, TrackingEvent.id)
    )
    return list(result.scalars())


async def shipment_detail(session: AsyncSession, s: Shipment) -> ShipmentDetail:
    events = [
        TrackingEventOut(
            id=e.id,
            carrier_event_id=e.carrier_event_id,
            raw_code=e.raw_code,
            status=e.status,
            status_after=e.status_after,
            delayed=e.delayed,
            occurred_at=e.occurred_at,
            received_at=e.received_at,
            location=_location(e),
            description=e.description,
            channel=e.channel,
        )
        for e in await history(session, s.id)
    ]
    return ShipmentDetail(**shipment_out(s).model_dump(), events=events)


async def _visible_shipment(session: AsyncSession, shipment_id: str, caller: Principal) -> Shipment:
    shipment = await session.get(Shipment, shipment_id)
    if shipment is None:
        raise NotFound(f"shipment {shipment_id} not found")
    caller.ensure_customer(shipment.customer_id, f"shipment {shipment_id}")
    return shipment


# Namespace of shipment ids derived from (order, warehouse, caller, Idempotency-Key).
SHIPMENT_IDS = uuid.UUID("5a8e3b52-6f0c-4f0e-9d53-2f1f1c7b9a11")


async def _active_shipment(
    session: AsyncSession, order_id: str, warehouse_id: str
) -> Shipment | None:
    result = await session.execute(
        sa.select(Shipment).where(
            Shipment.order_id == order_id,
            Shipment.warehouse_id == warehouse_id,
            Shipment.status != domain.CANCELLED,
        )
    )
    return result.scalars().first()


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
        }
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
    adapter = carriers.get(body.carrier)
    if adapter is None:
        raise Unprocessable(
            f"unknown carrier {body.carrier!r}; known: {', '.join(carriers.codes)}",
            code="unknown_carrier",
        )
    if body.simulation is not None and not isinstance(adapter, SimulatedCarrier):
        raise Unprocessable(
            "`simulation` applies only to the simulated carrier", code="simulation_unsupported"
        )
    pack_lines = [
        domain.PackLine(
            line.line_no,
            line.sku,
            line.quantity,
            line.unit_weight_grams or settings.default_unit_weight_grams,
        )
        for line in body.lines
    ]
    try:
        parcels = domain.pack(
            pack_lines, round(settings.package_max_weight_kg * 1000), settings.max_packages
        )
    except domain.TooManyPackages as exc:
        raise Unprocessable(str(exc), code="too_many_packages") from exc

    # Retries of this request (same caller and key) name the same shipment, so the
    # carrier hands back the label it sold the first time.
    shipment_id = str(
        uuid.uuid5(SHIPMENT_IDS, f"{body.order_id}|{body.warehouse_id}|{caller.subject}|{key}")
    )
    label: Label | None = None

    async def buy_label() -> Label:
        try:
            return await adapter.create_label(
                LabelRequest(
                    shipment_id=shipment_id,
                    order_id=body.order_id,
                    warehouse_id=body.warehouse_id,
                    service_level=body.service_level,
                    ship_date=datetime.now(UTC).date(),
                    ship_to=LabelAddress(**body.ship_to.model_dump()),
                    packages=[LabelPackage(p.number, p.weight_grams) for p in parcels],
                )
            )
        except CarrierError as exc:
            raise CarrierFailed(f"{adapter.code}: {exc}") from exc

    async def prepare() -> None:
        """Buy the label before the transaction: a carrier's API answers in hundreds of
        milliseconds, and no write of this service should wait that long behind it."""
        nonlocal label
        async with runtime.db.reading() as session:
            existing = await _active_shipment(session, body.order_id, body.warehouse_id)
        if existing is None:
            label = await buy_label()
            crash_point("shipment.after_label")

    async def void_unused(existing: Shipment) -> None:
        if label is not None and label.tracking_number != existing.tracking_number:
            with contextlib.suppress(CarrierError):  # an unused label never sees a parcel
                await adapter.cancel(label.tracking_number)

    async def create(session: AsyncSession) -> tuple[int, Any]:
        nonlocal label
        existing = await _active_shipment(session, body.order_id, body.warehouse_id)
        if existing is not None:
            await void_unused(existing)
            return 200, (await shipment_detail(session, existing)).model_dump(mode="json")
        if label is None:
            # The live shipment seen before the transaction was cancelled since (rare).
            label = await buy_label()
        now = datetime.now(UTC)
        ship_to = body.ship_to
        weights = {pl.line_no: pl.unit_weight_grams for pl in pack_lines}
        shipment = Shipment(
            id=shipment_id,
            order_id=body.order_id,
            customer_id=body.customer_id,
            warehouse_id=body.warehouse_id,
            carrier=adapter.code,
            service_level=body.service_level.value,
            tracking_number=label.tracking_number,
            label_url=label.label_url,
            status=ShipmentStatus.PENDING.value,
            promised_date=label.promised_date,
            eta=domain.compute_eta(ShipmentStatus.PENDING, label.promised_date, []),
            ship_to_name=ship_to.name,
            ship_to_line1=ship_to.line1,
            ship_to_line2=ship_to.line2,
            ship_to_city=ship_to.city,
            ship_to_region=ship_to.region,
            ship_to_postal_code=ship_to.postal_code,
            ship_to_country=ship_to.country,
            created_by=caller.subject,
            created_at=now,
            updated_at=now,
            exception_notified=False,
            delivered_notified=False,
            returned_notified=False,
            lines=[
                ShipmentLine(
                    line_no=line.line_no,
                    sku=line.sku,
                    quantity=line.quantity,
                    unit_weight_grams=weights[line.line_no],
                    lots=[
                        ShipmentLineLot(lot=lot.lot, sku=line.sku, quantity=lot.quantity)
                        for lot in line.lots
                    ],
                )
                for line in sorted(body.lines, key=lambda ln: ln.line_no)
            ],
            packages=[
                ShipmentPackage(number=p.number, weight_grams=p.weight_grams, items=p.items)
                for p in parcels
            ],
        )
        try:
            async with session.begin_nested():
                session.add(shipment)
                await session.flush()
        except IntegrityError:
            # A concurrent request created this order's shipment from this warehouse.
            existing = await _active_shipment(session, body.order_id, body.warehouse_id)
            if existing is None:
                earlier = await session.get(Shipment, shipment_id)
                if earlier is None:
                    raise
                # This key made a shipment since cancelled, and its stored answer is gone.
                raise Conflict(
                    f"Idempotency-Key {key!r} already created shipment {earlier.id} (now "
                    f"{earlier.status}); send a new key to create another",
                    code="idempotency_key_used",
                ) from None
            await void_unused(existing)
            return 200, (await shipment_detail(session, existing)).model_dump(mode="json")
        if isinstance(adapter, SimulatedCarrier) and settings.simulator_enabled:
            plan = adapter.plan(
                label.tracking_number,
                Scenario(body.simulation.scenario) if body.simulation else None,
                (ship_to.city, ship_to.region, ship_to.country),
            )
            shipment.simulation_scenario = plan.scenario.value
            session.add_all(plan_rows(shipment, plan, now, settings.simulator_seconds_per_hour))
        await stage(
            session,
            runtime.source,
            ShipmentCreated(
                shipment_id=shipment.id,
                order_id=shipment.order_id,
                customer_id=shipment.customer_id,
                warehouse_id=shipment.warehouse_id,
                carrier=shipment.carrier,
                service_level=shipment.service_level,
                tracking_number=shipment.tracking_number,
                promised_date=shipment.promised_date.isoformat(),
                lots=domain.lots_of(shipment),
            ),
            subject=shipment.id,
        )
        await session.flush()
        return 201, (await shipment_detail(session, shipment)).model_dump(mode="json")

    response = await run_idempotent(
        runtime.db,
        route="POST /shipments",
        principal=caller,
        key=key,
        payload=body,
        action=create,
        prepare=prepare,
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
    shipment_id: str,
    runtime: RuntimeDep,
    caller: Creator,
    carriers: CarriersDep,
    body: CancelIn | None = None,
) -> ShipmentDetail:
    async with runtime.db.transaction() as session:
        shipment = (
            (
                await session.execute(
                    sa.select(Shipment).where(Shipment.id == shipment_id).with_for_update()
                )
            )
            .scalars()
            .first()
        )
        if shipment is None:
            raise NotFound(f"shipment {shipment_id} not found")
        if shipment.status == domain.CANCELLED:
            return await shipment_detail(session, shipment)
        if shipment.status not in domain.CANCELLABLE:
            if shipment.status == ShipmentStatus.EXPIRED and shipment.dispatched_at is None:
                raise Conflict(
                    f"shipment {shipment_id} expired at the carrier", code="not_cancellable"
                )
            raise Conflict(
                f"shipment {shipment_id} is {shipment.status}: the carrier already has it",
                code="already_dispatched",
            )
        adapter = carriers.get(shipment.carrier)
        if adapter is not None:
            try:
                await adapter.cancel(shipment.tracking_number)
            except CarrierError as exc:
                raise CarrierFailed(f"{shipment.carrier}: {exc}") from exc
        now = datetime.now(UTC)
        shipment.status = domain.CANCELLED
        shipment.cancelled_at = now
        shipment.cancel_reason = body.reason if body else None
        shipment.eta = None
        shipment.updated_at = now
        await session.execute(
            sa.update(SimulatedEvent)
            .where(SimulatedEvent.shipment_id == shipment.id, SimulatedEvent.delivered.is_(False))
            .values(cancelled=True)
        )
        await stage(
            session,
            runtime.source,
            ShipmentCancelled(shipment_id=shipment.id, order_id=shipment.order_id),
            subject=shipment.id,
        )
        return await shipment_detail(session, shipment)


@shipments.get(
    "",
    response_model=ShipmentPage,
    summary="Shipments, newest first (a customer sees only its own)",
)
async def list_shipments(
    runtime: RuntimeDep,
    caller: Reader,
    order_id: str | None = None,
    customer_id: str | None = None,
    warehouse_id: str | None = None,
    status: ShipmentStatus | None = None,
    sku: str | None = Query(default=None, description="shipments carrying this SKU"),
    lot: str | None = Query(default=None, description="shipments carrying this lot (recalls)"),
    limit: int = Query(default=50, ge=1, le=200),
    cursor: str | None = None,
) -> ShipmentPage:
    query = sa.select(Shipment)
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
    if cursor is not None:
        after_created, after_id = decode_time_cursor(cursor)
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
    return ShipmentPage(
        items=[shipment_out(s) for s in page],
        next_cursor=encode_time_cursor(page[-1].created_at, page[-1].id)
        if len(rows) > limit
        else None,
    )


@shipments.get(
    "/{shipment_id}",
    response_model=ShipmentDetail,
    summary="One shipment with its tracking history (oldest scan first)",
)
async def get_shipment(shipment_id: str, runtime: RuntimeDep, caller: Reader) -> ShipmentDetail:
    async with runtime.db.reading() as session:
        shipment = await _visible_shipment(session, shipment_id, caller)
        return await shipment_detail(session, shipment)


@shipments.get(
    "/{shipment_id}/simulation",
    response_model=SimulationOut,
    summary="The simulated carrier's plan for this shipment, and what it has pushed so far",
)
async def get_simulation(
    shipment_id: str, runtime: RuntimeDep, _: Staff, settings: SettingsDep, carriers: CarriersDep
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
    tracking_number: str, runtime: RuntimeDep, carriers: CarriersDep
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
    responses={401: {"description": "`invalid_signature`"}},
)
async def carrier_webhook(
    carrier: str,
    request: Request,
    runtime: RuntimeDep,
    carriers: CarriersDep,
    settings: SettingsDep,
) -> JSONResponse:
    adapter: CarrierAdapter | None = carriers.get(carrier)
    if adapter is None:
        raise NotFound(f"unknown carrier {carrier!r}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.webhook_max_bytes:
        raise PayloadTooLarge(f"webhook bodies are limited to {settings.webhook_max_bytes} bytes")
    body = await request.body()
    if len(body) > settings.webhook_max_bytes:
        raise PayloadTooLarge(f"webhook bodies are limited to {settings.webhook_max_bytes} bytes")
    try:
        scans = adapter.parse_webhook(request.headers, body)
    except WebhookSignatureError as exc:
        raise Unauthorized(str(exc), code="invalid_signature") from exc
    except WebhookPayloadError as exc:
        raise Unprocessable(str(exc), code="invalid_webhook", errors=exc.errors) from exc
    if len(scans) > settings.webhook_max_events:
        raise PayloadTooLarge(f"at most {settings.webhook_max_events} events per push")
    async with runtime.db.transaction() as session:
        outcomes = await domain.ingest(
            session, source=runtime.source, adapter=adapter, events=scans, channel="webhook"
        )
    results = [
        WebhookEventResult(
            index=o.index,
            tracking_number=o.tracking_number,
            event_id=o.event_id,
            outcome=o.outcome,
            status=o.status,
        )
        for o in outcomes
    ]
    accepted = sum(1 for o in outcomes if o.outcome == "accepted")
    duplicates = sum(1 for o in outcomes if o.outcome == "duplicate")
    result = WebhookResult(
        received=len(outcomes),
        accepted=accepted,
        duplicates=duplicates,
        rejected=len(outcomes) - accepted - duplicates,
        results=results,
    )
    return JSONResponse(result.model_dump(mode="json"))


routers = [shipments, tracking, carriers]
