"""The delivered-lines read model: what each order placed, paid and had delivered, per
line and lot, kept from ORDER and SHIPMENT events (no calls on the request path).

Events may arrive in any order and more than once: each handler creates the row it
needs when it is missing (a shipment delivered before it was created, a shipment before
its order) and only ever sets facts, so a repeat changes nothing. A shipment returned to
sender or cancelled counts as not delivered, whatever came before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import events as ev
from services.common.app import Runtime
from services.common.envelope import Envelope
from services.common.inbox import InboxConsumer, JetStreamWorker
from services.returns.rma_models import DeliveredLine, DeliveredOrder, DeliveredShipment


async def _order(session: AsyncSession, order_id: str) -> DeliveredOrder:
    row = await session.get(DeliveredOrder, order_id)
    if row is None:
        row = DeliveredOrder(order_id=order_id, placed=False, updated_at=datetime.now(UTC))
        session.add(row)
        await session.flush()
    return row


async def _shipment(session: AsyncSession, shipment_id: str, order_id: str) -> DeliveredShipment:
    row = await session.get(DeliveredShipment, shipment_id)
    if row is None:
        row = DeliveredShipment(
            shipment_id=shipment_id,
            order_id=order_id,
            undelivered=False,
            updated_at=datetime.now(UTC),
        )
        session.add(row)
        await session.flush()
    return row


async def on_placed(session: AsyncSession, event: Any, envelope: Envelope) -> None:
    assert isinstance(event, ev.OrderPlaced)
    order = await _order(session, event.order_id)
    if order.placed:
        return
    order.placed = True
    order.customer_id = event.customer_id
    order.currency = event.currency
    order.updated_at = datetime.now(UTC)
    for line in event.lines:
        session.add(
            DeliveredLine(
                order_id=event.order_id,
                line_no=line.line_no,
                sku=line.sku,
                quantity=line.quantity,
                unit_price=Decimal(line.unit_price),
                category=line.category,
            )
        )


async def on_shipment_created(session: AsyncSession, event: Any, envelope: Envelope) -> None:
    assert isinstance(event, ev.ShipmentCreated)
    row = await _shipment(session, event.shipment_id, event.order_id)
    if row.lots is None:
        row.warehouse_id = event.warehouse_id
        row.lots = [lot.model_dump(mode="json") for lot in event.lots]
        row.updated_at = datetime.now(UTC)


async def on_delivered(session: AsyncSession, event: Any, envelope: Envelope) -> None:
    assert isinstance(event, ev.ShipmentDelivered)
    row = await _shipment(session, event.shipment_id, event.order_id)
    if row.delivered_at is None:
        row.delivered_at = datetime.fromisoformat(event.delivered_at.replace("Z", "+00:00"))
        if row.delivered_at.tzinfo is None:
            row.delivered_at = row.delivered_at.replace(tzinfo=UTC)
        row.updated_at = datetime.now(UTC)


async def on_not_delivered(session: AsyncSession, event: Any, envelope: Envelope) -> None:
    assert isinstance(event, ev.ShipmentReturnedToSender | ev.ShipmentCancelled)
    row = await _shipment(session, event.shipment_id, event.order_id)
    row.undelivered = True
    row.updated_at = datetime.now(UTC)


@dataclass
class DeliveredLotQty:
    lot: str
    warehouse_id: str
    quantity: int


@dataclass
class Delivered:
    """What one order had delivered: per line, the quantity and its lots."""

    order: DeliveredOrder
    lines: dict[int, DeliveredLine]
    delivered: dict[int, int] = field(default_factory=dict)
    lots: dict[int, list[DeliveredLotQty]] = field(default_factory=dict)
    delivered_at: datetime | None = None  # the latest delivery of the order


async def delivered_of(
    session: AsyncSession, order_id: str, *, lock: bool = False
) -> Delivered | None:
    """The order's delivered lines and lots; None when `OrderPlaced` is not known.
    `lock`: hold the order's row (PostgreSQL; SQLite writers are serial already) so
    concurrent returns of one order count each other."""
    query = sa.select(DeliveredOrder).where(DeliveredOrder.order_id == order_id)
    if lock:
        query = query.with_for_update()
    order = (await session.execute(query)).scalar_one_or_none()
    if order is None or not order.placed:
        return None
    lines = {
        line.line_no: line
        for line in (
            await session.execute(
                sa.select(DeliveredLine).where(DeliveredLine.order_id == order_id)
            )
        ).scalars()
    }
    result = Delivered(order=order, lines=lines)
    shipments: Sequence[DeliveredShipment] = (
        (
            await session.execute(
                sa.select(DeliveredShipment)
                .where(DeliveredShipment.order_id == order_id)
                .order_by(DeliveredShipment.shipment_id)
            )
        )
        .scalars()
        .all()
    )
    for shipment in shipments:
        if shipment.delivered_at is None or shipment.undelivered or shipment.lots is None:
            continue
        if result.delivered_at is None or shipment.delivered_at > result.delivered_at:
            result.delivered_at = shipment.delivered_at
        for lot in shipment.lots:
            line_no = lot.get("line_no")
            if line_no is None:  # an older event: the first line of that SKU
                line_no = next((n for n, line in lines.items() if line.sku == lot["sku"]), None)
            if line_no is None:
                continue
            result.delivered[line_no] = result.delivered.get(line_no, 0) + int(lot["quantity"])
            result.lots.setdefault(line_no, []).append(
                DeliveredLotQty(lot["lot"], lot["warehouse_id"], int(lot["quantity"]))
            )
    return result


def workers(runtime: Runtime) -> Sequence[JetStreamWorker]:
    """The read model's consumers: one per stream it reads."""
    settings = runtime.settings
    common: dict[str, Any] = {
        "db": runtime.db,
        "bus": runtime.bus,
        "service": "returns",
        "max_deliver": settings.consumer_max_deliver,
        "backoff_seconds": settings.consumer_backoff_seconds,
    }
    return [
        InboxConsumer(name="delivered-orders", handlers={ev.OrderPlaced: on_placed}, **common),
        InboxConsumer(
            name="delivered-shipments",
            handlers={
                ev.ShipmentCreated: on_shipment_created,
                ev.ShipmentDelivered: on_delivered,
                ev.ShipmentReturnedToSender: on_not_delivered,
                ev.ShipmentCancelled: on_not_delivered,
            },
            **common,
        ),
    ]
