"""A purchase order's lifecycle: one function per transition, each guarding it against
`PO_TRANSITIONS` (`services/common/statuses.py`), changing the row, writing the history
entry and staging the event (subject: the PO id; `revision` counts them) in the caller's
transaction.

    pending_approval ──approve──▶ approved ──acknowledge──▶ acknowledged ──asn──▶ shipped
          │                          │  (receipts may come before an ack or an ASN)  │
          └──cancel──▶ cancelled ◀───┴──────────────cancel──────────┘       receipts ▼
                                                    closed ◀──close── received

A signal becomes a PO in the transaction that raises it (`order_from_signal`, called by
`signals._raise`): `approved` when quantity x unit cost is within the policy's
`auto_approve_limit`, else `pending_approval`. Partial answers are normal: the supplier
may acknowledge less than ordered and promise a date after need-by; several receipts may
come, and the PO is `received` by a complete one or once the quantity expected (the
acknowledged one, or the ordered one when never acknowledged) has come. `close` (the
workflow's step, repeat-safe) records on-time and shortfall, then evaluates the pair
again so a shortfall is ordered again when the position still needs it.

Errors (each a problem; nothing is written):

    404 not_found                  the PO is not the caller's (a supplier sees its own)
    409 invalid_transition         the PO is not in a status the step starts from
    422 quantity_exceeds_ordered   (acknowledge) more than ordered; (receipt) more than
                                   the ordered quantity still to come
    422 promised_date_in_past      (acknowledge)
    422 asn_exceeds_acknowledged   (asn) lots add up to more than acknowledged
    422 duplicate_lot              (asn, receipt) a lot named twice
    422 expiry_in_past             (asn, receipt) a lot's expiry is before today
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import events as ev
from services.common.auth import Principal, Role
from services.common.outbox import stage
from services.common.pagination import decode_time_cursor, encode_time_cursor
from services.common.problems import Conflict, NotFound, Unprocessable
from services.common.statuses import PO_RECEIVABLE, PO_TRANSITIONS, PurchaseOrderStatus
from services.supplier.models import (
    PurchaseOrder,
    PurchaseOrderHistory,
    PurchaseOrderReceipt,
    ReplenishmentPolicy,
    ReplenishmentSignal,
)
from services.supplier.schemas import (
    AcknowledgeIn,
    AsnIn,
    PoHistoryOut,
    PoLotIn,
    PoLotOut,
    PurchaseOrderOut,
    PurchaseOrderPage,
    ReceiptIn,
    ReceiptOut,
)

S = PurchaseOrderStatus
AUTO_APPROVER = "policy"  # `approved_by` of a PO within the auto-approve limit


@dataclass(frozen=True)
class Actor:
    """Who makes a change, and where its events come from."""

    source: str
    by: str


def _can(po: PurchaseOrder, to: PurchaseOrderStatus) -> None:
    if to not in PO_TRANSITIONS.get(S(po.status), frozenset()):
        raise Conflict(
            f"purchase order {po.id} is {po.status}; it cannot become {to}",
            code="invalid_transition",
        )


def _note(session: AsyncSession, po: PurchaseOrder, by: str, note: str | None) -> None:
    session.add(
        PurchaseOrderHistory(po_id=po.id, status=po.status, at=datetime.now(UTC), by=by, note=note)
    )


def _move(
    session: AsyncSession, po: PurchaseOrder, to: PurchaseOrderStatus, by: str, note: str | None
) -> None:
    """Guarded status change with its history entry; clears any attention mark."""
    _can(po, to)
    po.status = to.value
    po.attention = po.attention_detail = None
    _note(session, po, by, note)


async def _emit(session: AsyncSession, actor: Actor, po: PurchaseOrder, event: ev.Event) -> None:
    po.revision += 1
    po.updated_at = datetime.now(UTC)
    await stage(session, actor.source, event, subject=po.id)


def _lots_event(lots: Sequence[PoLotIn]) -> list[ev.PurchaseOrderLot]:
    return [
        ev.PurchaseOrderLot(
            lot=lot.lot,
            expiry=lot.expiry.isoformat() if lot.expiry else None,
            quantity=lot.quantity,
        )
        for lot in lots
    ]


def _check_lots(lots: Sequence[PoLotIn], today: date) -> int:
    """The lots' total; 422 for a lot named twice or an expiry in the past."""
    seen: set[str] = set()
    for lot in lots:
        if lot.lot in seen:
            raise Unprocessable(f"lot {lot.lot} is named twice", code="duplicate_lot")
        seen.add(lot.lot)
        if lot.expiry is not None and lot.expiry < today:
            raise Unprocessable(
                f"lot {lot.lot} expires {lot.expiry}, in the past", code="expiry_in_past"
            )
    return sum(lot.quantity for lot in lots)


