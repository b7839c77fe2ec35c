"""Recall rules: a campaign's lifecycle, its consignees, their responses and the report.

    open ──► in_progress (every consignee traced and noticed) ──► closed
      └───────────────────────────────────────────────────────────► closed

A consignee is one customer's order that received a recalled lot. The Recall workflow
hands in the order service's forward trace a page at a time (`apply_trace_page`): in one
transaction each new shipped line and lot is kept once (`recall_shipments`' primary key),
each new consignee gets its row, its recall return (a `returns` row of kind `recall`,
status `authorized`, lines and lots = what was shipped, no window, no fee) and one
`RecallNoticeIssued`; a page handed in again creates nothing. A consignee's response is
an event; `returning` stages `ReturnRequested(kind="recall")`, which starts the Return
workflow for its recall return; `destroyed` and `none_on_hand` cancel the return.

Figures per consignee (`figures`): returned = received on its recall return (good and
damaged); corrected or destroyed = what it destroyed itself plus what came back and was
scrapped or refurbished; outstanding = what it still holds (on hand at response, or the
shipped quantity until it responds) minus returned and destroyed. Effectiveness is the
share of the shipped quantity no longer outstanding.
"""

from __future__ import annotations

import uuid
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import events as ev
from services.common.outbox import stage
from services.common.pagination import decode_cursor, encode_cursor
from services.common.problems import Conflict, NotFound, Unprocessable
from services.common.statuses import (
    SHIPMENT_GOODS_BACK,
    Disposition,
    RecallStatus,
    ReturnKind,
    ReturnStatus,
)
from services.returns.models import Return, ReturnLine, ReturnLot
from services.returns.recall_models import Recall, RecallConsignee, RecallShipment
from services.returns.recall_schemas import (
    Action,
    ConsigneePublic,
    Depth,
    Quantities,
    RecallCreate,
    Report,
    ResponseIn,
    TracedLine,
    TracePageIn,
    TracePageOut,
)

S = RecallStatus
TRANSITIONS: dict[RecallStatus, frozenset[RecallStatus]] = {
    S.OPEN: frozenset({S.IN_PROGRESS, S.CLOSED}),
    S.IN_PROGRESS: frozenset({S.CLOSED}),
    S.CLOSED: frozenset(),
}
# Percent of the shipped quantity accounted for at which a recall closes itself, by
# effectiveness-check depth; None: only a coordinator closes it.
DEFAULT_TARGET: dict[Depth, Decimal | None] = {
    Depth.A: Decimal("100"),
    Depth.B: Decimal("50"),
    Depth.C: Decimal("10"),
    Depth.D: Decimal("2"),
    Depth.E: None,
}
# Dispositions of returned goods that count as corrected or destroyed.
DESTROYING = frozenset({Disposition.SCRAP.value, Disposition.REFURBISH.value})
RECALL_REASON = "recall"  # the reason code of recall returns
CURRENCY = "EUR"  # recall returns refund nothing; the column needs a currency
_RETURN_IDS = uuid.UUID("6d1c6f0e-4f4b-4d1e-9a57-3f1f0f4b7a10")


def recall_return_id(recall_id: str, customer_id: str, order_id: str) -> str:
    """The consignee's recall return id: derived, so a re-run page finds the same one."""
    return str(uuid.uuid5(_RETURN_IDS, f"{recall_id}\x1f{customer_id}\x1f{order_id}"))


def _move(recall: Recall, to: RecallStatus) -> bool:
    """Move `recall` to `to`; False when it is already there; 409 when not allowed."""
    if recall.status == to:
        return False
    if to not in TRANSITIONS[RecallStatus(recall.status)]:
        raise Conflict(
            f"recall {recall.id} is {recall.status}; it cannot become {to}",
            code="invalid_transition",
        )
    recall.status = to
    recall.updated_at = datetime.now(UTC)
    return True


def _ensure_open(recall: Recall) -> None:
    if recall.status == S.CLOSED:
        raise Conflict(f"recall {recall.id} is closed", code="recall_closed")


