"""Return shipments: the rules behind `POST /return-shipments` and its cancel.

A return shipment carries goods of one return (`return_id`, the returns service's) from
the customer back to a warehouse an outbound shipment of that order left from: the
label's ship-from is that shipment's ship-to, unit weights come from its lines, and its
carrier is the default. It is a `shipments` row with `direction` "return", so the
carrier webhook, the simulator, the status rule and revisions are the outbound ones;
its events are `shipment.return_shipment.*` only.

Errors (none buys a label or writes anything):

    409 no_outbound_shipment      no live outbound shipment of the order to that customer
                                  from that warehouse
    409 return_shipment_conflict  the return already has a live return shipment for
                                  another order or warehouse
    409 already_dispatched        (cancel) the carrier has the parcel
    422 line_not_shipped          a line (line_no, sku) is not in the outbound shipment
    422 quantity_exceeds_shipped  more than the outbound shipment carried
    422 unknown_carrier, return_labels_unsupported, too_many_packages
    502 carrier_error             the carrier failed the purchase or the void

One live return shipment per return: a repeat for the same `return_id` (any key)
answers the existing one (200), as a concurrent one that loses the insert race does.
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
from services.common.events import ReturnShipmentCancelled, ReturnShipmentCreated
from services.common.idempotency import run_idempotent
from services.common.outbox import stage
from services.common.problems import Conflict, NotFound, Unprocessable
from services.common.statuses import ShipmentStatus
from services.shipment import domain
from services.shipment.carriers import Carriers
from services.shipment.carriers.base import (
    CarrierAdapter,
    CarrierError,
    Label,
    LabelAddress,
    LabelPackage,
    ReturnLabelRequest,
)
from services.shipment.carriers.simulated import Scenario, SimulatedCarrier
from services.shipment.models import (
    OUTBOUND,
    RETURN,
    Shipment,
    ShipmentLine,
)
from services.shipment.schemas import ReturnShipment, ReturnShipmentCreate
from services.shipment.settings import ShipmentSettings
from services.shipment.shipments import CarrierFailed, cancel_locked, new_row
from services.shipment.simulator import plan_rows
from services.shipment.timing import ServiceLevel
from services.shipment.views import address_of, return_shipment_detail

# Namespace of return shipment ids derived from (return, caller, Idempotency-Key).
RETURN_SHIPMENT_IDS = uuid.UUID("0c3f8f7e-2b1d-4c55-9a0e-7d4b6a1e5f21")


async def live_return_shipment(session: AsyncSession, return_id: str) -> Shipment | None:
    """The return's live (not cancelled) return shipment, if any."""
    result = await session.execute(
        sa.select(Shipment).where(
            Shipment.direction == RETURN,
            Shipment.return_id == return_id,
            Shipment.status != ShipmentStatus.CANCELLED,
        )
    )
    return result.scalars().first()


async def outbound_from(
    session: AsyncSession, order_id: str, customer_id: str, warehouse_id: str
) -> Shipment:
    """The order's live outbound shipment to the customer from the warehouse, or 409."""
    result = await session.execute(
        sa.select(Shipment).where(
            Shipment.direction == OUTBOUND,
            Shipment.order_id == order_id,
            Shipment.customer_id == customer_id,
            Shipment.warehouse_id == warehouse_id,
            Shipment.status != ShipmentStatus.CANCELLED,
        )
    )
    shipment = result.scalars().first()
    if shipment is None:
        raise Conflict(
            f"order {order_id} has no outbound shipment to customer {customer_id} from "
            f"warehouse {warehouse_id}; goods go back only where they left from",
            code="no_outbound_shipment",
        )
    return shipment


async def _json(session: AsyncSession, shipment: Shipment) -> dict[str, Any]:
    return (await return_shipment_detail(session, shipment)).model_dump(mode="json")


@dataclass
class Outbound:
    """What a return shipment takes from the outbound shipment it reverses."""

    carrier: str
    service_level: str
    ship_from: LabelAddress
    weights: dict[int, int]

    @classmethod
    def of(cls, shipment: Shipment, body: ReturnShipmentCreate) -> Outbound:
        """Its facts, once every returned line is checked against what it carried (422)."""
        shipped = {line.line_no: line for line in shipment.lines}
        for line in body.lines:
            out = shipped.get(line.line_no)
            if out is None or out.sku != line.sku:
                raise Unprocessable(
                    f"line {line.line_no} ({line.sku}) is not in shipment {shipment.id} "
                    f"of order {body.order_id} from {body.warehouse_id}",
                    code="line_not_shipped",
                )
            if line.quantity > out.quantity:
                raise Unprocessable(
                    f"line {line.line_no}: {line.quantity} returned, {out.quantity} shipped",
                    code="quantity_exceeds_shipped",
                )
        return cls(
            carrier=shipment.carrier,
            service_level=shipment.service_level,
            ship_from=LabelAddress(**address_of(shipment).model_dump()),
            weights={n: line.unit_weight_grams for n, line in shipped.items()},
        )