# --- creation ---------------------------------------------------------------------------


async def order_from_signal(
    session: AsyncSession,
    actor: Actor,
    signal: ReplenishmentSignal,
    policy: ReplenishmentPolicy,
) -> PurchaseOrder:
    """The signal's PO, in the transaction that raised it: `approved` within the policy's
    auto-approve limit, else `pending_approval`; the signal becomes `ordered`."""
    now = datetime.now(UTC)
    auto = signal.quantity * signal.unit_cost <= policy.auto_approve_limit
    po = PurchaseOrder(
        id=str(uuid.uuid4()),
        supplier_id=signal.supplier_id,
        signal_id=signal.id,
        sku=signal.sku,
        warehouse_id=signal.warehouse_id,
        quantity=signal.quantity,
        unit_cost=signal.unit_cost,
        currency=signal.currency,
        status=(S.APPROVED if auto else S.PENDING_APPROVAL).value,
        quantity_received=0,
        need_by=signal.need_by,
        ordered_at=now,
        approved_at=now if auto else None,
        approved_by=AUTO_APPROVER if auto else None,
        ack_timeout_hours=policy.ack_timeout_hours,
        revision=0,
        created_at=now,
        updated_at=now,
    )
    session.add(po)
    limit = f"auto-approve limit {policy.auto_approve_limit} {signal.currency}"
    _note(
        session,
        po,
        actor.by,
        f"from signal {signal.id}; "
        + ("within the " if auto else "over the ")
        + limit
        + ("" if auto else ": waits for a coordinator"),
    )
    await _emit(
        session,
        actor,
        po,
        ev.PurchaseOrderCreated(
            po_id=po.id,
            supplier_id=po.supplier_id,
            signal_id=po.signal_id,
            sku=po.sku,
            warehouse_id=po.warehouse_id,
            quantity=po.quantity,
            unit_cost=str(po.unit_cost),
            currency=po.currency,
            need_by=signal.need_by.isoformat(),
            status=po.status,
            ack_timeout_hours=po.ack_timeout_hours,
        ),
    )
    return po


# --- transitions ------------------------------------------------------------------------


async def approve(session: AsyncSession, actor: Actor, po: PurchaseOrder) -> PurchaseOrder:
    """`pending_approval → approved` (a coordinator)."""
    _move(session, po, S.APPROVED, actor.by, None)
    po.approved_at, po.approved_by = datetime.now(UTC), actor.by
    await _emit(
        session,
        actor,
        po,
        ev.PurchaseOrderApproved(po_id=po.id, supplier_id=po.supplier_id, approved_by=actor.by),
    )
    return po