async def load(session: AsyncSession, recall_id: str, *, lock: bool = False) -> Recall:
    """The recall (row locked for the transaction with `lock`); 404 when absent."""
    query = sa.select(Recall).where(Recall.id == recall_id)
    if lock:
        query = query.with_for_update()
    recall = (await session.execute(query)).scalar_one_or_none()
    if recall is None:
        raise NotFound(f"recall {recall_id} not found")
    return recall


async def open_recall(
    session: AsyncSession, source: str, body: RecallCreate, *, opened_by: str
) -> Recall:
    """Open a campaign and stage `RecallOpened` (the bridge starts its workflow); 409
    `lot_already_recalled` while another campaign that is not closed covers one of the
    lots (a second one would notice every consignee again and expect the goods twice)."""
    await _refuse_open_overlap(session, body.sku, body.lots)
    now = datetime.now(UTC)
    target = (
        Decimal(str(round(body.effectiveness_target, 2)))
        if body.effectiveness_target is not None
        else DEFAULT_TARGET[body.depth]
    )
    recall = Recall(
        id=str(uuid.uuid4()),
        sku=body.sku,
        lots=list(body.lots),
        reason=body.reason,
        instructions=body.instructions,
        hazard_class=body.hazard_class.value,
        depth=body.depth.value,
        effectiveness_target=target,
        status=S.OPEN,
        opened_by=opened_by,
        created_at=now,
        updated_at=now,
    )
    session.add(recall)
    await session.flush()
    await stage(
        session,
        source,
        ev.RecallOpened(
            recall_id=recall.id,
            sku=recall.sku,
            lots=recall.lots,
            reason=recall.reason,
            instructions=recall.instructions,
            hazard_class=recall.hazard_class,
            depth=recall.depth,
            opened_by=opened_by,
        ),
        subject=recall.id,
    )
    return recall


async def _refuse_open_overlap(session: AsyncSession, sku: str, lots: Sequence[str]) -> None:
    """409 when a campaign not yet closed covers one of `lots` of `sku`. Openings of one
    SKU are serialized (SQLite: one writer; PostgreSQL: a transaction lock on the SKU), so
    two racing requests cannot both pass."""
    if session.get_bind().dialect.name == "postgresql":
        key = zlib.crc32(f"recall:{sku}".encode())
        await session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
    open_ones = await session.execute(
        sa.select(Recall.id, Recall.lots).where(Recall.sku == sku, Recall.status != S.CLOSED)
    )
    for recall_id, covered in open_ones.all():
        if overlap := sorted(set(covered) & set(lots)):
            raise Conflict(
                f"lot {', '.join(overlap)} of {sku} is already in recall {recall_id}, "
                "which is not closed",
                code="lot_already_recalled",
            )


# --- fan-out: trace pages -------------------------------------------------------------


@dataclass
class _NewConsignee:
    """What one page adds to one consignee."""

    customer_id: str
    order_id: str
    shipment_id: str
    warehouse_id: str
    quantity: int = 0
    lines: dict[int, int] = field(default_factory=dict)  # line_no -> quantity
    # (line_no, lot) -> (warehouse shipped from, quantity)
    lots: dict[tuple[int, str], tuple[str, int]] = field(default_factory=dict)


def _relevant(recall: Recall, lot: str, line: TracedLine) -> bool:
    """A traced line whose goods may be with the customer (not cancelled, not back)."""
    return (
        line.sku == recall.sku
        and line.quantity > 0
        and lot in recall.lots
        and line.shipment_status not in SHIPMENT_GOODS_BACK
    )


