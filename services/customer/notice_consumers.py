"""Events that notify customers (consumers `customer-return-notices` on RETURNS and
`customer-shipment-notices` on SHIPMENT).

Each handler turns one event into the notice it owes (`notices.create`) in the inbox
entry's transaction, so an event is noticed exactly once. Shipment events name the
customer in `customer_id`; those published before the field existed are matched through
the shipment's `ShipmentCreated`, remembered here (`customer_shipments`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.common.app import Runtime
from services.common.envelope import Envelope
from services.common.events import (
    Event,
    RecallNoticeIssued,
    ReturnAuthorized,
    ReturnAwaitingReceipt,
    ReturnEvent,
    ReturnExpired,
    ReturnRefunded,
    ReturnRejected,
    ShipmentCreated,
    ShipmentDelivered,
    ShipmentException,
    ShipmentTrackingUpdated,
)
from services.common.inbox import Handler, InboxConsumer
from services.common.statuses import ShipmentStatus
from services.customer import notices
from services.customer.models import ShipmentCustomer
from services.customer.notices import Cause, NoticeKind

log = logging.getLogger(__name__)

RETURN_CONSUMER = "return-notices"
SHIPMENT_CONSUMER = "shipment-notices"

RETURN_KINDS: dict[type[ReturnEvent], NoticeKind] = {
    ReturnAuthorized: NoticeKind.RETURN_AUTHORIZED,
    ReturnAwaitingReceipt: NoticeKind.RETURN_AWAITING_RECEIPT,
    ReturnRejected: NoticeKind.RETURN_REJECTED,
    ReturnExpired: NoticeKind.RETURN_EXPIRED,
    ReturnRefunded: NoticeKind.RETURN_REFUNDED,
}


def _cause(envelope: Envelope) -> Cause:
    return Cause(event_id=envelope.id, event_type=envelope.type)


def _context(event: Event, **extra: Any) -> dict[str, Any]:
    """The event's fields (what the templates read), as JSON values."""
    return {**event.model_dump(mode="json"), **extra}


def return_handler(kind: NoticeKind) -> Handler:
    async def on_return(session: AsyncSession, event: ReturnEvent, envelope: Envelope) -> None:
        # A return is authorized, rejected... once; a refund is one credit record.
        said = event.refund_id if isinstance(event, ReturnRefunded) else event.return_id
        await notices.create(
            session,
            customer_id=event.customer_id,
            kind=kind,
            cause=_cause(envelope),
            reference=event.return_id,
            context=_context(event),
            dedupe_key=f"{kind.value}:{said}",
        )

    return on_return


async def on_recall_notice(
    session: AsyncSession, event: RecallNoticeIssued, envelope: Envelope
) -> None:
    await notices.create(
        session,
        customer_id=event.customer_id,
        kind=NoticeKind.RECALL_NOTICE,
        cause=_cause(envelope),
        reference=event.recall_id,
        context=_context(event),
        dedupe_key=f"{NoticeKind.RECALL_NOTICE.value}:{event.recall_id}:{event.return_id}",
    )


async def on_shipment_created(
    session: AsyncSession, event: ShipmentCreated, envelope: Envelope
) -> None:
    if await session.get(ShipmentCustomer, event.shipment_id) is None:
        session.add(
            ShipmentCustomer(
                shipment_id=event.shipment_id,
                customer_id=event.customer_id,
                order_id=event.order_id,
                tracking_number=event.tracking_number,
                recorded_at=datetime.now(UTC),
            )
        )


async def _shipment_customer(
    session: AsyncSession, shipment_id: str, customer_id: str | None
) -> tuple[str | None, str | None]:
    """(customer id, tracking number) of a shipment: from the event, else from the map."""
    known = await session.get(ShipmentCustomer, shipment_id)
    tracking = known.tracking_number if known else None
    if customer_id:
        return customer_id, tracking
    return (known.customer_id if known else None), tracking


ShipmentEvent = ShipmentException | ShipmentTrackingUpdated | ShipmentDelivered


def shipment_handler(
    kind: NoticeKind, applies: Callable[[Any], bool] = lambda _: True, *, once: bool = True
) -> Callable[[AsyncSession, Any, Envelope], Awaitable[None]]:
    """A handler notifying `kind` for the events `applies` to; `once`: at most one such
    notice per shipment (a carrier may scan "out for delivery" twice), else one per event
    (each exception is news)."""

    async def on_shipment(session: AsyncSession, event: ShipmentEvent, envelope: Envelope) -> None:
        if not applies(event):
            return
        customer_id, tracking = await _shipment_customer(
            session, event.shipment_id, event.customer_id
        )
        if customer_id is None:
            log.warning(
                "%s for shipment %s names no customer and none is known; no notice",
                envelope.type,
                event.shipment_id,
            )
            return
        extra: dict[str, Any] = {}
        if tracking and not getattr(event, "tracking_number", None):
            extra["tracking_number"] = tracking
        await notices.create(
            session,
            customer_id=customer_id,
            kind=kind,
            cause=_cause(envelope),
            reference=event.shipment_id,
            context=_context(event, **extra),
            dedupe_key=f"{kind.value}:{event.shipment_id}" if once else None,
        )

    return on_shipment


def _out_for_delivery(event: ShipmentTrackingUpdated) -> bool:
    return event.status == ShipmentStatus.OUT_FOR_DELIVERY


def notice_consumers(runtime: Runtime) -> list[InboxConsumer]:
    """The two notice consumers (one per stream they read)."""
    returns: dict[Any, Handler] = {event: return_handler(k) for event, k in RETURN_KINDS.items()}
    returns[RecallNoticeIssued] = on_recall_notice
    shipments: dict[Any, Handler] = {
        ShipmentCreated: on_shipment_created,
        ShipmentException: shipment_handler(NoticeKind.SHIPMENT_EXCEPTION, once=False),
        ShipmentTrackingUpdated: shipment_handler(
            NoticeKind.SHIPMENT_OUT_FOR_DELIVERY, _out_for_delivery
        ),
        ShipmentDelivered: shipment_handler(NoticeKind.SHIPMENT_DELIVERED),
    }
    settings = runtime.settings
    return [
        InboxConsumer(
            db=runtime.db,
            bus=runtime.bus,
            service=settings.service,
            name=name,
            handlers=handlers,
            max_deliver=settings.consumer_max_deliver,
            backoff_seconds=settings.consumer_backoff_seconds,
        )
        for name, handlers in ((RETURN_CONSUMER, returns), (SHIPMENT_CONSUMER, shipments))
    ]