async def acknowledge(
    session: AsyncSession, actor: Actor, po: PurchaseOrder, body: AcknowledgeIn, today: date
) -> PurchaseOrder:
    """`approved → acknowledged`: the supplier confirms up to the ordered quantity and a
    date (which may be after need-by: the PO is late, and still on order)."""
    _can(po, S.ACKNOWLEDGED)
    if body.quantity > po.quantity:
        raise Unprocessable(
            f"{body.quantity} is more than the {po.quantity} ordered",
            code="quantity_exceeds_ordered",
        )
    if body.promised_date < today:
        raise Unprocessable(
            f"promised date {body.promised_date} is in the past", code="promised_date_in_past"
        )
    short = f"; {po.quantity - body.quantity} short" if body.quantity < po.quantity else ""
    late = f"; after need-by {po.need_by}" if po.need_by and body.promised_date > po.need_by else ""
    _move(
        session,
        po,
        S.ACKNOWLEDGED,
        actor.by,
        f"{body.quantity} by {body.promised_date}{short}{late}"
        + (f": {body.note}" if body.note else ""),
    )
    po.acknowledged_at = datetime.now(UTC)
    po.quantity_acknowledged, po.promised_date, po.ack_note = (
        body.quantity,
        body.promised_date,
        body.note,
    )
    await _emit(
        session,
        actor,
        po,
        ev.PurchaseOrderAcknowledged(
            po_id=po.id,
            supplier_id=po.supplier_id,
            quantity=body.quantity,
            promised_date=body.promised_date.isoformat(),
        ),
    )
    return po


async def ship(
    session: AsyncSession, actor: Actor, po: PurchaseOrder, body: AsnIn, today: date
) -> PurchaseOrder:
    """`acknowledged → shipped`: the ASN, its lots adding up to at most the acknowledged
    quantity."""
    _can(po, S.SHIPPED)
    total = _check_lots(body.lots, today)
    acknowledged = po.quantity_acknowledged or po.quantity
    if total > acknowledged:
        raise Unprocessable(
            f"the ASN's lots add up to {total}, more than the {acknowledged} acknowledged",
            code="asn_exceeds_acknowledged",
        )
    shipped_at = body.shipped_at or datetime.now(UTC)
    _move(session, po, S.SHIPPED, actor.by, f"{total} in {len(body.lots)} lot(s)")
    po.shipped_at, po.expected_at = shipped_at, body.expected_at
    po.asn_lots = [lot.model_dump(mode="json") for lot in body.lots]
    await _emit(
        session,
        actor,
        po,
        ev.PurchaseOrderShipped(
            po_id=po.id,
            supplier_id=po.supplier_id,
            lots=_lots_event(body.lots),
            shipped_at=shipped_at.isoformat(),
            expected_at=body.expected_at.isoformat(),
        ),
    )
    return po


def expected_quantity(po: PurchaseOrder) -> int:
    """What the PO is complete at: the acknowledged quantity, or the ordered one."""
    return po.quantity_acknowledged if po.quantity_acknowledged is not None else po.quantity


async def receive(
    session: AsyncSession, actor: Actor, po: PurchaseOrder, body: ReceiptIn, today: date
) -> str:
    """One receipt (its lots as `po_receipts` rows); `→ received` when it says `complete`
    or the quantity expected has come. Stages `PurchaseOrderReceived`, which the order
    service books. Returns the receipt id."""
    if S(po.status) not in PO_RECEIVABLE:
        raise Conflict(
            f"purchase order {po.id} is {po.status}; nothing can be received against it",
            code="invalid_transition",
        )
    total = _check_lots(body.lots, today)
    if po.quantity_received + total > po.quantity:
        raise Unprocessable(
            f"{total} more would make {po.quantity_received + total} received, over the "
            f"{po.quantity} ordered",
            code="quantity_exceeds_ordered",
        )
    now = datetime.now(UTC)
    receipt_id = str(uuid.uuid4())
    for lot in body.lots:
        session.add(
            PurchaseOrderReceipt(
                receipt_id=receipt_id,
                po_id=po.id,
                supplier_id=po.supplier_id,
                sku=po.sku,
                warehouse_id=po.warehouse_id,
                lot=lot.lot,
                expiry=lot.expiry,
                quantity=lot.quantity,
                complete=body.complete,
                received_at=now,
                received_by=actor.by,
            )
        )
    po.quantity_received += total
    done = body.complete or po.quantity_received >= expected_quantity(po)
    note = f"receipt {receipt_id}: {total} ({po.quantity_received} of {po.quantity})"
    if done:
        _move(session, po, S.RECEIVED, actor.by, note)
        po.received_at = now
    else:
        _note(session, po, actor.by, note)
    await _emit(
        session,
        actor,
        po,
        ev.PurchaseOrderReceived(
            po_id=po.id,
            supplier_id=po.supplier_id,
            receipt_id=receipt_id,
            sku=po.sku,
            warehouse_id=po.warehouse_id,
            lots=_lots_event(body.lots),
            received_at=now.isoformat(),
            complete=done,
        ),
    )
    return receipt_id