async def apply_trace_page(
    session: AsyncSession, source: str, recall: Recall, page: TracePageIn
) -> TracePageOut:
    """Record one page of the forward trace of `page.lot`, in the caller's transaction
    (the recall row locked): new consignees, their recall returns and notices."""
    _ensure_open(recall)
    lines: dict[tuple[str, int], TracedLine] = {}
    for line in page.consignees:
        if _relevant(recall, page.lot, line):
            lines.setdefault((line.shipment_id, line.line_no), line)
    if not lines:
        return TracePageOut(lines_new=0, consignees_created=0, notices_issued=0)
    shipment_ids = sorted({shipment for shipment, _ in lines})
    known = set(
        (
            await session.execute(
                sa.select(RecallShipment.shipment_id, RecallShipment.line_no).where(
                    RecallShipment.recall_id == recall.id,
                    RecallShipment.lot == page.lot,
                    RecallShipment.shipment_id.in_(shipment_ids),
                )
            )
        ).all()
    )
    new = [line for key, line in lines.items() if key not in known]
    if not new:
        return TracePageOut(lines_new=0, consignees_created=0, notices_issued=0)
    await session.execute(
        sa.insert(RecallShipment),
        [
            {
                "recall_id": recall.id,
                "shipment_id": line.shipment_id,
                "line_no": line.line_no,
                "lot": page.lot,
                "sku": line.sku,
                "customer_id": line.customer_id,
                "order_id": line.order_id,
                "warehouse_id": line.warehouse_id,
                "quantity": line.quantity,
                "issued_at": line.issued_at,
            }
            for line in new
        ],
    )
    grouped: dict[tuple[str, str], _NewConsignee] = {}
    for line in new:
        entry = grouped.setdefault(
            (line.customer_id, line.order_id),
            _NewConsignee(line.customer_id, line.order_id, line.shipment_id, line.warehouse_id),
        )
        entry.quantity += line.quantity
        entry.lines[line.line_no] = entry.lines.get(line.line_no, 0) + line.quantity
        wh, qty = entry.lots.get((line.line_no, page.lot), (line.warehouse_id, 0))
        entry.lots[(line.line_no, page.lot)] = (wh, qty + line.quantity)
    existing = {
        (row.customer_id, row.order_id): row
        for row in (
            await session.execute(
                sa.select(RecallConsignee).where(
                    RecallConsignee.recall_id == recall.id,
                    RecallConsignee.order_id.in_(sorted({o for _, o in grouped})),
                )
            )
        ).scalars()
    }
    created = [entry for key, entry in grouped.items() if key not in existing]
    for key, entry in grouped.items():
        if key in existing:
            await _extend(session, recall, existing[key], entry)
    await _create_consignees(session, source, recall, created)
    return TracePageOut(
        lines_new=len(new), consignees_created=len(created), notices_issued=len(created)
    )


async def _create_consignees(
    session: AsyncSession, source: str, recall: Recall, created: Sequence[_NewConsignee]
) -> None:
    """Insert consignees with their recall returns in bulk and stage one notice each."""
    if not created:
        return
    now = datetime.now(UTC)
    returns: list[dict[str, Any]] = []
    return_lines: list[dict[str, Any]] = []
    return_lots: list[dict[str, Any]] = []
    consignees: list[dict[str, Any]] = []
    for c in created:
        return_id = recall_return_id(recall.id, c.customer_id, c.order_id)
        returns.append(
            {
                "id": return_id,
                "order_id": c.order_id,
                "customer_id": c.customer_id,
                "kind": ReturnKind.RECALL.value,
                "recall_id": recall.id,
                "status": ReturnStatus.AUTHORIZED.value,
                "reason": RECALL_REASON,
                "reason_detail": recall.reason,
                "keep_it": False,
                "currency": CURRENCY,
                "refund_total": Decimal("0"),
                "restocking_fee": Decimal("0"),
                "warehouse_id": c.warehouse_id,
                "decided_by": recall.opened_by,
                "requested_by": recall.opened_by,
                "revision": 0,
                "version": 1,
                "created_at": now,
                "updated_at": now,
            }
        )
        return_lines.extend(
            {
                "return_id": return_id,
                "line_no": line_no,
                "sku": recall.sku,
                "quantity": qty,
                "unit_price": Decimal("0"),
                "received_good": 0,
                "received_damaged": 0,
                "refund_amount": Decimal("0"),
            }
            for line_no, qty in sorted(c.lines.items())
        )
        return_lots.extend(
            {
                "return_id": return_id,
                "line_no": line_no,
                "lot": lot,
                "sku": recall.sku,
                "warehouse_id": wh,
                "expected": qty,
                "good": 0,
                "damaged": 0,
            }
            for (line_no, lot), (wh, qty) in sorted(c.lots.items())
        )
        envelope = await stage(
            session,
            source,
            ev.RecallNoticeIssued(
                recall_id=recall.id,
                return_id=return_id,
                customer_id=c.customer_id,
                order_id=c.order_id,
                shipment_id=c.shipment_id,
                sku=recall.sku,
                lots=recall.lots,
                quantity=c.quantity,
                reason=recall.reason,
                instructions=recall.instructions,
                hazard_class=recall.hazard_class,
            ),
            subject=return_id,
        )
        consignees.append(
            {
                "recall_id": recall.id,
                "customer_id": c.customer_id,
                "order_id": c.order_id,
                "return_id": return_id,
                "shipment_id": c.shipment_id,
                "quantity_shipped": c.quantity,
                "notice_event_id": envelope.id,
                "notice_issued_at": now,
                "created_at": now,
            }
        )
    await session.execute(sa.insert(Return), returns)
    await session.execute(sa.insert(ReturnLine), return_lines)
    await session.execute(sa.insert(ReturnLot), return_lots)
    await session.execute(sa.insert(RecallConsignee), consignees)


