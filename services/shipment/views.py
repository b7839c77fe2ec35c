"""How shipments and return shipments look: ORM rows turned into API response models."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.shipment.models import Shipment, TrackingEvent
from services.shipment.schemas import (
    Address,
    LineOut,
    LocationOut,
    LotOut,
    PackageItem,
    PackageOut,
    ReturnLineOut,
    ReturnShipment,
    ReturnShipmentOut,
    ShipmentDetail,
    ShipmentOut,
    TrackingEventOut,
)


def packages_of(s: Shipment) -> list[PackageOut]:
    return [
        PackageOut(
            number=p.number,
            weight_grams=p.weight_grams,
            items=[PackageItem.model_validate(i) for i in p.items],
        )
        for p in s.packages
    ]


def shipment_out(s: Shipment) -> ShipmentOut:
    """A shipment without its tracking history (lists)."""
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
        revision=s.revision,
        promised_date=s.promised_date,
        eta=s.eta,
        ship_to=address_of(s),
        packages=packages_of(s),
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


async def tracking_events(session: AsyncSession, shipment_id: str) -> list[TrackingEventOut]:
    """A shipment's scans as staff (and its own customer) see them, oldest first."""
    return [
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
        for e in await history(session, shipment_id)
    ]


async def shipment_detail(session: AsyncSession, s: Shipment) -> ShipmentDetail:
    """A shipment with every scan it has had, oldest first."""
    events = await tracking_events(session, s.id)
    return ShipmentDetail(**shipment_out(s).model_dump(), events=events)


def address_of(s: Shipment) -> Address:
    """The row's `ship_to_*` columns (a return shipment's: where it is collected)."""
    return Address(
        name=s.ship_to_name,
        line1=s.ship_to_line1,
        line2=s.ship_to_line2,
        city=s.ship_to_city,
        region=s.ship_to_region,
        postal_code=s.ship_to_postal_code,
        country=s.ship_to_country,
    )


def return_shipment_out(s: Shipment) -> ReturnShipmentOut:
    """A return shipment without its tracking history (lists)."""
    assert s.return_id is not None
    return ReturnShipmentOut(
        id=s.id,
        return_id=s.return_id,
        order_id=s.order_id,
        customer_id=s.customer_id,
        warehouse_id=s.warehouse_id,
        carrier=s.carrier,
        service_level=s.service_level,
        tracking_number=s.tracking_number,
        label_url=s.label_url,
        status=s.status,
        revision=s.revision,
        promised_date=s.promised_date,
        eta=s.eta,
        ship_from=address_of(s),  # a return's ship_to columns hold where it is collected
        lines=[
            ReturnLineOut(
                line_no=line.line_no,
                sku=line.sku,
                quantity=line.quantity,
                unit_weight_grams=line.unit_weight_grams,
            )
            for line in s.lines
        ],
        packages=packages_of(s),
        simulation_scenario=s.simulation_scenario,
        created_at=s.created_at,
        dispatched_at=s.dispatched_at,
        delivered_at=s.delivered_at,
        cancelled_at=s.cancelled_at,
        cancel_reason=s.cancel_reason,
        last_event_at=s.last_event_at,
    )


async def return_shipment_detail(session: AsyncSession, s: Shipment) -> ReturnShipment:
    """A return shipment with every scan it has had, oldest first."""
    events = await tracking_events(session, s.id)
    return ReturnShipment(**return_shipment_out(s).model_dump(), events=events)