def due_date(po: PurchaseOrder) -> date | None:
    """The date the PO is measured against: promised, or need-by when never acknowledged."""
    return po.promised_date or po.need_by


async def close(session: AsyncSession, actor: Actor, po: PurchaseOrder) -> PurchaseOrder:
    """`received → closed` (repeat-safe): on-time and shortfall recorded. The caller
    evaluates the pair again afterwards (`signals.reorder_after_close`)."""
    if po.status == S.CLOSED:
        return po
    _can(po, S.CLOSED)
    received_at = po.received_at or datetime.now(UTC)
    due = due_date(po)
    po.on_time = due is None or received_at.astimezone(UTC).date() <= due
    po.shortfall = max(po.quantity - po.quantity_received, 0)
    po.closed_at = datetime.now(UTC)
    _move(
        session,
        po,
        S.CLOSED,
        actor.by,
        f"received {po.quantity_received} of {po.quantity} (shortfall {po.shortfall}); "
        f"{'on time' if po.on_time else 'late'} against {due}",
    )
    await _emit(
        session,
        actor,
        po,
        ev.PurchaseOrderClosed(
            po_id=po.id,
            supplier_id=po.supplier_id,
            quantity=po.quantity,
            quantity_received=po.quantity_received,
            shortfall=po.shortfall,
        ),
    )
    return po


async def cancel(
    session: AsyncSession, actor: Actor, po: PurchaseOrder, reason: str
) -> PurchaseOrder:
    """`pending_approval | approved | acknowledged → cancelled` (a coordinator rejects or
    withdraws it); the pair may be ordered again."""
    _move(session, po, S.CANCELLED, actor.by, reason)
    po.cancel_reason, po.closed_at = reason, datetime.now(UTC)
    await _emit(
        session,
        actor,
        po,
        ev.PurchaseOrderCancelled(po_id=po.id, supplier_id=po.supplier_id, reason=reason),
    )
    return po


async def need_attention(
    session: AsyncSession, actor: Actor, po: PurchaseOrder, reason: str, detail: str | None
) -> PurchaseOrder:
    """A workflow found something a coordinator must see (status unchanged; repeat-safe)."""
    if po.attention == reason and po.attention_detail == detail:
        return po
    po.attention, po.attention_detail = reason, detail
    po.updated_at = datetime.now(UTC)
    _note(session, po, actor.by, f"needs attention: {reason}: {detail or ''}".rstrip(": "))
    return po


# --- views ------------------------------------------------------------------------------


async def load(
    session: AsyncSession, po_id: str, caller: Principal, *, lock: bool = False
) -> PurchaseOrder:
    query = sa.select(PurchaseOrder).where(PurchaseOrder.id == po_id)
    if lock:
        query = query.with_for_update()
    po = (await session.execute(query)).scalar_one_or_none()
    if po is None:
        raise NotFound(f"purchase order {po_id} not found")
    caller.ensure_supplier(po.supplier_id, f"purchase order {po_id}")
    return po


