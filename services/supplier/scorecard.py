"""How a supplier performs, measured on its closed purchase orders, and the observed lead
time the replenishment plan uses once there is enough of it.

- on time: received (`received_at`'s UTC day) by the promised date, or by need-by when
  the PO was never acknowledged (`purchase_orders.close` records it);
- fill rate: units received / units ordered;
- acknowledgement time: ordered to acknowledged, hours (closed POs that were acknowledged);
- lead time: ordered to received, days; mean and sample standard deviation.

`observed_lead_time` is what `signals.load_inputs` takes instead of the item's declared
lead time and deviation once a supplier x SKU has `MIN_OBSERVED` closed POs.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.statuses import PO_ON_ORDER, PurchaseOrderStatus
from services.supplier.models import PurchaseOrder, VendorReturn
from services.supplier.schemas import ScorecardOut

MIN_OBSERVED = 3  # closed POs of a supplier x SKU before its observed lead time is used
DAY_SECONDS = 86_400.0


@dataclass(frozen=True)
class LeadTime:
    """Observed lead time in days (mean, sample standard deviation) over `count` POs."""

    mean_days: float
    sd_days: float
    count: int


def lead_days(po: PurchaseOrder) -> float | None:
    if po.ordered_at is None or po.received_at is None:
        return None
    return (po.received_at - po.ordered_at).total_seconds() / DAY_SECONDS


def lead_time_of(days: list[float]) -> LeadTime | None:
    if not days:
        return None
    sd = statistics.stdev(days) if len(days) > 1 else 0.0
    return LeadTime(mean_days=statistics.fmean(days), sd_days=sd, count=len(days))


async def _closed(
    session: AsyncSession, supplier_id: str, sku: str | None = None
) -> list[PurchaseOrder]:
    query = sa.select(PurchaseOrder).where(
        PurchaseOrder.supplier_id == supplier_id,
        PurchaseOrder.status == PurchaseOrderStatus.CLOSED.value,
    )
    if sku is not None:
        query = query.where(PurchaseOrder.sku == sku)
    return list((await session.execute(query)).scalars())


async def observed_lead_time(session: AsyncSession, supplier_id: str, sku: str) -> LeadTime | None:
    """The supplier x SKU's observed lead time, None below `MIN_OBSERVED` closed POs."""
    days = [
        d for po in await _closed(session, supplier_id, sku) if (d := lead_days(po)) is not None
    ]
    if len(days) < MIN_OBSERVED:
        return None
    return lead_time_of(days)


async def scorecard(session: AsyncSession, supplier_id: str) -> ScorecardOut:
    closed = await _closed(session, supplier_id)
    open_count = await session.scalar(
        sa.select(sa.func.count()).where(
            PurchaseOrder.supplier_id == supplier_id,
            PurchaseOrder.status.in_([s.value for s in PO_ON_ORDER]),
        )
    )
    returns = (
        await session.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(VendorReturn.quantity), 0))
            .select_from(VendorReturn)
            .where(VendorReturn.supplier_id == supplier_id)
        )
    ).one()
    ordered = sum(po.quantity for po in closed)
    acks = [
        (po.acknowledged_at - po.ordered_at).total_seconds() / 3600
        for po in closed
        if po.acknowledged_at is not None and po.ordered_at is not None
    ]
    lead = lead_time_of([d for po in closed if (d := lead_days(po)) is not None])
    return ScorecardOut(
        supplier_id=supplier_id,
        pos_closed=len(closed),
        pos_open=int(open_count or 0),
        on_time_rate=sum(1 for po in closed if po.on_time) / len(closed) if closed else None,
        fill_rate=sum(po.quantity_received for po in closed) / ordered if ordered else None,
        mean_ack_hours=statistics.fmean(acks) if acks else None,
        lead_time_mean_days=lead.mean_days if lead else None,
        lead_time_sd_days=lead.sd_days if lead and lead.count > 1 else None,
        vendor_returns=int(returns[0]),
        vendor_returned_units=int(returns[1]),
    )
