"""Shipment rules: packing, the status machine, ETA, and tracking ingestion.

`ingest()` is the one way tracking scans enter the system; the carrier webhook route
and the simulated carrier's feeder both call it. Per scan it de-duplicates, stores the
scan, recomputes the shipment's status and ETA from its whole history (so scans may
arrive in any order), and stages the events in the same transaction.

This service alone decides a shipment's status. Every event that states it
(`tracking_updated`, `cancelled`) carries it with the shipment's `revision`, which
grows by one per such event, so followers apply the highest revision they have seen
and never order scans themselves.

Return shipments (direction "return") go through the same ingestion and status rule;
they publish `shipment.return_shipment.*` events only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.events import (
    LotQuantity,
    ReturnShipmentTrackingUpdated,
    ShipmentDelivered,
    ShipmentException,
    ShipmentReturnedToSender,
    ShipmentTrackingUpdated,
)
from services.common.outbox import stage
from services.common.statuses import SHIPMENT_FINAL, SHIPMENT_NOT_DISPATCHED, ShipmentStatus
from services.shipment.carriers.base import CarrierAdapter, TrackingEventIn, UnknownStatusCode
from services.shipment.models import RETURN, Shipment, TrackingEvent
from services.shipment.timing import end_of_day, next_business_day, utc_day

# Scans that do not show the carrier has the parcel: the first other one dispatches it.
NOT_DISPATCHING: frozenset[ShipmentStatus] = SHIPMENT_NOT_DISPATCHED | {ShipmentStatus.EXPIRED}


# --- packing --------------------------------------------------------------------


@dataclass(frozen=True)
class PackLine:
    line_no: int
    sku: str
    quantity: int
    unit_weight_grams: int


@dataclass
class Parcel:
    number: int
    weight_grams: int = 0
    items: list[dict[str, int | str]] = field(default_factory=list)


class TooManyPackages(ValueError):
    """The lines need more parcels than one shipment may have."""

    def __init__(self, needed: int, allowed: int, total_grams: int, max_grams: int) -> None:
        super().__init__(
            f"the lines weigh {total_grams / 1000:g} kg and need {needed} packages of at most "
            f"{max_grams / 1000:g} kg; a shipment may have at most {allowed}"
        )
        self.needed, self.allowed = needed, allowed


def count_parcels(lines: Sequence[PackLine], max_grams: int) -> int:
    """How many parcels `pack` fills for `lines`, counted without filling them (so an
    order of millions of units is refused as fast as a small one)."""
    count, room, open_parcel = 0, 0, False
    for line in sorted(lines, key=lambda ln: ln.line_no):
        weight, units = line.unit_weight_grams, line.quantity
        if weight > max_grams:
            count, open_parcel = count + units, False
            continue
        if open_parcel:
            fit = min(room // weight, units)
            units, room = units - fit, room - fit * weight
        if units == 0:
            continue
        per_parcel = max_grams // weight
        full, rest = divmod(units, per_parcel)
        count += full + (1 if rest else 0)
        room = max_grams - (rest or per_parcel) * weight
        open_parcel = True
    return count


def pack(lines: Sequence[PackLine], max_grams: int, max_packages: int) -> list[Parcel]:
    """Fill parcels in line order up to `max_grams`, splitting lines across parcels.

    A unit heavier than the limit travels alone in its own (overweight) parcel. More
    than `max_packages` parcels is TooManyPackages, raised before any is filled.
    """
    needed = count_parcels(lines, max_grams)
    if needed > max_packages:
        total = sum(line.quantity * line.unit_weight_grams for line in lines)
        raise TooManyPackages(needed, max_packages, total, max_grams)
    parcels: list[Parcel] = []
    current: Parcel | None = None

    def open_parcel() -> Parcel:
        parcel = Parcel(number=len(parcels) + 1)
        parcels.append(parcel)
        return parcel

    def put(parcel: Parcel, line: PackLine, units: int) -> None:
        parcel.weight_grams += units * line.unit_weight_grams
        if parcel.items and parcel.items[-1]["line_no"] == line.line_no:
            parcel.items[-1]["quantity"] = int(parcel.items[-1]["quantity"]) + units
        else:
            parcel.items.append({"line_no": line.line_no, "sku": line.sku, "quantity": units})

    for line in sorted(lines, key=lambda ln: ln.line_no):
        remaining = line.quantity
        while remaining:
            if line.unit_weight_grams > max_grams:
                put(open_parcel(), line, 1)
                current = None
                remaining -= 1
                continue
            if current is None:
                current = open_parcel()
            room = (max_grams - current.weight_grams) // line.unit_weight_grams
            if room == 0:
                current = open_parcel()
                continue
            units = min(room, remaining)
            put(current, line, units)
            remaining -= units
    return parcels


# --- status machine and ETA -----------------------------------------------------


@dataclass(frozen=True)
class EventFact:
    """What the status machine needs of a stored scan; `seq` breaks occurred_at ties."""

    status: ShipmentStatus
    occurred_at: datetime
    seq: int
    delayed: bool = False


@dataclass(frozen=True)
class Derived:
    status: str
    eta: datetime | None
    dispatched_at: datetime | None
    delivered_at: datetime | None
    returned_at: datetime | None
    last_event_at: datetime | None


def _order(fact: EventFact) -> tuple[datetime, int]:
    return (fact.occurred_at, fact.seq)


def derive_status(current: str, events: Sequence[EventFact]) -> str:
    """The shipment's status given its scans.

    A final status (delivered, returned_to_sender, expired, cancelled) never changes.
    Otherwise a terminal scan decides (the earliest one, whatever arrived later), and
    without one the latest scan by occurred_at does: late scans are history only.
    """
    if current in SHIPMENT_FINAL or not events:
        return current
    terminal = [e for e in events if e.status in SHIPMENT_FINAL]
    if terminal:
        return min(terminal, key=_order).status.value
    return max(events, key=_order).status.value


def compute_eta(status: str, promised: date, events: Sequence[EventFact]) -> datetime | None:
    """When the parcel should arrive, from the promise and the scans so far.

    delivered: the delivery time. Returned, expired or cancelled: none. Out for
    delivery: end of that day. Failed attempt: end of the next business day. Otherwise
    the promised date plus one business day per delay or exception scan, and never
    before the latest scan (then: end of the next business day after it).
    """
    if status == ShipmentStatus.DELIVERED:
        delivered = [e for e in events if e.status is ShipmentStatus.DELIVERED]
        return min(delivered, key=_order).occurred_at if delivered else None
    if status in SHIPMENT_FINAL:
        return None
    eta_day = promised
    if events:
        latest = max(events, key=_order)
        if latest.status is ShipmentStatus.OUT_FOR_DELIVERY:
            return end_of_day(utc_day(latest.occurred_at))
        if latest.status is ShipmentStatus.ATTEMPT_FAILED:
            return end_of_day(next_business_day(utc_day(latest.occurred_at)))
        setbacks = sum(1 for e in events if e.delayed or e.status is ShipmentStatus.EXCEPTION)
        for _ in range(setbacks):
            eta_day = next_business_day(eta_day)
        if end_of_day(eta_day) < latest.occurred_at:
            eta_day = next_business_day(utc_day(latest.occurred_at))
    return end_of_day(eta_day)


def derive(current: str, promised: date, events: Sequence[EventFact]) -> Derived:
    """Status, ETA and milestone times of a shipment from its scans."""
    status = derive_status(current, events)
    dispatching = [e.occurred_at for e in events if e.status not in NOT_DISPATCHING]
    delivered = [e for e in events if e.status is ShipmentStatus.DELIVERED]
    returned = [e for e in events if e.status is ShipmentStatus.RETURNED_TO_SENDER]
    return Derived(
        status=status,
        eta=compute_eta(status, promised, events),
        dispatched_at=min(dispatching) if dispatching else None,
        delivered_at=(
            min(delivered, key=_order).occurred_at
            if status == ShipmentStatus.DELIVERED and delivered
            else None
        ),
        returned_at=(
            min(returned, key=_order).occurred_at
            if status == ShipmentStatus.RETURNED_TO_SENDER and returned
            else None
        ),
        last_event_at=max(e.occurred_at for e in events) if events else None,
    )


# --- ingestion ------------------------------------------------------------------


def dedupe_key(event: TrackingEventIn) -> str:
    """The carrier's event id, else (raw code, occurred_at) within the tracking number."""
    if event.event_id:
        return f"id:{event.event_id}"
    moment = event.occurred_at.astimezone(UTC).isoformat(timespec="microseconds")
    return f"scan:{event.raw_code.upper()}@{moment}"