async def _extend(
    session: AsyncSession, recall: Recall, row: RecallConsignee, entry: _NewConsignee
) -> None:
    """A consignee already traced received more (another lot, another shipment): its
    quantity grows, and its recall return while nobody has asked for it yet (it was
    noticed already, of every lot)."""
    row.quantity_shipped += entry.quantity
    ret = await session.get(Return, row.return_id)
    if ret is None or ret.status != ReturnStatus.AUTHORIZED or row.responded_at is not None:
        return
    for line_no, qty in entry.lines.items():
        line = await session.get(ReturnLine, (row.return_id, line_no))
        if line is None:
            session.add(
                ReturnLine(
                    return_id=row.return_id,
                    line_no=line_no,
                    sku=recall.sku,
                    quantity=qty,
                    unit_price=Decimal("0"),
                    received_good=0,
                    received_damaged=0,
                    refund_amount=Decimal("0"),
                )
            )
        else:
            line.quantity += qty
    for (line_no, lot), (wh, qty) in entry.lots.items():
        found = await session.get(ReturnLot, (row.return_id, line_no, lot))
        if found is None:
            session.add(
                ReturnLot(
                    return_id=row.return_id,
                    line_no=line_no,
                    lot=lot,
                    sku=recall.sku,
                    warehouse_id=wh,
                    expected=qty,
                    good=0,
                    damaged=0,
                )
            )
        else:
            found.expected += qty
    await session.flush()


async def finish_fanout(session: AsyncSession, recall: Recall) -> None:
    """Every lot traced and every consignee noticed: `open → in_progress`."""
    if recall.status != S.OPEN:
        return
    _move(recall, S.IN_PROGRESS)
    recall.fanned_out_at = datetime.now(UTC)


async def need_attention(session: AsyncSession, recall: Recall, reason: str) -> None:
    """The workflow hit a step that failed for good: say why on the recall."""
    recall.attention = reason
    recall.updated_at = datetime.now(UTC)


# --- responses ------------------------------------------------------------------------


async def _consignee_for(
    session: AsyncSession, recall: Recall, customer_id: str, order_id: str | None
) -> RecallConsignee:
    query = sa.select(RecallConsignee).where(
        RecallConsignee.recall_id == recall.id, RecallConsignee.customer_id == customer_id
    )
    if order_id is not None:
        query = query.where(RecallConsignee.order_id == order_id)
    rows = list((await session.execute(query.with_for_update())).scalars())
    if not rows:
        raise NotFound(f"consignee {customer_id} of recall {recall.id} not found")
    if len(rows) > 1:
        raise Unprocessable(
            f"customer {customer_id} received the recalled goods with {len(rows)} orders; "
            "say which one (`order_id`)",
            code="order_id_required",
        )
    return rows[0]


def _check_response(row: RecallConsignee, body: ResponseIn) -> None:
    if body.quantity_on_hand > row.quantity_shipped:
        raise Unprocessable(
            f"{body.quantity_on_hand} on hand is more than the {row.quantity_shipped} shipped",
            code="quantity_exceeds_shipped",
        )
    if body.action is Action.NONE_ON_HAND and body.quantity_on_hand != 0:
        raise Unprocessable("none_on_hand means quantity_on_hand 0", code="invalid_response")
    if body.action is not Action.NONE_ON_HAND and body.quantity_on_hand == 0:
        raise Unprocessable(
            f"{body.action} needs a quantity on hand above 0 (else none_on_hand)",
            code="invalid_response",
        )


