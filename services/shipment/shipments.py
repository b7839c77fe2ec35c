"""Creating and cancelling shipments: the rules behind `POST /shipments` and its cancel.

A creation is checked and packed before anything is bought: an unknown carrier, a
simulation pinned on a real carrier, or lines needing more than `max_packages` parcels
are 422 problems that buy no label and write nothing. The label is bought outside the
database transaction (`run_idempotent(prepare=...)`), so a slow carrier API holds up no
write; the shipment id is derived from (order, warehouse, caller, Idempotency-Key) and
is the carrier's idempotency reference, so a retry after a crash gets the same label.
A request that finds the order's shipment from that warehouse already made (by a
concurrent request) returns it and voids the label it bought.

A cancel (before the carrier has the parcel) voids the label and publishes
`shipment.cancelled` with the next revision and the caller's reason.

These rules serve outbound shipments only; return shipments have `return_shipments.py`.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.app import Runtime
from services.common.auth import Principal
from services.common.events import ShipmentCancelled, ShipmentCreated
from services.common.faults import crash_point
from services.common.idempotency import run_idempotent
from services.common.outbox import stage
from services.common.problems import Conflict, NotFound, ProblemError, Unprocessable
from services.common.statuses import SHIPMENT_NOT_DISPATCHED, ShipmentStatus
from services.shipment import domain
from services.shipment.carriers import Carriers
from services.shipment.carriers.base import (
    CarrierAdapter,
    CarrierError,
    Label,
    LabelAddress,
    LabelPackage,
    LabelRequest,
)
from services.shipment.carriers.simulated import Scenario, SimulatedCarrier
from services.shipment.models import (
    OUTBOUND,
    RETURN,
    Shipment,
    ShipmentLine,
    ShipmentLineLot,
    ShipmentPackage,
    SimulatedEvent,
)
from services.shipment.schemas import ReturnShipmentCreate, ShipmentCreate, ShipmentDetail
from services.shipment.settings import ShipmentSettings
from services.shipment.simulator import plan_rows
from services.shipment.views import shipment_detail

# Namespace of shipment ids derived from (order, warehouse, caller, Idempotency-Key).
SHIPMENT_IDS = uuid.UUID("5a8e3b52-6f0c-4f0e-9d53-2f1f1c7b9a11")


class CarrierFailed(ProblemError):
    """502: the carrier's API refused or failed a label purchase or void."""

    status, code, title = 502, "carrier_error", "The carrier failed the request"


async def active_shipment(
    session: AsyncSession, order_id: str, warehouse_id: str
) -> Shipment | None:
    """The order's live (not cancelled) outbound shipment from the warehouse, if any."""
    result = await session.execute(
        sa.select(Shipment).where(
            Shipment.direction == OUTBOUND,
            Shipment.order_id == order_id,
            Shipment.warehouse_id == warehouse_id,
            Shipment.status != ShipmentStatus.CANCELLED,
        )
    )
    return result.scalars().first()


async def _json(session: AsyncSession, shipment: Shipment) -> dict[str, Any]:
    return (await shipment_detail(session, shipment)).model_dump(mode="json")


