"""Events the order service consumes: shipment progress, kept as the status read model,
returns' dispositions, whose restocked lots go back into the ledger, and the supplier
service's purchase-order receipts, booked into the ledger with their supplier and PO.

The shipment service alone decides a shipment's status and publishes it with a
`revision` that grows with each change. The read model applies an event's `status` (and
ETA) iff its revision is higher than the one applied last, and keeps every tracking
event in the history whatever order they arrive in; it never compares `occurred_at`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.common import events as ev
from services.common.app import Runtime
from services.common.envelope import Envelope
from services.common.inbox import Handler, InboxConsumer, JetStreamWorker
from services.common.problems import ProblemError
from services.common.retry import PermanentError
from services.common.statuses import SHIPMENT_NOT_DISPATCHED, Disposition, ShipmentStatus
from services.order import stock
from services.order.models import ShipmentView, ShipmentViewEvent
from services.order.orders import note, open_task

# Final statuses whose stock went back on the shelf although the carrier never said it
# had the parcel: a later scan that says it did means the goods are not where the books are.
RESTOCKED_UNSCANNED = frozenset({ShipmentStatus.CANCELLED, ShipmentStatus.EXPIRED})
# Scans that do not mean the carrier had the goods.
NOT_CARRYING = SHIPMENT_NOT_DISPATCHED | RESTOCKED_UNSCANNED


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
            status=ShipmentStatus.PENDING,
            revision=0,
            promised_date=event.promised_date,
            eta=event.promised_date,
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


def _follow(
    session: AsyncSession,
    view: ShipmentView,
    status: str,
    revision: int,
    detail: str,
    eta: str | None = None,
) -> None:
    """Apply the owner's status iff `revision` is newer than the one applied. An event
    without one (revision 0, from a shipment service before revisions) applies while the
    view has none either: per shipment, events arrive in the owner's commit order."""
    if revision <= view.revision and not revision == view.revision == 0:
        return
    if view.status != status:
        note(session, view.order_id, f"shipment_{status}", f"{view.tracking_number}: {detail}")
    view.status = status
    view.revision = revision
    if eta is not None:
        view.eta = eta
    view.updated_at = datetime.now(UTC)


async def on_tracking(session: AsyncSession, event: Any, envelope: Envelope) -> None:
    assert isinstance(event, ev.ShipmentTrackingUpdated)
    view = await _view(session, event.shipment_id)
    new_scan = await session.get(ShipmentViewEvent, (event.shipment_id, event.event_id)) is None
    if new_scan:
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
    detail = event.description or event.status
    _follow(session, view, event.status, event.revision, detail, eta=event.eta)
    if view.status == ShipmentStatus.DELIVERED and view.delivered_at is None:
        view.delivered_at = event.occurred_at
    if new_scan and view.status in RESTOCKED_UNSCANNED and event.event_status not in NOT_CARRYING:
        await open_task(
            session,
            view.order_id,
            f"scan_after_{view.status}",
            f"{view.tracking_number}: the carrier scanned {event.event_status} at "
            f"{event.occurred_at} after the shipment was {view.status} and its stock went "
            "back on the shelf; find the goods and correct the stock",
            key=f"late-scan:{view.shipment_id}",
        )


async def on_cancelled(session: AsyncSession, event: Any, envelope: Envelope) -> None:
    assert isinstance(event, ev.ShipmentCancelled)
    view = await _view(session, event.shipment_id)
    _follow(session, view, event.status, event.revision, event.reason or "cancelled")


def restock_lots(event: ev.ReturnDisposed) -> list[stock.ReturnedLot]:
    """The lots of a disposition that go back on the shelf (disposition `restock`)."""
    return [
        stock.ReturnedLot(sku=d.sku, warehouse_id=d.warehouse_id, lot=d.lot, quantity=d.quantity)
        for d in event.lots
        if d.disposition == Disposition.RESTOCK and d.quantity > 0
    ]


def on_disposed(source: str) -> Handler:
    """The `ReturnDisposed` handler: restocked goods return to their own SKU x warehouse
    x lot (held if the lot is blocked) and fill backorders; the inbox makes a redelivery
    a no-op. A lot the ledger cannot take (unknown SKU or warehouse) is dead-lettered."""

    async def handle(session: AsyncSession, event: Any, envelope: Envelope) -> None:
        assert isinstance(event, ev.ReturnDisposed)
        returned = restock_lots(event)
        try:
            await stock.restock_return(session, event.return_id, returned, source)
        except ProblemError as exc:
            raise PermanentError(f"return {event.return_id}: {exc.detail or exc.code}") from exc
        if returned:
            units = sum(item.quantity for item in returned)
            note(
                session,
                event.order_id,
                "return_restocked",
                f"return {event.return_id}: {units} unit(s) restocked",
            )

    return handle


def on_po_received(source: str) -> Handler:
    """The `PurchaseOrderReceived` handler: each lot is booked in (reference
    `po:<po>:<receipt>`, with the supplier and the PO as purchase reference, so a lot's
    traceability shows where it came from) and fills the SKU's backorders, all in one
    transaction. A lot the ledger refuses for good (unknown SKU or warehouse, an expiry
    in the past or not the lot's) is dead-lettered with the whole receipt."""

    async def handle(session: AsyncSession, event: Any, envelope: Envelope) -> None:
        assert isinstance(event, ev.PurchaseOrderReceived)
        for lot in event.lots:
            try:
                await stock.receive(
                    session,
                    warehouse_id=event.warehouse_id,
                    sku=event.sku,
                    lot=lot.lot,
                    expiry=date.fromisoformat(lot.expiry) if lot.expiry else None,
                    quantity=lot.quantity,
                    reference=f"po:{event.po_id}:{event.receipt_id}",
                    supplier_id=event.supplier_id,
                    purchase_reference=event.po_id,
                    actor=f"supplier:{event.supplier_id}",
                    source=source,
                )
            except ProblemError as exc:
                raise PermanentError(
                    f"PO {event.po_id} receipt {event.receipt_id} lot {lot.lot}: "
                    f"{exc.detail or exc.code}"
                ) from exc

    return handle


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
        ),
        InboxConsumer(
            db=runtime.db,
            bus=runtime.bus,
            service="order",
            name="order-returns",
            max_deliver=settings.consumer_max_deliver,
            backoff_seconds=settings.consumer_backoff_seconds,
            handlers={ev.ReturnDisposed: on_disposed(runtime.source)},
        ),
        InboxConsumer(
            db=runtime.db,
            bus=runtime.bus,
            service="order",
            name="po-receipts",
            max_deliver=settings.consumer_max_deliver,
            backoff_seconds=settings.consumer_backoff_seconds,
            handlers={ev.PurchaseOrderReceived: on_po_received(runtime.source)},
        ),
    ]