async def respond(
    session: AsyncSession,
    source: str,
    recall: Recall,
    customer_id: str,
    body: ResponseIn,
    *,
    by: str,
) -> RecallConsignee:
    """Record a consignee's answer (once; the same answer again changes nothing) and stage
    `RecallConsigneeResponded`; `returning` requests its recall return, the other
    answers cancel it (nothing comes back)."""
    _ensure_open(recall)
    row = await _consignee_for(session, recall, customer_id, body.order_id)
    if row.responded_at is not None:
        if row.action == body.action and row.quantity_on_hand == body.quantity_on_hand:
            return row
        raise Conflict(
            f"consignee {customer_id} already answered {row.action} "
            f"({row.quantity_on_hand} on hand)",
            code="already_responded",
        )
    _check_response(row, body)
    now = datetime.now(UTC)
    row.responded_at = now
    row.responded_by = by
    row.action = body.action.value
    row.quantity_on_hand = body.quantity_on_hand
    await stage(
        session,
        source,
        ev.RecallConsigneeResponded(
            recall_id=recall.id,
            return_id=row.return_id,
            customer_id=row.customer_id,
            quantity_on_hand=body.quantity_on_hand,
            action=body.action.value,
        ),
        subject=row.return_id,
    )
    ret = await session.get(Return, row.return_id, with_for_update=True)
    if ret is None or ret.status != ReturnStatus.AUTHORIZED:
        return row  # the RMA side moved it on already
    if body.action is Action.RETURNING:
        lines = await _limit_return(session, ret, body.quantity_on_hand)
        await stage(
            session,
            source,
            ev.ReturnRequested(
                return_id=ret.id,
                order_id=ret.order_id,
                customer_id=ret.customer_id,
                kind=ReturnKind.RECALL.value,
                recall_id=recall.id,
                reason=RECALL_REASON,
                lines=lines,
            ),
            subject=ret.id,
        )
    else:
        ret.status = ReturnStatus.CANCELLED.value
        ret.closed_at = now
        ret.updated_at = now
        ret.revision += 1
        await stage(
            session,
            source,
            ev.ReturnCancelled(
                return_id=ret.id,
                order_id=ret.order_id,
                customer_id=ret.customer_id,
                kind=ReturnKind.RECALL.value,
                recall_id=recall.id,
                reason=f"recall: consignee answered {body.action.value}",
                cancelled_by=by,
            ),
            subject=ret.id,
        )
    return row


async def _limit_return(session: AsyncSession, ret: Return, on_hand: int) -> list[ev.ReturnLineRef]:
    """Cut the recall return down to what the consignee still has (lots in line order);
    answer its lines as the `ReturnRequested` carries them."""
    lots = list(
        (
            await session.execute(
                sa.select(ReturnLot)
                .where(ReturnLot.return_id == ret.id)
                .order_by(ReturnLot.line_no, ReturnLot.lot)
            )
        ).scalars()
    )
    left = on_hand
    per_line: Counter[int] = Counter()
    for lot in lots:
        lot.expected = min(lot.expected, left)
        left -= lot.expected
        per_line[lot.line_no] += lot.expected
        if lot.expected == 0:
            await session.delete(lot)
    lines = list(
        (
            await session.execute(
                sa.select(ReturnLine)
                .where(ReturnLine.return_id == ret.id)
                .order_by(ReturnLine.line_no)
            )
        ).scalars()
    )
    refs = []
    for line in lines:
        line.quantity = per_line[line.line_no]
        if line.quantity == 0:
            await session.delete(line)
        else:
            refs.append(
                ev.ReturnLineRef(
                    line_no=line.line_no,
                    sku=line.sku,
                    quantity=line.quantity,
                    unit_price=str(line.unit_price),
                )
            )
    return refs


