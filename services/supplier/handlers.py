"""Events the supplier service consumes (ORDER stream), each in its inbox entry's
transaction (`positions.py` holds the read model's rules):

- `InventoryChanged` sets the pair's stock position, then evaluates the pair when its
  policy reviews continuously (`signals.evaluate`, same transaction: the signal, its
  events and its webhook delivery commit with the position, or none of them);
- `OrderConfirmed` and `OrderBackorderFilled` add the demand their allocations show.

and one of the RETURNS stream (consumer `supplier-vendor-returns`): `ReturnDisposed`'s
`return_to_vendor` lots become vendor returns (`vendor_returns.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.common import events as ev
from services.common.app import Runtime
from services.common.envelope import Envelope
from services.common.inbox import Handler, InboxConsumer, JetStreamWorker
from services.supplier import positions, signals, vendor_returns
from services.supplier.models import ReplenishmentPolicy
from services.supplier.schemas import ReviewMode


async def on_inventory_changed(session: AsyncSession, event: Any, envelope: Envelope) -> None:
    assert isinstance(event, ev.InventoryChanged)
    await positions.apply_inventory(session, event, envelope.time)
    policy = await session.get(ReplenishmentPolicy, (event.sku, event.warehouse_id))
    if policy is not None and policy.review_mode == ReviewMode.CONTINUOUS:
        await signals.evaluate(session, event.sku, event.warehouse_id, datetime.now(UTC).date())


async def on_allocated(session: AsyncSession, event: Any, envelope: Envelope) -> None:
    assert isinstance(event, ev.OrderConfirmed | ev.OrderBackorderFilled)
    await positions.add_demand(session, event.order_id, list(event.allocations), envelope.time)


def on_disposed(source: str) -> Handler:
    async def handle(session: AsyncSession, event: Any, envelope: Envelope) -> None:
        assert isinstance(event, ev.ReturnDisposed)
        await vendor_returns.record(session, source, event)

    return handle


def workers(runtime: Runtime) -> Sequence[JetStreamWorker]:
    settings = runtime.settings
    return [
        InboxConsumer(
            db=runtime.db,
            bus=runtime.bus,
            service="supplier",
            name="stock",
            max_deliver=settings.consumer_max_deliver,
            backoff_seconds=settings.consumer_backoff_seconds,
            handlers={
                ev.InventoryChanged: on_inventory_changed,
                ev.OrderConfirmed: on_allocated,
                ev.OrderBackorderFilled: on_allocated,
            },
        ),
        InboxConsumer(
            db=runtime.db,
            bus=runtime.bus,
            service="supplier",
            name="vendor-returns",
            max_deliver=settings.consumer_max_deliver,
            backoff_seconds=settings.consumer_backoff_seconds,
            handlers={ev.ReturnDisposed: on_disposed(runtime.source)},
        ),
    ]