@dataclass
class NewShipment:
    """One `POST /shipments` request, checked and packed; `prepare` then `create` run it."""

    body: ShipmentCreate
    caller: Principal
    key: str
    adapter: CarrierAdapter
    settings: ShipmentSettings
    source: str
    lines: list[domain.PackLine]
    parcels: list[domain.Parcel]
    label: Label | None = None

    @classmethod
    def check(
        cls,
        body: ShipmentCreate,
        *,
        caller: Principal,
        key: str,
        carriers: Carriers,
        settings: ShipmentSettings,
        source: str,
    ) -> NewShipment:
        """The request's carrier and parcels, or a 422 problem before anything is bought."""
        adapter = carriers.get(body.carrier)
        if adapter is None:
            raise Unprocessable(
                f"unknown carrier {body.carrier!r}; known: {', '.join(carriers.codes)}",
                code="unknown_carrier",
            )
        if body.simulation is not None and not isinstance(adapter, SimulatedCarrier):
            raise Unprocessable(
                "`simulation` applies only to the simulated carrier",
                code="simulation_unsupported",
            )
        lines = [
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
                lines, round(settings.package_max_weight_kg * 1000), settings.max_packages
            )
        except domain.TooManyPackages as exc:
            raise Unprocessable(str(exc), code="too_many_packages") from exc
        return cls(body, caller, key, adapter, settings, source, lines, parcels)

    @property
    def shipment_id(self) -> str:
        """Retries of this request (same caller and key) name the same shipment, so the
        carrier hands back the label it sold the first time."""
        body = self.body
        name = f"{body.order_id}|{body.warehouse_id}|{self.caller.subject}|{self.key}"
        return str(uuid.uuid5(SHIPMENT_IDS, name))

    async def _buy_label(self) -> Label:
        body = self.body
        try:
            return await self.adapter.create_label(
                LabelRequest(
                    shipment_id=self.shipment_id,
                    order_id=body.order_id,
                    warehouse_id=body.warehouse_id,
                    service_level=body.service_level,
                    ship_date=datetime.now(UTC).date(),
                    ship_to=LabelAddress(**body.ship_to.model_dump()),
                    packages=[LabelPackage(p.number, p.weight_grams) for p in self.parcels],
                )
            )
        except CarrierError as exc:
            raise CarrierFailed(f"{self.adapter.code}: {exc}") from exc

    async def _void_unused(self, existing: Shipment) -> None:
        if self.label is not None and self.label.tracking_number != existing.tracking_number:
            with contextlib.suppress(CarrierError):  # an unused label never sees a parcel
                await self.adapter.cancel(self.label.tracking_number)

    async def prepare(self, runtime: Runtime) -> None:
        """Buy the label before the transaction: a carrier's API answers in hundreds of
        milliseconds, and no write of this service should wait that long behind it."""
        async with runtime.db.reading() as session:
            existing = await active_shipment(session, self.body.order_id, self.body.warehouse_id)
        if existing is None:
            self.label = await self._buy_label()
            crash_point("shipment.after_label")

    async def create(self, session: AsyncSession) -> tuple[int, Any]:
        """Record the shipment (201), or answer the live one the order already has (200)."""
        body = self.body
        existing = await active_shipment(session, body.order_id, body.warehouse_id)
        if existing is not None:
            await self._void_unused(existing)
            return 200, await _json(session, existing)
        if self.label is None:
            # The live shipment seen before the transaction was cancelled since (rare).
            self.label = await self._buy_label()
        now = datetime.now(UTC)
        shipment = self._row(self.label, now)
        try:
            async with session.begin_nested():
                session.add(shipment)
                await session.flush()
        except IntegrityError:
            answer = await self._lost_race(session)
            if answer is None:
                raise
            return 200, answer
        if isinstance(self.adapter, SimulatedCarrier) and self.settings.simulator_enabled:
            ship_to = body.ship_to
            plan = self.adapter.plan(
                self.label.tracking_number,
                Scenario(body.simulation.scenario) if body.simulation else None,
                (ship_to.city, ship_to.region, ship_to.country),
            )
            shipment.simulation_scenario = plan.scenario.value
            session.add_all(
                plan_rows(shipment, plan, now, self.settings.simulator_seconds_per_hour)
            )
        await stage(
            session,
            self.source,
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
        return 201, await _json(session, shipment)

    async def _lost_race(self, session: AsyncSession) -> dict[str, Any] | None:
        """The answer when the insert conflicted: a concurrent request created this
        order's shipment from this warehouse (None: the conflict is something else)."""
        existing = await active_shipment(session, self.body.order_id, self.body.warehouse_id)
        if existing is None:
            earlier = await session.get(Shipment, self.shipment_id)
            if earlier is None:
                return None
            # This key made a shipment since cancelled, and its stored answer is gone.
            raise Conflict(
                f"Idempotency-Key {self.key!r} already created shipment {earlier.id} (now "
                f"{earlier.status}); send a new key to create another",
                code="idempotency_key_used",
            )
        await self._void_unused(existing)
        return await _json(session, existing)

    def _row(self, label: Label, now: datetime) -> Shipment:
        body = self.body
        weights = {pl.line_no: pl.unit_weight_grams for pl in self.lines}
        return new_row(
            shipment_id=self.shipment_id,
            body=body,
            adapter=self.adapter,
            label=label,
            address=LabelAddress(**body.ship_to.model_dump()),
            service_level=body.service_level.value,
            caller=self.caller,
            now=now,
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
            parcels=self.parcels,
        )


async def create_shipment(
    runtime: Runtime,
    body: ShipmentCreate,
    *,
    caller: Principal,
    key: str,
    carriers: Carriers,
    settings: ShipmentSettings,
) -> JSONResponse:
    """`POST /shipments`, once per (caller, Idempotency-Key)."""
    new = NewShipment.check(
        body, caller=caller, key=key, carriers=carriers, settings=settings, source=runtime.source
    )

    async def prepare() -> None:
        await new.prepare(runtime)

    return await run_idempotent(
        runtime.db,
        route="POST /shipments",
        principal=caller,
        key=key,
        payload=body,
        action=new.create,
        prepare=prepare,
    )


def ensure_cancellable(shipment: Shipment) -> None:
    """409 unless the carrier has not got the parcel yet."""
    if shipment.status in SHIPMENT_NOT_DISPATCHED:
        return
    if shipment.status == ShipmentStatus.EXPIRED and shipment.dispatched_at is None:
        raise Conflict(f"shipment {shipment.id} expired at the carrier", code="not_cancellable")
    raise Conflict(
        f"shipment {shipment.id} is {shipment.status}: the carrier already has it",
        code="already_dispatched",
    )


async def cancel_locked(
    session: AsyncSession, carriers: Carriers, shipment: Shipment, reason: str | None
) -> None:
    """Cancel a row-locked shipment (outbound or return) the carrier has not got (409
    otherwise): void the label, stop its simulation. The caller stages the event."""
    ensure_cancellable(shipment)
    adapter = carriers.get(shipment.carrier)
    if adapter is not None:
        try:
            await adapter.cancel(shipment.tracking_number)
        except CarrierError as exc:
            raise CarrierFailed(f"{shipment.carrier}: {exc}") from exc
    now = datetime.now(UTC)
    shipment.status = ShipmentStatus.CANCELLED.value
    shipment.cancelled_at = now
    shipment.cancel_reason = reason
    shipment.eta = None
    shipment.updated_at = now
    await session.execute(
        sa.update(SimulatedEvent)
        .where(SimulatedEvent.shipment_id == shipment.id, SimulatedEvent.delivered.is_(False))
        .values(cancelled=True)
    )


def new_row(
    *,
    shipment_id: str,
    body: ShipmentCreate | ReturnShipmentCreate,
    adapter: CarrierAdapter,
    label: Label,
    address: LabelAddress,
    service_level: str,
    caller: Principal,
    now: datetime,
    lines: list[ShipmentLine],
    parcels: list[domain.Parcel],
) -> Shipment:
    """A new pending shipment row (outbound, or a return when `body` is one)."""
    return_id = body.return_id if isinstance(body, ReturnShipmentCreate) else None
    return Shipment(
        id=shipment_id,
        direction=OUTBOUND if return_id is None else RETURN,
        return_id=return_id,
        order_id=body.order_id,
        customer_id=body.customer_id,
        warehouse_id=body.warehouse_id,
        carrier=adapter.code,
        service_level=service_level,
        tracking_number=label.tracking_number,
        label_url=label.label_url,
        status=ShipmentStatus.PENDING.value,
        revision=0,
        promised_date=label.promised_date,
        eta=domain.compute_eta(ShipmentStatus.PENDING, label.promised_date, []),
        ship_to_name=address.name,
        ship_to_line1=address.line1,
        ship_to_line2=address.line2,
        ship_to_city=address.city,
        ship_to_region=address.region,
        ship_to_postal_code=address.postal_code,
        ship_to_country=address.country,
        created_by=caller.subject,
        created_at=now,
        updated_at=now,
        exception_notified=False,
        delivered_notified=False,
        returned_notified=False,
        lines=lines,
        packages=[
            ShipmentPackage(number=p.number, weight_grams=p.weight_grams, items=p.items)
            for p in parcels
        ],
    )


async def cancel_shipment(
    runtime: Runtime, carriers: Carriers, shipment_id: str, reason: str | None
) -> ShipmentDetail:
    """Cancel before dispatch: void the label, stop the simulation, publish the status.

    Cancelling a cancelled shipment answers it unchanged (and publishes nothing)."""
    async with runtime.db.transaction() as session:
        result = await session.execute(
            sa.select(Shipment)
            .where(Shipment.id == shipment_id, Shipment.direction == OUTBOUND)
            .with_for_update()
        )
        shipment = result.scalars().first()
        if shipment is None:
            raise NotFound(f"shipment {shipment_id} not found")
        if shipment.status == ShipmentStatus.CANCELLED:
            return await shipment_detail(session, shipment)
        await cancel_locked(session, carriers, shipment, reason)
        await stage(
            session,
            runtime.source,
            ShipmentCancelled(
                shipment_id=shipment.id,
                order_id=shipment.order_id,
                status=shipment.status,
                revision=domain.next_revision(shipment),
                reason=reason,
            ),
            subject=shipment.id,
        )
        return await shipment_detail(session, shipment)