async def close(
    session: AsyncSession, source: str, recall: Recall, *, by: str, reason: str
) -> Recall:
    """Close the campaign (a coordinator, or the workflow once the target is met) with
    its final report; closing a closed recall changes nothing."""
    if recall.status == S.CLOSED:
        return recall
    final = await report(session, recall)
    _move(recall, S.CLOSED)
    recall.closed_at = recall.updated_at
    recall.closed_by = by
    recall.close_reason = reason
    final = final.model_copy(update={"status": S.CLOSED})
    _store(recall, final)
    await stage(
        session,
        source,
        ev.RecallClosed(
            recall_id=recall.id,
            effectiveness=str(final.effectiveness),
            closed_by=by,
            reason=reason,
        ),
        subject=recall.id,
    )
    return recall


async def notice_sent(session: AsyncSession, event: ev.NoticeSent) -> None:
    """The customer service sent a recall notice: the consignee is notified (date, method)."""
    row = (
        await session.execute(
            sa.select(RecallConsignee).where(
                RecallConsignee.notice_event_id == event.source_event_id
            )
        )
    ).scalar_one_or_none()
    if row is None or row.notified_at is not None:
        return  # not a recall notice, or told already
    row.notified_at = datetime.fromisoformat(event.sent_at)
    if row.notified_at.tzinfo is None:
        row.notified_at = row.notified_at.replace(tzinfo=UTC)
    row.notice_method = event.channel[:32]


# --- figures and the report -----------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    returned: int
    corrected_or_destroyed: int
    outstanding: int


def figures(
    shipped: int, action: str | None, on_hand: int | None, received: int, scrapped: int
) -> Figures:
    """One consignee's figures (see the module docstring)."""
    destroyed_there = (on_hand or 0) if action == Action.DESTROYED else 0
    holds = shipped if action is None or on_hand is None else on_hand
    return Figures(
        returned=received,
        corrected_or_destroyed=destroyed_there + scrapped,
        outstanding=max(0, holds - received - destroyed_there),
    )


def effectiveness(shipped: int, outstanding: int) -> Decimal:
    """Percent of the shipped quantity no longer outstanding (100 when nothing shipped)."""
    if shipped <= 0:
        return Decimal("100.0")
    return (Decimal(100) * (shipped - outstanding) / shipped).quantize(Decimal("0.1"))


def _received_by_return(recall_id: str) -> sa.Subquery:
    received = ReturnLot.good + ReturnLot.damaged
    return (
        sa.select(
            ReturnLot.return_id.label("return_id"),
            sa.func.sum(received).label("received"),
            sa.func.sum(
                sa.case((ReturnLot.disposition.in_(sorted(DESTROYING)), received), else_=0)
            ).label("scrapped"),
        )
        .join(Return, Return.id == ReturnLot.return_id)
        .where(Return.recall_id == recall_id)
        .group_by(ReturnLot.return_id)
        .subquery()
    )


def _consignee_query(recall_id: str) -> sa.Select[RecallConsignee, Any, Any]:
    got = _received_by_return(recall_id)
    return (
        sa.select(
            RecallConsignee,
            sa.func.coalesce(got.c.received, 0),
            sa.func.coalesce(got.c.scrapped, 0),
        )
        .outerjoin(got, got.c.return_id == RecallConsignee.return_id)
        .where(RecallConsignee.recall_id == recall_id)
    )


def _public(row: RecallConsignee, received: int, scrapped: int) -> ConsigneePublic:
    f = figures(row.quantity_shipped, row.action, row.quantity_on_hand, received, scrapped)
    return ConsigneePublic(
        customer_id=row.customer_id,
        order_id=row.order_id,
        shipment_id=row.shipment_id,
        return_id=row.return_id,
        quantity_shipped=row.quantity_shipped,
        notice_issued_at=row.notice_issued_at,
        notified_at=row.notified_at,
        notice_method=row.notice_method,
        responded_at=row.responded_at,
        action=Action(row.action) if row.action else None,
        quantity_on_hand=row.quantity_on_hand,
        returned=f.returned,
        corrected_or_destroyed=f.corrected_or_destroyed,
        outstanding=f.outstanding,
    )


