"""Vendor returns: returned goods whose disposition is `return_to_vendor` go back to the
supplier that delivered their lot, for a credit of quantity x that PO's unit cost.

`ReturnDisposed` (RETURNS stream, consumer `supplier-vendor-returns`) names each lot's
SKU; the supplier is the one whose PO receipt (`po_receipts`) brought that SKU x lot in
(the latest, should two have). Each lot becomes a `vendor_returns` row and stages
`VendorReturnCredited`, in the inbox entry's transaction, so a redelivered event changes
nothing. A lot no receipt knows (stock booked before purchase orders existed, or received
at the order service directly) is recorded with supplier None, no credit and a note saying
so: a coordinator sees it and settles it by hand. It is not dead-lettered, because no
replay would ever make it known and the returns service's disposition stands either way;
a dead letter would only wait for nothing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import events as ev
from services.common.outbox import stage
from services.common.pagination import decode_time_cursor, encode_time_cursor
from services.common.statuses import Disposition
from services.supplier.models import PurchaseOrder, PurchaseOrderReceipt, VendorReturn
from services.supplier.purchase_orders import credit
from services.supplier.schemas import VendorReturnOut, VendorReturnPage

UNKNOWN_LOT_NOTE = (
    "no purchase-order receipt knows lot {lot} of {sku}: supplier unknown, no credit "
    "claimed; settle it by hand"
)


async def _receipt_of(session: AsyncSession, sku: str, lot: str) -> PurchaseOrderReceipt | None:
    return (
        await session.execute(
            sa.select(PurchaseOrderReceipt)
            .where(PurchaseOrderReceipt.sku == sku, PurchaseOrderReceipt.lot == lot)
            .order_by(PurchaseOrderReceipt.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


async def record(
    session: AsyncSession, source: str, event: ev.ReturnDisposed
) -> list[VendorReturn]:
    """The vendor returns of a disposition (its `return_to_vendor` lots)."""
    made: list[VendorReturn] = []
    for lot in event.lots:
        if lot.disposition != Disposition.RETURN_TO_VENDOR or lot.quantity <= 0:
            continue
        receipt = await _receipt_of(session, lot.sku, lot.lot)
        po = await session.get(PurchaseOrder, receipt.po_id) if receipt else None
        row = VendorReturn(
            id=str(uuid.uuid4()),
            supplier_id=po.supplier_id if po else None,
            po_id=po.id if po else None,
            return_id=event.return_id,
            sku=lot.sku,
            warehouse_id=lot.warehouse_id,
            lot=lot.lot,
            quantity=lot.quantity,
            unit_cost=po.unit_cost if po else None,
            credit_amount=credit(lot.quantity, po.unit_cost) if po else None,
            currency=po.currency if po else None,
            note=None if po else UNKNOWN_LOT_NOTE.format(lot=lot.lot, sku=lot.sku),
            created_at=datetime.now(UTC),
        )
        session.add(row)
        made.append(row)
        if po is None or row.credit_amount is None or row.currency is None:
            continue
        await stage(
            session,
            source,
            ev.VendorReturnCredited(
                vendor_return_id=row.id,
                supplier_id=po.supplier_id,
                po_id=po.id,
                return_id=event.return_id,
                sku=lot.sku,
                lot=lot.lot,
                quantity=lot.quantity,
                credit_amount=str(row.credit_amount),
                currency=row.currency,
            ),
            subject=row.id,
        )
    return made


async def page(
    session: AsyncSession, supplier_id: str, *, limit: int, cursor: str | None
) -> VendorReturnPage:
    query = (
        sa.select(VendorReturn)
        .where(VendorReturn.supplier_id == supplier_id)
        .order_by(VendorReturn.created_at.desc(), VendorReturn.id.desc())
        .limit(limit + 1)
    )
    if cursor:
        at, last_id = decode_time_cursor(cursor)
        query = query.where(
            sa.tuple_(VendorReturn.created_at, VendorReturn.id)
            < sa.tuple_(sa.literal(at), sa.literal(last_id))
        )
    rows = list((await session.execute(query)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return VendorReturnPage(
        items=[VendorReturnOut.model_validate(row) for row in rows],
        next_cursor=encode_time_cursor(rows[-1].created_at, rows[-1].id) if more else None,
    )