def location_text(city: str | None, region: str | None, country: str | None) -> str | None:
    parts = [p for p in (city, region, country) if p]
    return ", ".join(parts) if parts else None


OutcomeKind = Literal["accepted", "duplicate", "unknown_tracking_number", "unknown_status_code"]


@dataclass(frozen=True)
class Outcome:
    """What became of one reported scan."""

    index: int
    tracking_number: str
    event_id: str | None
    outcome: OutcomeKind
    status: str | None = None


def lots_of(shipment: Shipment) -> list[LotQuantity]:
    return [
        LotQuantity(
            line_no=line.line_no,
            sku=line.sku,
            warehouse_id=shipment.warehouse_id,
            lot=lot.lot,
            quantity=lot.quantity,
        )
        for line in shipment.lines
        for lot in line.lots
    ]


async def _history(session: AsyncSession, shipment_id: str) -> list[EventFact]:
    rows = await session.execute(
        sa.select(
            TrackingEvent.status, TrackingEvent.occurred_at, TrackingEvent.id, TrackingEvent.delayed
        ).where(TrackingEvent.shipment_id == shipment_id)
    )
    return [EventFact(ShipmentStatus(r[0]), r[1], r[2], r[3]) for r in rows]


async def lock_shipments(
    session: AsyncSession, carrier: str, tracking_numbers: Sequence[str]
) -> dict[str, Shipment]:
    """The carrier's shipments with these tracking numbers, row-locked in a fixed order
    (PostgreSQL; SQLite writers are serialized already)."""
    if not tracking_numbers:
        return {}
    result = await session.execute(
        sa.select(Shipment)
        .where(Shipment.carrier == carrier, Shipment.tracking_number.in_(set(tracking_numbers)))
        .order_by(Shipment.id)
        .with_for_update()
    )
    return {s.tracking_number: s for s in result.scalars()}


