"""The vendor-managed-inventory view: what a supplier sees of the stock of its own items.

For every SKU the supplier sells today, each warehouse that has a replenishment policy
for it or stock of it: on hand, reserved, held, available, the pair's share of the SKU's
backorders, on order, the inventory position, demand of the last 30 and 90 days and,
where a policy exists, the forecast and the reorder point and target, planned with the
supplier's own terms (its lead time, MOQ and pack size: what its proposals are held to).
Only the supplier's own open signal of a pair is shown.
"""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.supplier import positions, signals, suppliers
from services.supplier.models import ReplenishmentPolicy, StockPosition, Supplier
from services.supplier.schemas import InventoryOut, InventoryRow


async def inventory(session: AsyncSession, supplier: Supplier, today: date) -> InventoryOut:
    items = await suppliers.supplier_items_on(session, supplier.id, today)
    skus = sorted({item.sku for item in items})
    if not skus:
        return InventoryOut(supplier_id=supplier.id, as_of=today, items=[])
    pairs: set[tuple[str, str]] = set()
    for table in (ReplenishmentPolicy, StockPosition):
        rows = await session.execute(
            sa.select(table.sku, table.warehouse_id).where(table.sku.in_(skus))
        )
        pairs.update((sku, wh) for sku, wh in rows)
    keys = sorted(pairs)
    found = {
        key: await signals.load_inputs(session, *key, today, supplier_id=supplier.id)
        for key in keys
    }
    ready = {key: inputs for key, inputs in found.items() if inputs is not None}
    forecasts = await signals.forecast_each([i.history for i in ready.values()])
    plans = dict(
        zip(
            ready,
            zip(forecasts, signals.plan_each(list(ready.values()), forecasts, today), strict=True),
            strict=True,
        )
    )
    out: list[InventoryRow] = []
    for sku, warehouse_id in keys:
        pos = await positions.position(session, sku, warehouse_id)
        planned = plans.get((sku, warehouse_id))
        mine = await signals.open_signal(session, sku, warehouse_id, supplier.id)
        out.append(
            InventoryRow(
                sku=sku,
                warehouse_id=warehouse_id,
                on_hand=pos.on_hand,
                reserved=pos.reserved,
                held=pos.held,
                available=pos.available,
                backordered=pos.backordered,
                on_order=pos.on_order,
                position=pos.value,
                has_policy=await session.get(ReplenishmentPolicy, (sku, warehouse_id)) is not None,
                forecast_method=str(planned[0].method) if planned else None,
                forecast_daily_mean=planned[0].daily_mean if planned else None,
                reorder_point=planned[1].reorder_point if planned else None,
                target=planned[1].target if planned else None,
                demand_30d=await positions.demand_since(session, sku, warehouse_id, today, 30),
                demand_90d=await positions.demand_since(session, sku, warehouse_id, today, 90),
                open_signal_id=mine.id if mine else None,
                updated_at=pos.updated_at,
            )
        )
    return InventoryOut(supplier_id=supplier.id, as_of=today, items=out)
