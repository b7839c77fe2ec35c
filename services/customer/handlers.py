"""Open order exposure from order events (consumer `customer-exposure`).

`OrderPlaced` opens an order's contribution to its customer's exposure;
`OrderCancelled` and `OrderCompleted` close it. Events may arrive in any order and
more than once: a close seen before the placement leaves a closed row, so the late
placement does not count the order. Each change of a known customer's exposure stages
`CustomerCreditChanged` in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.app import Runtime
from services.common.envelope import Envelope
from services.common.events import OrderCancelled, OrderCompleted, OrderPlaced
from services.common.inbox import Handler, InboxConsumer, JetStreamWorker, PermanentError
from services.common.outbox import stage
from services.customer import domain
from services.customer.api import credit_changed, mark_check_counted, open_order_total
from services.customer.models import Customer, OpenOrder
from services.customer.notice_consumers import notice_consumers

log = logging.getLogger(__name__)

CONSUMER = "exposure"


def _amount(total: str, order_id: str) -> Decimal:
    try:
        amount = domain.money(total)
    except ValueError as exc:
        raise PermanentError(f"order {order_id} has no valid total: {total!r}") from exc
    if amount < 0:
        raise PermanentError(f"order {order_id} has a negative total: {total}")
    return amount


async def _order_row(session: AsyncSession, order_id: str) -> OpenOrder | None:
    stmt = sa.select(OpenOrder).where(OpenOrder.order_id == order_id).with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def _lock_customer(session: AsyncSession, customer_id: str) -> Customer | None:
    """Lock the customer row (PostgreSQL): the credit check locks it too, so a check and
    the order events of one customer never interleave. Without it, a check committing
    while `order.placed` is handled could be missed by `mark_check_counted` and stay
    pending for ever."""
    stmt = sa.select(Customer).where(Customer.id == customer_id).with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def _exposure_changed(session: AsyncSession, source: str, customer_id: str) -> None:
    """Stage CustomerCreditChanged with the new exposure, for a customer we know.

    The customer row is locked (PostgreSQL), so two orders of one customer handled at
    once yield events in commit order, each with the total it committed.
    """
    customer = await _lock_customer(session, customer_id)
    if customer is None:
        log.warning("order exposure for unknown customer %s recorded", customer_id)
        return
    total = await open_order_total(session, customer_id)
    await stage(session, source, credit_changed(customer, total), subject=customer_id)


def placed_handler(source: str) -> Handler:
    async def on_placed(session: AsyncSession, event: OrderPlaced, envelope: Envelope) -> None:
        amount = _amount(event.total, event.order_id)
        await _lock_customer(session, event.customer_id)
        await mark_check_counted(session, event.order_id)
        row = await _order_row(session, event.order_id)
        if row is not None:
            if row.placed_at is None:
                row.placed_at = envelope.time  # closed before we saw it placed: stays closed
                row.updated_at = datetime.now(UTC)
            return
        session.add(
            OpenOrder(
                order_id=event.order_id,
                customer_id=event.customer_id,
                amount=amount,
                status="open",
                placed_at=envelope.time,
                closed_at=None,
                updated_at=datetime.now(UTC),
            )
        )
        await session.flush()
        if amount:
            await _exposure_changed(session, source, event.customer_id)

    return on_placed


def closed_handler(source: str, status: str) -> Handler:
    async def on_closed(
        session: AsyncSession, event: OrderCancelled | OrderCompleted, envelope: Envelope
    ) -> None:
        await _lock_customer(session, event.customer_id)
        await mark_check_counted(session, event.order_id)
        row = await _order_row(session, event.order_id)
        now = datetime.now(UTC)
        if row is None:
            # The end arrived first: remember it, so the placement will not count.
            try:
                amount = _amount(event.total, event.order_id)
            except PermanentError:
                amount = Decimal("0.00")
            session.add(
                OpenOrder(
                    order_id=event.order_id,
                    customer_id=event.customer_id,
                    amount=amount,
                    status=status,
                    placed_at=None,
                    closed_at=envelope.time,
                    updated_at=now,
                )
            )
            return
        if row.status != "open":
            return
        row.status = status
        row.closed_at = envelope.time
        row.updated_at = now
        await session.flush()
        if row.amount:
            await _exposure_changed(session, source, row.customer_id)

    return on_closed


def exposure_consumer(runtime: Runtime) -> InboxConsumer:
    handlers: dict[Any, Handler] = {
        OrderPlaced: placed_handler(runtime.source),
        OrderCancelled: closed_handler(runtime.source, "cancelled"),
        OrderCompleted: closed_handler(runtime.source, "completed"),
    }
    return InboxConsumer(
        db=runtime.db,
        bus=runtime.bus,
        service=runtime.settings.service,
        name=CONSUMER,
        handlers=handlers,
        max_deliver=runtime.settings.consumer_max_deliver,
        backoff_seconds=runtime.settings.consumer_backoff_seconds,
    )


def workers(runtime: Runtime) -> Sequence[JetStreamWorker]:
    """The customer service's consumers."""
    return [exposure_consumer(runtime), *notice_consumers(runtime)]