async def view(session: AsyncSession, po: PurchaseOrder) -> PurchaseOrderOut:
    await session.flush()
    history = (
        await session.execute(
            sa.select(PurchaseOrderHistory)
            .where(PurchaseOrderHistory.po_id == po.id)
            .order_by(PurchaseOrderHistory.id)
        )
    ).scalars()
    rows = (
        await session.execute(
            sa.select(PurchaseOrderReceipt)
            .where(PurchaseOrderReceipt.po_id == po.id)
            .order_by(PurchaseOrderReceipt.id)
        )
    ).scalars()
    receipts: dict[str, ReceiptOut] = {}
    for row in rows:
        receipt = receipts.setdefault(
            row.receipt_id,
            ReceiptOut(
                receipt_id=row.receipt_id,
                lots=[],
                complete=row.complete,
                received_at=row.received_at,
                received_by=row.received_by,
            ),
        )
        receipt.lots.append(PoLotOut(lot=row.lot, expiry=row.expiry, quantity=row.quantity))
    return PurchaseOrderOut(
        id=po.id,
        supplier_id=po.supplier_id,
        signal_id=po.signal_id,
        sku=po.sku,
        warehouse_id=po.warehouse_id,
        quantity=po.quantity,
        unit_cost=po.unit_cost,
        currency=po.currency,
        status=po.status,
        need_by=po.need_by,
        ordered_at=po.ordered_at,
        approved_at=po.approved_at,
        approved_by=po.approved_by,
        acknowledged_at=po.acknowledged_at,
        quantity_acknowledged=po.quantity_acknowledged,
        promised_date=po.promised_date,
        ack_note=po.ack_note,
        shipped_at=po.shipped_at,
        expected_at=po.expected_at,
        asn_lots=[PoLotOut.model_validate(lot) for lot in po.asn_lots]
        if po.asn_lots is not None
        else None,
        quantity_received=po.quantity_received,
        received_at=po.received_at,
        closed_at=po.closed_at,
        shortfall=po.shortfall,
        on_time=po.on_time,
        cancel_reason=po.cancel_reason,
        attention=po.attention,
        attention_detail=po.attention_detail,
        ack_timeout_hours=po.ack_timeout_hours,
        revision=po.revision,
        receipts=list(receipts.values()),
        history=[PoHistoryOut(status=h.status, at=h.at, by=h.by, note=h.note) for h in history],
        created_at=po.created_at,
        updated_at=po.updated_at,
    )


@dataclass(frozen=True)
class PoFilter:
    """What `GET /purchase-orders` narrows by (None: any)."""

    supplier_id: str | None = None
    status: PurchaseOrderStatus | None = None
    sku: str | None = None
    warehouse_id: str | None = None
    attention: bool | None = None


async def page(
    session: AsyncSession, caller: Principal, filters: PoFilter, *, limit: int, cursor: str | None
) -> PurchaseOrderPage:
    """One page of POs, newest first. A supplier sees only its own (another supplier's id
    gives an empty page)."""
    supplier_id = filters.supplier_id
    if caller.role is Role.SUPPLIER:
        if supplier_id not in (None, caller.supplier_id):
            return PurchaseOrderPage(items=[], next_cursor=None)
        supplier_id = caller.supplier_id
    query = (
        sa.select(PurchaseOrder)
        .order_by(PurchaseOrder.created_at.desc(), PurchaseOrder.id.desc())
        .limit(limit + 1)
    )
    if supplier_id is not None:
        query = query.where(PurchaseOrder.supplier_id == supplier_id)
    if filters.status is not None:
        query = query.where(PurchaseOrder.status == filters.status.value)
    if filters.sku is not None:
        query = query.where(PurchaseOrder.sku == filters.sku)
    if filters.warehouse_id is not None:
        query = query.where(PurchaseOrder.warehouse_id == filters.warehouse_id)
    if filters.attention is not None:
        flagged = PurchaseOrder.attention.is_not(None)
        query = query.where(flagged if filters.attention else sa.not_(flagged))
    if cursor:
        at, last_id = decode_time_cursor(cursor)
        query = query.where(
            sa.tuple_(PurchaseOrder.created_at, PurchaseOrder.id)
            < sa.tuple_(sa.literal(at), sa.literal(last_id))
        )
    rows = list((await session.execute(query)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return PurchaseOrderPage(
        items=[await view(session, po) for po in rows],
        next_cursor=encode_time_cursor(rows[-1].created_at, rows[-1].id) if more else None,
    )


def credit(quantity: int, unit_cost: Decimal) -> Decimal:
    """A vendor return's credit: quantity x the PO's unit cost."""
    return (unit_cost * quantity).quantize(Decimal("0.01"))
