"""The inventory read model kept from ORDER events, and the inventory position.

- `stock_positions`: the latest `InventoryChanged` per SKU x warehouse (events about one
  pair arrive in the order service's commit order, so the latest delivered is the
  latest). It carries the SKU's open backorders (all warehouses), which the order
  service announces in every event and on every change of backorders alone.
- `demand_daily`: units reserved for orders per SKU x warehouse and UTC day of the
  event, from `OrderConfirmed` and `OrderBackorderFilled`. An order's
  `OrderBackorderFilled` carries the allocations filled from backorders and its later
  `OrderConfirmed` every reservation, so `demand_orders` remembers what each order
  has counted and only the growth is added: nothing is counted twice. A redelivered
  event is skipped by the inbox.

Position = on hand - reserved - held - backorders + on order. Backorders are per SKU,
positions per SKU x warehouse: a SKU's backorders are shared equally between the
warehouses that have a replenishment policy for it (the first warehouses by id take
one more unit each when they do not divide evenly; with no policy, between the
warehouses its stock is in). On order is what open purchase orders (approved,
acknowledged, shipped) still lack, so a confirmed PO that has not arrived keeps the
position up and never triggers a second order.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import events as ev
from services.common.statuses import PO_ON_ORDER, PurchaseOrderStatus
from services.supplier.models import (
    DemandDaily,
    DemandOrder,
    PurchaseOrder,
    ReplenishmentPolicy,
    StockPosition,
)


def _insert(session: AsyncSession, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def utc_day(at: datetime) -> date:
    return at.astimezone(UTC).date()


# --- applying events ------------------------------------------------------------------


async def apply_inventory(
    session: AsyncSession, event: ev.InventoryChanged, observed_at: datetime
) -> None:
    """The pair's stock as the event states it (the latest delivered wins)."""
    values = {
        "on_hand": event.on_hand,
        "reserved": event.reserved,
        "held": event.held,
        "available": event.available,
        "backordered": event.backordered,
        "observed_at": observed_at,
        "updated_at": datetime.now(UTC),
    }
    stmt = _insert(session, StockPosition.__table__).values(  # type: ignore[arg-type]
        sku=event.sku, warehouse_id=event.warehouse_id, **values
    )
    await session.execute(
        stmt.on_conflict_do_update(index_elements=["sku", "warehouse_id"], set_=values)
    )
    for booked in event.receipts:  # now in on_hand: no longer on order
        await session.execute(
            sa.update(PurchaseOrder)
            .where(
                PurchaseOrder.id == booked.purchase_reference,
                PurchaseOrder.sku == event.sku,
                PurchaseOrder.warehouse_id == event.warehouse_id,
            )
            .values(quantity_booked=PurchaseOrder.quantity_booked + booked.quantity)
        )


async def add_demand(
    session: AsyncSession, order_id: str, allocations: list[ev.LotQuantity], at: datetime
) -> None:
    """Count what the order has reserved beyond what its earlier events counted, on the
    event's UTC day."""
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for allocation in allocations:
        totals[(allocation.sku, allocation.warehouse_id)] += allocation.quantity
    day = utc_day(at)
    for (sku, warehouse_id), quantity in sorted(totals.items()):
        counted = await session.get(DemandOrder, (order_id, sku, warehouse_id))
        before = counted.quantity if counted is not None else 0
        if quantity <= before:
            continue
        if counted is None:
            session.add(
                DemandOrder(
                    order_id=order_id, sku=sku, warehouse_id=warehouse_id, quantity=quantity
                )
            )
        else:
            counted.quantity = quantity
        grown = quantity - before
        stmt = _insert(session, DemandDaily.__table__).values(  # type: ignore[arg-type]
            sku=sku, warehouse_id=warehouse_id, day=day, quantity=grown
        )
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=["sku", "warehouse_id", "day"],
                set_={"quantity": DemandDaily.__table__.c.quantity + grown},
            )
        )
    await session.flush()


# --- reading ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Position:
    """One pair's stock and what counts towards its inventory position."""

    on_hand: int = 0
    reserved: int = 0
    held: int = 0
    available: int = 0
    backordered: int = 0  # this pair's share of the SKU's open backorders
    on_order: int = 0
    updated_at: datetime | None = None

    @property
    def value(self) -> int:
        return self.on_hand - self.reserved - self.held - self.backordered + self.on_order