async def ingest(
    session: AsyncSession,
    *,
    source: str,
    adapter: CarrierAdapter,
    events: Sequence[TrackingEventIn],
    channel: str,
) -> list[Outcome]:
    """Apply a carrier's scans in the caller's transaction; one outcome per scan."""
    now = datetime.now(UTC)
    shipments = await lock_shipments(session, adapter.code, [e.tracking_number for e in events])
    histories: dict[str, list[EventFact]] = {}
    outcomes: list[Outcome] = []
    for index, event in enumerate(events):
        shipment = shipments.get(event.tracking_number)
        if shipment is None:
            outcomes.append(
                Outcome(index, event.tracking_number, event.event_id, "unknown_tracking_number")
            )
            continue
        try:
            status = adapter.normalize(event.raw_code)
        except UnknownStatusCode:
            status = None
        if status is None or status is ShipmentStatus.CANCELLED:  # only we cancel
            outcomes.append(
                Outcome(index, event.tracking_number, event.event_id, "unknown_status_code")
            )
            continue
        key = dedupe_key(event)
        seen = await session.execute(
            sa.select(TrackingEvent.id).where(
                TrackingEvent.shipment_id == shipment.id, TrackingEvent.dedupe_key == key
            )
        )
        if seen.first() is not None:
            outcomes.append(
                Outcome(index, event.tracking_number, event.event_id, "duplicate", shipment.status)
            )
            continue
        if shipment.id not in histories:
            histories[shipment.id] = await _history(session, shipment.id)
        location = event.location
        row = TrackingEvent(
            shipment_id=shipment.id,
            carrier_event_id=event.event_id,
            dedupe_key=key,
            raw_code=event.raw_code.upper(),
            status=status.value,
            delayed=adapter.is_delay(event.raw_code),
            occurred_at=event.occurred_at.astimezone(UTC),
            received_at=now,
            city=location.city if location else None,
            region=location.region if location else None,
            postal_code=location.postal_code if location else None,
            country=location.country.upper() if location and location.country else None,
            description=event.description or adapter.describe(event.raw_code),
            channel=channel,
            status_after=shipment.status,
        )
        session.add(row)
        await session.flush()
        history = histories[shipment.id]
        history.append(EventFact(status, row.occurred_at, row.id, row.delayed))
        derived = derive(shipment.status, shipment.promised_date, history)
        await _apply(session, source, shipment, row, derived, now)
        outcomes.append(
            Outcome(index, event.tracking_number, event.event_id, "accepted", shipment.status)
        )
    return outcomes


