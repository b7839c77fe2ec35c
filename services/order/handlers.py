"""Events the order service consumes: shipment progress, kept as the status read model."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.common import events as ev
from services.common.app import Runtime
from services.common.envelope import Envelope
from services.common.inbox import InboxConsumer, JetStreamWorker
from services.order.models import ShipmentView, ShipmentViewEvent
from services.order.orders import note

TERMINAL = {"delivered", "returned_to_sender", "expired", "cancelled"}


class ShipmentNotYetKnown(Exception):
    """A tracking event overtook its shipment's creation event; retried shortly."""


async def on_created(session: AsyncSession, event: Any, envelope: Envelope) -> None:
    assert isinstance(event, ev.ShipmentCreated)
    if await session.get(ShipmentView, event.shipment_id) is not None:
        return
    session.add(
        ShipmentView(
            shipment_id=event.shipment_id,
            order_id=event.order_id,
            warehouse_id=event.warehouse_id,
            carrier=event.carrier,
            service_level=event.service_level,
            tracking_number=event.tracking_number,
            status="pending",
            promised_date=event.promised_date,
            eta=event.promised_date,
            latest_event_at=None,
            final_status=None,
            lots=[lot.model_dump() for lot in event.lots],
            updated_at=datetime.now(UTC),
        )
    )
    note(
        session,
        event.order_id,
        "shipment_created",
        f"{event.carrier} {event.tracking_number} from {event.warehouse_id}, "
        f"promised {event.promised_date}",
    )


async def _view(session: AsyncSession, shipment_id: str) -> ShipmentView:
    view = await session.get(ShipmentView, shipment_id)
    if view is None:
        raise ShipmentNotYetKnown(shipment_id)
    return view


async def on_tracking(session: AsyncSession, event: Any, envelope: Envelope) -> None:
    assert isinstance(event, ev.ShipmentTrackingUpdated)
    view = await _view(session, event.shipment_id)
    if await session.get(ShipmentViewEvent, (event.shipment_id, event.event_id)) is None:
        session.add(
            ShipmentViewEvent(
                shipment_id=event.shipment_id,
                event_id=event.event_id,
                status=event.event_status,
                occurred_at=event.occurred_at,
                location=event.location,
                description=event.description,
            )
        )
    # Follow the newest event; an ended shipment keeps its status.
    if view.status in TERMINAL:
        return
    if view.latest_event_at is None or event.occurred_at >= view.latest_event_at:
        view.latest_event_at = event.occurred_at
        if view.status != event.status:
            note(
                session,
                view.order_id,
                f"shipment_{event.status}",
                f"{view.tracking_number}: {event.description or event.status}",
            )
        view.status = event.status
        view.eta = event.eta
        view.updated_at = datetime.now(UTC)


async def on_cancelled(session: AsyncSession, event: Any, envelope: Envelope) -> None:
    assert isinstance(event, ev.ShipmentCancelled)
    view = await _view(session, event.shipment_id)
    if view.status != "cancelled":
        view.status = "cancelled"
        view.updated_at = datetime.now(UTC)
        note(session, view.order_id, "shipment_cancelled", view.tracking_number)


def workers(runtime: Runtime) -> Sequence[JetStreamWorker]:
    settings = runtime.settings
    return [
        InboxConsumer(
            db=runtime.db,
            bus=runtime.bus,
            service="order",
            name="shipment-views",
            max_deliver=settings.consumer_max_deliver + 5,
            backoff_seconds=settings.consumer_backoff_seconds,
            handlers={
                ev.ShipmentCreated: on_created,
                ev.ShipmentTrackingUpdated: on_tracking,
                ev.ShipmentCancelled: on_cancelled,
            },
        )
    ]
