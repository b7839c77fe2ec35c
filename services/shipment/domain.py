"""Shipment rules: packing, the status machine, ETA, and tracking ingestion.

`ingest()` is the one way tracking scans enter the system; the carrier webhook route
and the simulated carrier's feeder both call it. Per scan it de-duplicates, stores the
scan, recomputes the shipment's status and ETA from its whole history (so scans may
arrive in any order), and stages the events in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.events import (
    LotQuantity,
    ShipmentDelivered,
    ShipmentException,
    ShipmentReturnedToSender,
    ShipmentTrackingUpdated,
)
from services.common.outbox import stage
from services.shipment.carriers.base import (
    TERMINAL,
    CarrierAdapter,
    NormalizedStatus,
    TrackingEventIn,
    UnknownStatusCode,
)
from services.shipment.models import Shipment, TrackingEvent
from services.shipment.timing import end_of_day, next_business_day, utc_day


class ShipmentStatus(StrEnum):
    """A shipment's status: the normalized tracking scale plus `cancelled` (before dispatch)."""

    PENDING = "pending"
    INFO_RECEIVED = "info_received"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    ATTEMPT_FAILED = "attempt_failed"
    AVAILABLE_FOR_PICKUP = "available_for_pickup"
    DELIVERED = "delivered"
    EXCEPTION = "exception"
    RETURNED_TO_SENDER = "returned_to_sender"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


CANCELLED = ShipmentStatus.CANCELLED.value
FINAL_STATUSES: frozenset[str] = frozenset({*TERMINAL, CANCELLED})
CANCELLABLE: frozenset[str] = frozenset({NormalizedStatus.PENDING, NormalizedStatus.INFO_RECEIVED})
# Scans that show the carrier has the parcel: the first one dispatches the shipment.
NOT_DISPATCHING: frozenset[str] = frozenset(
    {NormalizedStatus.PENDING, NormalizedStatus.INFO_RECEIVED, NormalizedStatus.EXPIRED}
)


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
    pass


def pack(lines: Sequence[PackLine], max_grams: int, max_packages: int) -> list[Parcel]:
    """Fill parcels in line order up to `max_grams`, splitting lines across parcels.

    A unit heavier than the limit travels alone in its own (overweight) parcel.
    """
    parcels: list[Parcel] = []
    current: Parcel | None = None

    def open_parcel() -> Parcel:
        if len(parcels) >= max_packages:
            raise TooManyPackages(f"the lines need more than {max_packages} packages")
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

    status: NormalizedStatus
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
    if current in FINAL_STATUSES or not events:
        return current
    terminal = [e for e in events if e.status in TERMINAL]
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
    if status == NormalizedStatus.DELIVERED:
        delivered = [e for e in events if e.status is NormalizedStatus.DELIVERED]
        return min(delivered, key=_order).occurred_at if delivered else None
    if status in FINAL_STATUSES:
        return None
    eta_day = promised
    if events:
        latest = max(events, key=_order)
        if latest.status is NormalizedStatus.OUT_FOR_DELIVERY:
            return end_of_day(utc_day(latest.occurred_at))
        if latest.status is NormalizedStatus.ATTEMPT_FAILED:
            return end_of_day(next_business_day(utc_day(latest.occurred_at)))
        setbacks = sum(1 for e in events if e.delayed or e.status is NormalizedStatus.EXCEPTION)
        for _ in range(setbacks):
            eta_day = next_business_day(eta_day)
        if end_of_day(eta_day) < latest.occurred_at:
            eta_day = next_business_day(utc_day(latest.occurred_at))
    return end_of_day(eta_day)


def derive(current: str, promised: date, events: Sequence[EventFact]) -> Derived:
    """Status, ETA and milestone times of a shipment from its scans."""
    status = derive_status(current, events)
    dispatching = [e.occurred_at for e in events if e.status not in NOT_DISPATCHING]
    delivered = [e for e in events if e.status is NormalizedStatus.DELIVERED]
    returned = [e for e in events if e.status is NormalizedStatus.RETURNED_TO_SENDER]
    return Derived(
        status=status,
        eta=compute_eta(status, promised, events),
        dispatched_at=min(dispatching) if dispatching else None,
        delivered_at=(
            min(delivered, key=_order).occurred_at
            if status == NormalizedStatus.DELIVERED and delivered
            else None
        ),
        returned_at=(
            min(returned, key=_order).occurred_at
            if status == NormalizedStatus.RETURNED_TO_SENDER and returned
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
    return [EventFact(NormalizedStatus(r[0]), r[1], r[2], r[3]) for r in rows]


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
    await stage(
        session,
        source,
        ShipmentTrackingUpdated(
            shipment_id=shipment.id,
            order_id=shipment.order_id,
            tracking_number=shipment.tracking_number,
            event_id=str(row.id),
            event_status=row.status,
            status=shipment.status,
            occurred_at=row.occurred_at.isoformat(),
            location=location_text(row.city, row.region, row.country),
            description=row.description,
            eta=shipment.eta.isoformat() if shipment.eta else None,
        ),
        subject=shipment.id,
    )
    if shipment.status == NormalizedStatus.EXCEPTION and not shipment.exception_notified:
        shipment.exception_notified = True
        await stage(
            session,
            source,
            ShipmentException(
                shipment_id=shipment.id,
                order_id=shipment.order_id,
                status=shipment.status,
                description=row.description or "delivery exception",
            ),
            subject=shipment.id,
        )
    if shipment.status == NormalizedStatus.DELIVERED and not shipment.delivered_notified:
        shipment.delivered_notified = True
        delivered_at = shipment.delivered_at or row.occurred_at
        await stage(
            session,
            source,
            ShipmentDelivered(
                shipment_id=shipment.id,
                order_id=shipment.order_id,
                delivered_at=delivered_at.isoformat(),
            ),
            subject=shipment.id,
        )
    if shipment.status == NormalizedStatus.RETURNED_TO_SENDER and not shipment.returned_notified:
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
