"""The simulated carrier's push loop: stored plans, fed through the webhook path when due.

Plans live in `simulated_events` (written with the shipment), so a restart carries on
where it stopped. For each shipment with due scans the feeder, in one transaction,
locks the shipment, takes its due scans, lets the carrier sign and serialize them as a
webhook push, parses that push with the carrier's own `parse_webhook` and hands the
scans to `domain.ingest` (exactly what `POST /carriers/simulated/webhook` does), then
marks them delivered. Scans are de-duplicated by id, so feeding twice changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from opentelemetry.trace import SpanKind

from services.common import telemetry
from services.common.db import Database
from services.shipment import domain
from services.shipment.carriers.base import Location, TrackingEventIn
from services.shipment.carriers.simulated import SimulatedCarrier, SimulationPlan
from services.shipment.models import Shipment, SimulatedEvent

log = logging.getLogger(__name__)

BATCH_SHIPMENTS = 100


def plan_rows(
    shipment: Shipment, plan: SimulationPlan, start: datetime, seconds_per_hour: float
) -> list[SimulatedEvent]:
    """The stored form of a plan: each scan due `hours * seconds_per_hour` after `start`."""
    return [
        SimulatedEvent(
            id=f"{plan.tracking_number}-{scan.seq:02d}",
            shipment_id=shipment.id,
            tracking_number=plan.tracking_number,
            seq=scan.seq,
            raw_code=scan.code,
            offset_hours=scan.hours,
            due_at=start + timedelta(seconds=scan.hours * seconds_per_hour),
            city=scan.city,
            region=scan.region,
            country=scan.country,
            description=scan.description,
            delivered=False,
            cancelled=False,
        )
        for scan in plan.scans
    ]


def as_scan(row: SimulatedEvent) -> TrackingEventIn:
    """A planned scan as the carrier reports it; it happens at its due time."""
    return TrackingEventIn(
        tracking_number=row.tracking_number,
        raw_code=row.raw_code,
        occurred_at=row.due_at,
        event_id=row.id,
        location=Location(city=row.city, region=row.region, country=row.country),
        description=row.description,
    )


class SimulatorFeeder:
    """Background task pushing due simulated scans; `wake()` after planning new ones."""

    def __init__(
        self, db: Database, carrier: SimulatedCarrier, *, source: str, poll_seconds: float
    ) -> None:
        self.db = db
        self.carrier = carrier
        self.source = source
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._tracer = telemetry.tracer("waybill.shipment.simulator")

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await self.feed_due()
                pause = await self._until_next_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("simulated carrier feed failed; retrying")
                pause = self.poll_seconds
            self._wake.clear()
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), pause)

    async def _until_next_due(self) -> float:
        async with self.db.reading() as session:
            next_due = (
                await session.execute(
                    sa.select(sa.func.min(SimulatedEvent.due_at)).where(
                        SimulatedEvent.delivered.is_(False), SimulatedEvent.cancelled.is_(False)
                    )
                )
            ).scalar_one()
        if next_due is None:
            return self.poll_seconds
        if next_due.tzinfo is None:  # aggregates bypass the column type on SQLite
            next_due = next_due.replace(tzinfo=UTC)
        wait = (next_due - datetime.now(UTC)).total_seconds()
        return min(max(wait, 0.0), self.poll_seconds)

    async def feed_due(self) -> int:
        """Push every due scan; returns how many scans were pushed."""
        now = datetime.now(UTC)
        async with self.db.reading() as session:
            due_shipments = (
                (
                    await session.execute(
                        sa.select(SimulatedEvent.shipment_id)
                        .where(
                            SimulatedEvent.delivered.is_(False),
                            SimulatedEvent.cancelled.is_(False),
                            SimulatedEvent.due_at <= now,
                        )
                        .group_by(SimulatedEvent.shipment_id)
                        .order_by(sa.func.min(SimulatedEvent.due_at))
                        .limit(BATCH_SHIPMENTS)
                    )
                )
                .scalars()
                .all()
            )
        pushed = 0
        for shipment_id in due_shipments:
            pushed += await self._feed_shipment(shipment_id, now)
        return pushed

    async def _feed_shipment(self, shipment_id: str, now: datetime) -> int:
        # A carrier push starts a trace of its own, like a webhook request does.
        with self._tracer.start_as_current_span(
            "simulated carrier push",
            kind=SpanKind.PRODUCER,
            attributes={"shipment.id": shipment_id},
        ):
            return await self._push(shipment_id, now)

    async def _push(self, shipment_id: str, now: datetime) -> int:
        async with self.db.transaction() as session:
            # Lock order (shipment, then its plan) matches cancellation's.
            locked = await session.execute(
                sa.select(Shipment.id).where(Shipment.id == shipment_id).with_for_update()
            )
            if locked.first() is None:
                return 0
            rows = (
                (
                    await session.execute(
                        sa.select(SimulatedEvent)
                        .where(
                            SimulatedEvent.shipment_id == shipment_id,
                            SimulatedEvent.delivered.is_(False),
                            SimulatedEvent.cancelled.is_(False),
                            SimulatedEvent.due_at <= now,
                        )
                        .order_by(SimulatedEvent.seq)
                        .with_for_update()
                    )
                )
                .scalars()
                .all()
            )
            if not rows:
                return 0
            headers, body = self.carrier.webhook_request([as_scan(r) for r in rows])
            scans = self.carrier.parse_webhook(headers, body)
            await domain.ingest(
                session, source=self.source, adapter=self.carrier, events=scans, channel="simulator"
            )
            for row in rows:
                row.delivered = True
                row.delivered_at = now
        return len(rows)