def next_revision(shipment: Shipment) -> int:
    """Count one more published status of `shipment` (its row is locked by the caller):
    every event stating its status carries the count, so followers keep the highest."""
    shipment.revision += 1
    return shipment.revision


async def _apply(
    session: AsyncSession,
    source: str,
    shipment: Shipment,
    row: TrackingEvent,
    derived: Derived,
    now: datetime,
) -> None:
    """Move the shipment to `derived` and stage what that tells the rest of the system."""
    shipment.status = derived.status
    shipment.eta = derived.eta
    shipment.dispatched_at = derived.dispatched_at
    shipment.last_event_at = derived.last_event_at
    if derived.delivered_at is not None:
        shipment.delivered_at = derived.delivered_at
    if derived.returned_at is not None:
        shipment.returned_at = derived.returned_at
    shipment.updated_at = now
    row.status_after = shipment.status
    if shipment.direction == RETURN:
        await _stage_return_scan(session, source, shipment, row)
        return
    await stage(
        session,
        source,
        ShipmentTrackingUpdated(
            **_scan_fields(shipment, row),
            eta=shipment.eta.isoformat() if shipment.eta else None,
        ),
        subject=shipment.id,
    )
    if shipment.status == ShipmentStatus.EXCEPTION and not shipment.exception_notified:
        shipment.exception_notified = True
        await stage(
            session,
            source,
            ShipmentException(
                shipment_id=shipment.id,
                order_id=shipment.order_id,
                customer_id=shipment.customer_id,
                status=shipment.status,
                description=row.description or "delivery exception",
            ),
            subject=shipment.id,
        )
    if shipment.status == ShipmentStatus.DELIVERED and not shipment.delivered_notified:
        shipment.delivered_notified = True
        delivered_at = shipment.delivered_at or row.occurred_at
        await stage(
            session,
            source,
            ShipmentDelivered(
                shipment_id=shipment.id,
                order_id=shipment.order_id,
                customer_id=shipment.customer_id,
                delivered_at=delivered_at.isoformat(),
            ),
            subject=shipment.id,
        )
    if shipment.status == ShipmentStatus.RETURNED_TO_SENDER and not shipment.returned_notified:
        shipment.returned_notified = True
        await stage(
            session,
            source,
            ShipmentReturnedToSender(
                shipment_id=shipment.id,
                order_id=shipment.order_id,
                warehouse_id=shipment.warehouse_id,
                lots=lots_of(shipment),
            ),
            subject=shipment.id,
        )


def _scan_fields(shipment: Shipment, row: TrackingEvent) -> dict[str, Any]:
    """What both tracking-updated events say of an accepted scan (counts a revision)."""
    return {
        "revision": next_revision(shipment),
        "shipment_id": shipment.id,
        "order_id": shipment.order_id,
        "customer_id": shipment.customer_id,
        "tracking_number": shipment.tracking_number,
        "event_id": str(row.id),
        "event_status": row.status,
        "status": shipment.status,
        "occurred_at": row.occurred_at.isoformat(),
        "location": location_text(row.city, row.region, row.country),
        "description": row.description,
    }


async def _stage_return_scan(
    session: AsyncSession, source: str, shipment: Shipment, row: TrackingEvent
) -> None:
    """A return shipment's scan: one `shipment.return_shipment.tracking_updated`, never
    an outbound event (the order workflow and the order service follow those). Its
    `delivered` status means the goods reached the warehouse."""
    assert shipment.return_id is not None
    await stage(
        session,
        source,
        ReturnShipmentTrackingUpdated(**_scan_fields(shipment, row), return_id=shipment.return_id),
        subject=shipment.id,
    )