# What a purchase order will put into stock: all it orders while it is open, what it
# received once it was received, closed or cancelled.
_EXPECTED = sa.case(
    (
        PurchaseOrder.status.in_([s.value for s in PO_ON_ORDER]),
        PurchaseOrder.quantity,
    ),
    else_=PurchaseOrder.quantity_received,
)


async def on_order(session: AsyncSession, sku: str, warehouse_id: str) -> int:
    """Units the pair's purchase orders will still put into stock: what each is expected
    to bring (`_EXPECTED`) less what the order service has reported booked
    (`InventoryChanged.receipts`, applied with the on-hand it raised). Goods received
    here but not yet booked there so stay on order, and a close or an evaluation in
    between never orders them a second time."""
    outstanding = _EXPECTED - PurchaseOrder.quantity_booked
    total = await session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(outstanding), 0)).where(
            PurchaseOrder.sku == sku,
            PurchaseOrder.warehouse_id == warehouse_id,
            PurchaseOrder.status != PurchaseOrderStatus.CANCELLED.value,
            outstanding > 0,
        )
    )
    return int(total or 0)


def share(total: int, warehouses: list[str], warehouse_id: str) -> int:
    """`warehouse_id`'s equal share of `total` among `warehouses` (sorted; the first take
    the remainder, one unit each); 0 for a warehouse not among them."""
    if total <= 0 or warehouse_id not in warehouses:
        return 0
    ordered = sorted(warehouses)
    base, extra = divmod(total, len(ordered))
    return base + (1 if ordered.index(warehouse_id) < extra else 0)


async def backorder_share(
    session: AsyncSession, sku: str, warehouse_id: str, rows: list[StockPosition] | None = None
) -> int:
    """The pair's share of the SKU's open backorders (the most recent event's figure)."""
    if rows is None:
        rows = list(
            (await session.execute(sa.select(StockPosition).where(StockPosition.sku == sku)))
            .scalars()
            .all()
        )
    if not rows:
        return 0
    latest = max(rows, key=lambda row: (row.observed_at, row.warehouse_id))
    policies = list(
        await session.scalars(
            sa.select(ReplenishmentPolicy.warehouse_id).where(ReplenishmentPolicy.sku == sku)
        )
    )
    among = policies or [row.warehouse_id for row in rows]
    return share(latest.backordered, among, warehouse_id)


async def position(session: AsyncSession, sku: str, warehouse_id: str) -> Position:
    """The pair's stock, backorder share and on order (zeros before any event)."""
    rows = list(
        (await session.execute(sa.select(StockPosition).where(StockPosition.sku == sku)))
        .scalars()
        .all()
    )
    row = next((r for r in rows if r.warehouse_id == warehouse_id), None)
    backordered = await backorder_share(session, sku, warehouse_id, rows)
    ordered = await on_order(session, sku, warehouse_id)
    if row is None:
        return Position(backordered=backordered, on_order=ordered)
    return Position(
        on_hand=row.on_hand,
        reserved=row.reserved,
        held=row.held,
        available=row.available,
        backordered=backordered,
        on_order=ordered,
        updated_at=row.updated_at,
    )


async def history(
    session: AsyncSession, sku: str, warehouse_id: str, today: date, days: int
) -> list[float]:
    """Daily demand of the `days` days up to and including `today`, oldest first, days
    without demand as 0."""
    start = today - timedelta(days=days - 1)
    rows = await session.execute(
        sa.select(DemandDaily.day, DemandDaily.quantity).where(
            DemandDaily.sku == sku,
            DemandDaily.warehouse_id == warehouse_id,
            DemandDaily.day >= start,
            DemandDaily.day <= today,
        )
    )
    by_day = {day: quantity for day, quantity in rows}
    return [float(by_day.get(start + timedelta(days=i), 0)) for i in range(days)]


async def demand_since(
    session: AsyncSession, sku: str, warehouse_id: str, today: date, days: int
) -> int:
    """Units demanded in the `days` days up to and including `today`."""
    total = await session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(DemandDaily.quantity), 0)).where(
            DemandDaily.sku == sku,
            DemandDaily.warehouse_id == warehouse_id,
            DemandDaily.day > today - timedelta(days=days),
            DemandDaily.day <= today,
        )
    )
    return int(total or 0)