@dataclass
class NewReturnShipment:
    """One `POST /return-shipments` request; `prepare` then `create` run it."""

    body: ReturnShipmentCreate
    caller: Principal
    key: str
    carriers: Carriers
    settings: ShipmentSettings
    source: str
    outbound: Outbound | None = None
    adapter: CarrierAdapter | None = None
    parcels: list[domain.Parcel] | None = None
    label: Label | None = None

    @property
    def shipment_id(self) -> str:
        """Retries of this request (same caller and key) name the same return shipment,
        so the carrier hands back the label it sold the first time."""
        name = f"{self.body.return_id}|{self.caller.subject}|{self.key}"
        return str(uuid.uuid5(RETURN_SHIPMENT_IDS, name))

    def _check(self, shipment: Shipment) -> None:
        """The outbound facts, carrier and parcels, or a 4xx problem before anything is
        bought."""
        body = self.body
        self.outbound = outbound = Outbound.of(shipment, body)
        code = body.carrier or outbound.carrier
        adapter = self.carriers.get(code)
        if adapter is None:
            raise Unprocessable(
                f"unknown carrier {code!r}; known: {', '.join(self.carriers.codes)}",
                code="unknown_carrier",
            )
        if not adapter.supports_returns:
            raise Unprocessable(
                f"carrier {code!r} does not sell return labels",
                code="return_labels_unsupported",
            )
        if body.simulation is not None and not isinstance(adapter, SimulatedCarrier):
            raise Unprocessable(
                "`simulation` applies only to the simulated carrier",
                code="simulation_unsupported",
            )
        lines = [
            domain.PackLine(line.line_no, line.sku, line.quantity, outbound.weights[line.line_no])
            for line in body.lines
        ]
        try:
            self.parcels = domain.pack(
                lines, round(self.settings.package_max_weight_kg * 1000), self.settings.max_packages
            )
        except domain.TooManyPackages as exc:
            raise Unprocessable(str(exc), code="too_many_packages") from exc
        self.adapter = adapter

    def _same_return(self, existing: Shipment) -> None:
        body = self.body
        if (existing.order_id, existing.warehouse_id) != (body.order_id, body.warehouse_id):
            raise Conflict(
                f"return {body.return_id} already has return shipment {existing.id} (order "
                f"{existing.order_id}, warehouse {existing.warehouse_id})",
                code="return_shipment_conflict",
            )

    async def _buy_label(self) -> Label:
        assert self.adapter is not None and self.outbound is not None
        assert self.parcels is not None
        body = self.body
        try:
            return await self.adapter.create_return_label(
                ReturnLabelRequest(
                    shipment_id=self.shipment_id,
                    return_id=body.return_id,
                    order_id=body.order_id,
                    warehouse_id=body.warehouse_id,
                    service_level=ServiceLevel(self.outbound.service_level),
                    ship_date=datetime.now(UTC).date(),
                    ship_from=self.outbound.ship_from,
                    packages=[LabelPackage(p.number, p.weight_grams) for p in self.parcels],
                )
            )
        except CarrierError as exc:
            raise CarrierFailed(f"{self.adapter.code}: {exc}") from exc

    async def _void_unused(self, existing: Shipment) -> None:
        if self.adapter is None or self.label is None:
            return
        if self.label.tracking_number != existing.tracking_number:
            with contextlib.suppress(CarrierError):  # an unused label never sees a parcel
                await self.adapter.cancel(self.label.tracking_number)

    async def prepare(self, runtime: Runtime) -> None:
        """Check the request and buy the label before the transaction (a carrier's API
        is slow); a return that has its return shipment already buys nothing."""
        body = self.body
        async with runtime.db.reading() as session:
            existing = await live_return_shipment(session, body.return_id)
            if existing is not None:
                self._same_return(existing)
                return
            self._check(
                await outbound_from(session, body.order_id, body.customer_id, body.warehouse_id)
            )
        self.label = await self._buy_label()

    async def create(self, session: AsyncSession) -> tuple[int, Any]:
        """Record the return shipment (201), or answer the return's live one (200)."""
        body = self.body
        existing = await live_return_shipment(session, body.return_id)
        if existing is not None:
            self._same_return(existing)
            await self._void_unused(existing)
            return 200, await _json(session, existing)
        outbound = await outbound_from(session, body.order_id, body.customer_id, body.warehouse_id)
        if self.label is None:
            # The live return shipment seen before the transaction was cancelled since.
            self._check(outbound)
            self.label = await self._buy_label()
        now = datetime.now(UTC)
        shipment = self._row(self.label, now)
        try:
            async with session.begin_nested():
                session.add(shipment)
                await session.flush()
        except IntegrityError:
            existing = await live_return_shipment(session, body.return_id)
            if existing is None:
                if await session.get(Shipment, self.shipment_id) is not None:
                    raise Conflict(
                        f"Idempotency-Key {self.key!r} already created return shipment "
                        f"{self.shipment_id}, since cancelled; send a new key",
                        code="idempotency_key_used",
                    ) from None
                raise
            self._same_return(existing)
            await self._void_unused(existing)
            return 200, await _json(session, existing)
        assert self.adapter is not None
        if isinstance(self.adapter, SimulatedCarrier) and self.settings.simulator_enabled:
            plan = self.adapter.plan_return(
                self.label.tracking_number,
                Scenario(body.simulation.scenario) if body.simulation else None,
                (outbound.ship_to_city, outbound.ship_to_region, outbound.ship_to_country),
            )
            shipment.simulation_scenario = plan.scenario.value
            session.add_all(
                plan_rows(shipment, plan, now, self.settings.simulator_seconds_per_hour)
            )
        await stage(
            session,
            self.source,
            ReturnShipmentCreated(
                shipment_id=shipment.id,
                return_id=body.return_id,
                order_id=shipment.order_id,
                customer_id=shipment.customer_id,
                warehouse_id=shipment.warehouse_id,
                carrier=shipment.carrier,
                tracking_number=shipment.tracking_number,
                label_url=shipment.label_url,
            ),
            subject=shipment.id,
        )
        await session.flush()
        return 201, await _json(session, shipment)

    def _row(self, label: Label, now: datetime) -> Shipment:
        assert self.adapter is not None and self.outbound is not None
        assert self.parcels is not None
        weights = self.outbound.weights
        return new_row(
            shipment_id=self.shipment_id,
            body=self.body,
            adapter=self.adapter,
            label=label,
            address=self.outbound.ship_from,  # a return's ship_to columns: where it starts
            service_level=self.outbound.service_level,
            caller=self.caller,
            now=now,
            lines=[
                ShipmentLine(
                    line_no=line.line_no,
                    sku=line.sku,
                    quantity=line.quantity,
                    unit_weight_grams=weights[line.line_no],
                )
                for line in sorted(self.body.lines, key=lambda ln: ln.line_no)
            ],
            parcels=self.parcels,
        )