async def consignees(
    session: AsyncSession,
    recall_id: str,
    *,
    customer_id: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> tuple[list[ConsigneePublic], str | None]:
    """A page of the consignees table, by customer and order (keyset)."""
    query = _consignee_query(recall_id).order_by(
        RecallConsignee.customer_id, RecallConsignee.order_id
    )
    if customer_id is not None:
        query = query.where(RecallConsignee.customer_id == customer_id)
    if cursor is not None:
        after_customer, after_order = decode_cursor(cursor, str, str)
        query = query.where(
            sa.tuple_(RecallConsignee.customer_id, RecallConsignee.order_id)
            > sa.tuple_(sa.literal(after_customer), sa.literal(after_order))
        )
    rows = (await session.execute(query.limit(limit + 1))).all()
    items = [_public(row, int(received), int(scrapped)) for row, received, scrapped in rows]
    more = len(items) > limit
    items = items[:limit]
    next_cursor = encode_cursor(items[-1].customer_id, items[-1].order_id) if more else None
    return items, next_cursor


async def consignee(session: AsyncSession, row: RecallConsignee) -> ConsigneePublic:
    """One row of the consignees table, with its figures."""
    query = _consignee_query(row.recall_id).where(RecallConsignee.return_id == row.return_id)
    found, received, scrapped = (await session.execute(query)).one()
    return _public(found, int(received), int(scrapped))


async def is_consignee(session: AsyncSession, recall_id: str, customer_id: str) -> bool:
    """Whether the customer received goods of this recall (what lets it read the recall)."""
    query = sa.select(RecallConsignee.return_id).where(
        RecallConsignee.recall_id == recall_id, RecallConsignee.customer_id == customer_id
    )
    return (await session.execute(query.limit(1))).first() is not None


async def report(session: AsyncSession, recall: Recall) -> Report:
    """The recall status report, computed now from the consignees and their returns."""
    shipped = on_hand = returned = destroyed = outstanding = 0
    noticed = notified = responded = 0
    methods: Counter[str] = Counter()
    responses: Counter[str] = Counter()
    customers: set[str] = set()
    first: datetime | None = None
    last: datetime | None = None
    count = 0
    for row, received, scrapped in await session.execute(_consignee_query(recall.id)):
        count += 1
        customers.add(row.customer_id)
        f = figures(
            row.quantity_shipped, row.action, row.quantity_on_hand, int(received), int(scrapped)
        )
        shipped += row.quantity_shipped
        returned += f.returned
        destroyed += f.corrected_or_destroyed
        outstanding += f.outstanding
        noticed += row.notice_issued_at is not None
        if row.notified_at is not None:
            notified += 1
            methods[row.notice_method or "unknown"] += 1
            first = row.notified_at if first is None else min(first, row.notified_at)
            last = row.notified_at if last is None else max(last, row.notified_at)
        if row.responded_at is not None:
            responded += 1
            responses[row.action or "unknown"] += 1
            on_hand += row.quantity_on_hand or 0
    percent = effectiveness(shipped, outstanding)
    target = recall.effectiveness_target
    return Report(
        recall_id=recall.id,
        status=RecallStatus(recall.status),
        generated_at=datetime.now(UTC),
        consignees=count,
        customers=len(customers),
        noticed=noticed,
        notified=notified,
        notified_first_at=first,
        notified_last_at=last,
        notified_by_method=dict(methods),
        responded=responded,
        not_responded=count - responded,
        responses=dict(responses),
        quantities=Quantities(
            shipped=shipped,
            on_hand_at_response=on_hand,
            returned=returned,
            corrected_or_destroyed=destroyed,
            outstanding=outstanding,
        ),
        effectiveness=percent,
        effectiveness_target=target,
        target_met=target is not None and percent >= target,
    )


def _store(recall: Recall, snapshot: Report) -> None:
    recall.report = snapshot.model_dump(mode="json")
    recall.report_at = snapshot.generated_at


async def publish_report(session: AsyncSession, recall: Recall) -> Report:
    """The scheduled report: computed and stored on the recall (the last one is kept)."""
    snapshot = await report(session, recall)
    if recall.status != S.CLOSED:
        _store(recall, snapshot)
    return snapshot