async def create_return_shipment(
    runtime: Runtime,
    body: ReturnShipmentCreate,
    *,
    caller: Principal,
    key: str,
    carriers: Carriers,
    settings: ShipmentSettings,
) -> JSONResponse:
    """`POST /return-shipments`, once per (caller, Idempotency-Key)."""
    new = NewReturnShipment(body, caller, key, carriers, settings, runtime.source)

    async def prepare() -> None:
        await new.prepare(runtime)

    return await run_idempotent(
        runtime.db,
        route="POST /return-shipments",
        principal=caller,
        key=key,
        payload=body,
        action=new.create,
        prepare=prepare,
    )


async def cancel_return_shipment(
    runtime: Runtime, carriers: Carriers, shipment_id: str, reason: str | None
) -> ReturnShipment:
    """Cancel before dispatch: void the label, stop the simulation, publish the status.

    Cancelling a cancelled return shipment answers it unchanged (and publishes nothing)."""
    async with runtime.db.transaction() as session:
        result = await session.execute(
            sa.select(Shipment)
            .where(Shipment.id == shipment_id, Shipment.direction == RETURN)
            .with_for_update()
        )
        shipment = result.scalars().first()
        if shipment is None or shipment.return_id is None:
            raise NotFound(f"return shipment {shipment_id} not found")
        if shipment.status == ShipmentStatus.CANCELLED:
            return await return_shipment_detail(session, shipment)
        await cancel_locked(session, carriers, shipment, reason)
        await stage(
            session,
            runtime.source,
            ReturnShipmentCancelled(
                shipment_id=shipment.id,
                return_id=shipment.return_id,
                order_id=shipment.order_id,
                customer_id=shipment.customer_id,
                status=shipment.status,
                revision=domain.next_revision(shipment),
                reason=reason,
            ),
            subject=shipment.id,
        )
        return await return_shipment_detail(session, shipment)
