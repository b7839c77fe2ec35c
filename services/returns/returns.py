"""A return's (RMA's) lifecycle: one function per transition, each guarding it against
`TRANSITIONS`, changing the row, writing the history entry and staging the event in the
caller's transaction (`revision` counts the events).

    requested ──policy/coordinator──▶ authorized ──label──▶ awaiting_receipt
      ├──▶ rejected                     │  (keep-it: refund/replacement ──▶ resolved)
      └──▶ cancelled (any time before receipt)      │ receipt
    expired (nothing arrived or received by the deadline)
    received ──inspection──▶ inspected ──refund/replacement/resolve──▶ resolved ──▶ closed

Errors (each a problem; nothing is written):

    404 order_not_found              the delivered-lines model does not know the order
                                     for that customer
    409 invalid_transition           the return is not in a status the step starts from
    409 already_received             (expire) the goods arrived or were received
    409 not_needing_attention        (retry) no workflow step failed
    409 no_physical_return           (receipt, label) a keep-it return sends nothing back
    422 unknown_reason, not_delivered, quantity_exceeds_returnable, duplicate_line,
        customer_required            (request)
    422 unknown_lot, duplicate_lot, quantity_exceeds_expected   (receipt, inspection)
    422 disposition_missing, reason_required, damaged_not_restockable   (inspection)

Returned quantities never exceed what was delivered minus what other live returns (not
rejected, cancelled or expired) cover: the request locks the order's read-model row
(PostgreSQL) or runs as SQLite's single writer. Refunds never exceed what was paid for an
order line across all its returns (the same lock).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import events as ev
from services.common.auth import Principal, Role
from services.common.outbox import stage
from services.common.pagination import decode_time_cursor, encode_time_cursor
from services.common.problems import Conflict, NotFound, Unprocessable
from services.common.statuses import (
    Disposition,
    Resolution,
    ReturnKind,
    ReturnStatus,
)
from services.returns import policies
from services.returns.delivered import Delivered, delivered_of
from services.returns.models import Return, ReturnLine, ReturnLot
from services.returns.rma_models import Refund, ReturnHistory, ReturnPolicy
from services.returns.schemas import (
    HistoryOut,
    InspectionIn,
    LabelIn,
    PolicyRef,
    ReceiptIn,
    ReturnCreate,
    ReturnLineOut,
    ReturnLotOut,
    ReturnOut,
    ReturnPage,
)

S = ReturnStatus
TRANSITIONS: dict[ReturnStatus, frozenset[ReturnStatus]] = {
    S.REQUESTED: frozenset({S.AUTHORIZED, S.REJECTED, S.CANCELLED}),
    S.AUTHORIZED: frozenset({S.AWAITING_RECEIPT, S.RECEIVED, S.RESOLVED, S.EXPIRED, S.CANCELLED}),
    S.AWAITING_RECEIPT: frozenset({S.RECEIVED, S.EXPIRED, S.CANCELLED}),
    S.RECEIVED: frozenset({S.INSPECTED}),
    S.INSPECTED: frozenset({S.RESOLVED}),
    S.RESOLVED: frozenset({S.CLOSED}),
}
# Returns in these no longer cover goods: their quantities are returnable again.
NOT_COVERING: frozenset[ReturnStatus] = frozenset({S.REJECTED, S.CANCELLED, S.EXPIRED})
# Refund and replacement start here (keep-it: straight from `authorized`).
RESOLVABLE: frozenset[ReturnStatus] = frozenset({S.INSPECTED})
POLICY_ACTOR = "policy"
REFUND_IDS = uuid.UUID("6f5e1c2a-8d3b-4e7f-9a1c-2b3d4e5f6a7b")


@dataclass(frozen=True)
class Actor:
    """Who makes a change, and where its events come from."""

    source: str
    by: str


def _can(ret: Return, to: ReturnStatus) -> None:
    if to not in TRANSITIONS.get(S(ret.status), frozenset()):
        raise Conflict(
            f"return {ret.id} is {ret.status}; it cannot become {to}", code="invalid_transition"
        )


def _note(
    session: AsyncSession, ret: Return, by: str, note: str | None, *, internal: bool = False
) -> None:
    session.add(
        ReturnHistory(
            return_id=ret.id,
            status=ret.status,
            at=datetime.now(UTC),
            by=by,
            note=note,
            internal=internal,
        )
    )


def _move(
    session: AsyncSession,
    ret: Return,
    to: ReturnStatus,
    by: str,
    note: str | None = None,
    *,
    internal: bool = False,
) -> None:
    """Guarded status change with its history entry; clears any attention mark."""
    _can(ret, to)
    now = datetime.now(UTC)
    ret.status = to.value
    ret.updated_at = now
    ret.attention = None
    ret.attention_detail = None
    if to in (S.CLOSED, S.REJECTED, S.CANCELLED, S.EXPIRED):
        ret.closed_at = now
    _note(session, ret, by, note, internal=internal)


async def _emit(session: AsyncSession, actor: Actor, ret: Return, event: ev.ReturnEvent) -> None:
    """Stage a return event; each one bumps the return's revision, which it carries."""
    ret.revision += 1
    ret.updated_at = datetime.now(UTC)
    numbered = event.model_copy(update={"revision": ret.revision})
    await stage(session, actor.source, numbered, subject=ret.id)


def _ids(ret: Return) -> dict[str, object]:
    return {
        "return_id": ret.id,
        "order_id": ret.order_id,
        "customer_id": ret.customer_id,
        "kind": ret.kind,
        "recall_id": ret.recall_id,
    }


async def _lines(session: AsyncSession, ret: Return) -> list[ReturnLine]:
    result = await session.execute(
        sa.select(ReturnLine).where(ReturnLine.return_id == ret.id).order_by(ReturnLine.line_no)
    )
    return list(result.scalars())


async def _lots(session: AsyncSession, ret: Return) -> list[ReturnLot]:
    result = await session.execute(
        sa.select(ReturnLot)
        .where(ReturnLot.return_id == ret.id)
        .order_by(ReturnLot.line_no, ReturnLot.lot)
    )
    return list(result.scalars())


async def load(session: AsyncSession, return_id: str, *, lock: bool = False) -> Return:
    query = sa.select(Return).where(Return.id == return_id)
    if lock:
        query = query.with_for_update()
    ret = (await session.execute(query)).scalar_one_or_none()
    if ret is None:
        raise NotFound(f"return {return_id} not found")
    return ret


async def policy_of(session: AsyncSession, ret: Return) -> ReturnPolicy:
    """The return's policy; recall returns (none) use the default's receipt timeout."""
    if ret.policy_id is not None:
        found = await session.get(ReturnPolicy, ret.policy_id)
        if found is not None:
            return found
    return await policies.get_policy(session, policies.DEFAULT_POLICY)


# --- request ------------------------------------------------------------------------


async def _covered(
    session: AsyncSession, order_id: str, exclude: str | None = None
) -> tuple[dict[int, int], dict[tuple[int, str], int]]:
    """Quantities per line and per (line, lot) that live returns of the order cover."""
    live = sa.select(Return.id).where(
        Return.order_id == order_id, Return.status.not_in([s.value for s in NOT_COVERING])
    )
    if exclude is not None:
        live = live.where(Return.id != exclude)
    lines: dict[int, int] = {}
    for line_no, qty in await session.execute(
        sa.select(ReturnLine.line_no, sa.func.sum(ReturnLine.quantity))
        .where(ReturnLine.return_id.in_(live))
        .group_by(ReturnLine.line_no)
    ):
        lines[line_no] = int(qty or 0)
    lots: dict[tuple[int, str], int] = {}
    for line_no, lot, qty in await session.execute(
        sa.select(ReturnLot.line_no, ReturnLot.lot, sa.func.sum(ReturnLot.expected))
        .where(ReturnLot.return_id.in_(live))
        .group_by(ReturnLot.line_no, ReturnLot.lot)
    ):
        lots[(line_no, lot)] = int(qty or 0)
    return lines, lots


def _allocate(
    delivered: Delivered, line_no: int, quantity: int, covered: dict[tuple[int, str], int]
) -> list[tuple[str, str, int]]:
    """(lot, warehouse, quantity) of one returned line, from the lots delivered that other
    returns do not expect yet (in delivery order)."""
    merged: dict[str, tuple[str, int]] = {}
    for item in delivered.lots.get(line_no, []):
        wh, qty = merged.get(item.lot, (item.warehouse_id, 0))
        merged[item.lot] = (wh, qty + item.quantity)
    out: list[tuple[str, str, int]] = []
    left = quantity
    for lot, (wh, qty) in merged.items():
        free = qty - covered.get((line_no, lot), 0)
        take = min(free, left)
        if take > 0:
            out.append((lot, wh, take))
            left -= take
    if left > 0 and merged:  # lots and lines disagree: keep the quantity on the last lot
        lot, (wh, _) = list(merged.items())[-1]
        out = [(lt, w, q + left) if lt == lot else (lt, w, q) for lt, w, q in out]
        if all(lt != lot for lt, _, _ in out):
            out.append((lot, wh, left))
    return out


async def request(
    session: AsyncSession, actor: Actor, caller: Principal, body: ReturnCreate
) -> Return:
    """A customer's (or a coordinator's on its behalf) request: checked against what was
    delivered and not already returned; `requested`, `ReturnRequested` staged."""
    if caller.role is Role.CUSTOMER:
        customer_id = caller.customer_id or ""
        if body.customer_id is not None and body.customer_id != customer_id:
            raise NotFound(f"order {body.order_id} not found", code="order_not_found")
    elif body.customer_id is None:
        raise Unprocessable("a coordinator names the customer", code="customer_required")
    else:
        customer_id = body.customer_id
    delivered = await delivered_of(session, body.order_id, lock=True)
    if delivered is None or delivered.order.customer_id != customer_id:
        raise NotFound(f"order {body.order_id} not found", code="order_not_found")
    policies.check_customer_reason(body.reason)
    seen: set[int] = set()
    for line in body.lines:
        if line.line_no in seen:
            raise Unprocessable(f"line {line.line_no} is listed twice", code="duplicate_line")
        seen.add(line.line_no)
    covered_lines, covered_lots = await _covered(session, body.order_id)
    now = datetime.now(UTC)
    ret_id = str(uuid.uuid4())
    rows: list[ReturnLine] = []
    lots: list[ReturnLot] = []
    for line in sorted(body.lines, key=lambda item: item.line_no):
        ordered = delivered.lines.get(line.line_no)
        got = delivered.delivered.get(line.line_no, 0)
        if ordered is None or got == 0:
            raise Unprocessable(
                f"line {line.line_no} of order {body.order_id} was not delivered",
                code="not_delivered",
            )
        returnable = got - covered_lines.get(line.line_no, 0)
        if line.quantity > returnable:
            raise Unprocessable(
                f"line {line.line_no}: {line.quantity} asked, {max(returnable, 0)} returnable "
                f"({got} delivered, {covered_lines.get(line.line_no, 0)} in other returns)",
                code="quantity_exceeds_returnable",
            )
        rows.append(
            ReturnLine(
                return_id=ret_id,
                line_no=line.line_no,
                sku=ordered.sku,
                quantity=line.quantity,
                unit_price=ordered.unit_price,
                received_good=0,
                received_damaged=0,
                refund_amount=Decimal("0"),
            )
        )
        for lot, wh, qty in _allocate(delivered, line.line_no, line.quantity, covered_lots):
            lots.append(
                ReturnLot(
                    return_id=ret_id,
                    line_no=line.line_no,
                    lot=lot,
                    sku=ordered.sku,
                    warehouse_id=wh,
                    expected=qty,
                    good=0,
                    damaged=0,
                )
            )
    policy = await policies.policy_for(
        session, {delivered.lines[row.line_no].category for row in rows}
    )
    ret = Return(
        id=ret_id,
        order_id=body.order_id,
        customer_id=customer_id,
        kind=ReturnKind.CUSTOMER.value,
        status=S.REQUESTED.value,
        reason=body.reason,
        reason_detail=body.reason_detail,
        condition=body.condition,
        requested_resolution=body.requested_resolution,
        keep_it=False,
        policy_id=policy.id,
        currency=delivered.order.currency or "EUR",
        refund_total=Decimal("0"),
        restocking_fee=Decimal("0"),
        warehouse_id=lots[0].warehouse_id if lots else None,
        requested_by=caller.subject,
        revision=0,
        version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(ret)
    await session.flush()
    session.add_all([*rows, *lots])
    _note(session, ret, caller.subject, body.reason_detail)
    await _emit(
        session,
        actor,
        ret,
        ev.ReturnRequested(
            **_ids(ret),
            reason=ret.reason,
            lines=[
                ev.ReturnLineRef(
                    line_no=r.line_no, sku=r.sku, quantity=r.quantity, unit_price=str(r.unit_price)
                )
                for r in rows
            ],
        ),
    )
    await session.flush()
    return ret


# --- decisions ----------------------------------------------------------------------


async def _keep_it(session: AsyncSession, ret: Return, policy: ReturnPolicy) -> bool:
    threshold = policy.keep_it_threshold
    if ret.kind == ReturnKind.RECALL or threshold <= 0:
        return False
    return all(line.unit_price * line.quantity <= threshold for line in await _lines(session, ret))


async def authorize(
    session: AsyncSession, actor: Actor, ret: Return, note: str | None = None
) -> Return:
    """`requested → authorized` (by the policy or a coordinator); keep-it when every
    line's value is at or below the policy's threshold."""
    _can(ret, S.AUTHORIZED)
    ret.keep_it = await _keep_it(session, ret, await policy_of(session, ret))
    if ret.keep_it:
        ret.resolution = ret.requested_resolution or Resolution.REFUND.value
    ret.decided_by = actor.by
    ret.decision_note = note
    _move(session, ret, S.AUTHORIZED, actor.by, note, internal=True)
    await _emit(
        session,
        actor,
        ret,
        ev.ReturnAuthorized(**_ids(ret), authorized_by=actor.by, keep_it=ret.keep_it),
    )
    return ret


async def reject(session: AsyncSession, actor: Actor, ret: Return, reason: str) -> Return:
    """`requested → rejected` (outside the policy, or a coordinator's decision)."""
    _can(ret, S.REJECTED)
    ret.decided_by = actor.by
    ret.decision_note = reason
    _move(session, ret, S.REJECTED, actor.by, reason)
    await _emit(
        session,
        actor,
        ret,
        ev.ReturnRejected(**_ids(ret), reason=reason, rejected_by=actor.by),
    )
    return ret


async def policy_check(session: AsyncSession, actor: Actor, ret: Return) -> tuple[str, str]:
    """The policy's (decision, reason); applied once: a repeat answers the first one."""
    if ret.policy_decision is not None:
        return ret.policy_decision, ret.policy_reason or ""
    if ret.kind == ReturnKind.RECALL:
        decision, reason = "authorize", "recall return: no window, no fee"
        if ret.status == S.REQUESTED:
            await authorize(session, Actor(actor.source, POLICY_ACTOR), ret, reason)
    elif ret.status != S.REQUESTED:  # a coordinator decided (or it ended) first
        decision = "reject" if ret.status in NOT_COVERING else "authorize"
        return decision, f"already {ret.status}"
    else:
        delivered = await delivered_of(session, ret.order_id)
        lines = await _lines(session, ret)
        found = policies.evaluate(
            await policy_of(session, ret),
            reason=ret.reason,
            condition=ret.condition,
            delivered_at=delivered.delivered_at if delivered else None,
            line_values=[line.unit_price * line.quantity for line in lines],
        )
        decision, reason = found.decision, found.reason
        policy_actor = Actor(actor.source, POLICY_ACTOR)
        if decision == "authorize":
            await authorize(session, policy_actor, ret, reason)
        elif decision == "reject":
            await reject(session, policy_actor, ret, reason)
        else:
            _note(session, ret, POLICY_ACTOR, f"needs a coordinator: {reason}", internal=True)
    ret.policy_decision = decision
    ret.policy_reason = reason
    return decision, reason


# --- the goods coming back ----------------------------------------------------------


async def label(session: AsyncSession, actor: Actor, ret: Return, body: LabelIn) -> Return:
    """The return label is bought: `authorized → awaiting_receipt`, with the deadline the
    policy's receipt timeout sets. A repeat for the same shipment changes nothing."""
    if ret.status == S.AWAITING_RECEIPT and ret.return_shipment_id == body.return_shipment_id:
        return ret
    if ret.keep_it:
        raise Conflict(
            f"return {ret.id} is keep-it: nothing is sent back", code="no_physical_return"
        )
    _can(ret, S.AWAITING_RECEIPT)
    policy = await policy_of(session, ret)
    ret.return_shipment_id = body.return_shipment_id
    ret.carrier = body.carrier
    ret.tracking_number = body.tracking_number
    ret.label_url = body.label_url
    ret.warehouse_id = body.warehouse_id
    ret.receipt_deadline = datetime.now(UTC) + timedelta(days=policy.receipt_timeout_days)
    _move(session, ret, S.AWAITING_RECEIPT, actor.by, f"{body.carrier} {body.tracking_number}")
    await _emit(
        session,
        actor,
        ret,
        ev.ReturnAwaitingReceipt(
            **_ids(ret),
            carrier=body.carrier,
            tracking_number=body.tracking_number,
            label_url=body.label_url,
            warehouse_id=body.warehouse_id,
            receipt_deadline=ret.receipt_deadline.isoformat(),
        ),
    )
    return ret


async def arrived(session: AsyncSession, actor: Actor, ret: Return, at: datetime) -> Return:
    """The return shipment reached the warehouse: recorded once, status unchanged."""
    if ret.arrived_at is None:
        ret.arrived_at = at if at.tzinfo else at.replace(tzinfo=UTC)
        ret.updated_at = datetime.now(UTC)
        _note(session, ret, actor.by, "return parcel arrived at the warehouse")
    return ret


async def expire(session: AsyncSession, actor: Actor, ret: Return) -> Return:
    """Nothing arrived by the deadline: `→ expired` (409 once anything arrived)."""
    if ret.status == S.EXPIRED:
        return ret
    if ret.arrived_at is not None or ret.status in (S.RECEIVED, S.INSPECTED, S.RESOLVED, S.CLOSED):
        raise Conflict(f"return {ret.id}: the goods arrived already", code="already_received")
    _move(session, ret, S.EXPIRED, actor.by, "not received by the deadline")
    deadline = ret.receipt_deadline.isoformat() if ret.receipt_deadline else ""
    await _emit(session, actor, ret, ev.ReturnExpired(**_ids(ret), receipt_deadline=deadline))
    return ret


def _lot_map(
    lots: list[ReturnLot], keys: list[tuple[int, str]]
) -> dict[tuple[int, str], ReturnLot]:
    by_key = {(lot.line_no, lot.lot): lot for lot in lots}
    seen: set[tuple[int, str]] = set()
    for key in keys:
        if key not in by_key:
            raise Unprocessable(
                f"line {key[0]} has no lot {key[1]} in this return", code="unknown_lot"
            )
        if key in seen:
            raise Unprocessable(f"line {key[0]} lot {key[1]} is listed twice", code="duplicate_lot")
        seen.add(key)
    return by_key


async def receive(session: AsyncSession, actor: Actor, ret: Return, body: ReceiptIn) -> Return:
    """The coordinator's receipt, good and damaged per lot (lots not listed: 0):
    `→ received`, `ReturnReceived`."""
    if ret.keep_it:
        raise Conflict(
            f"return {ret.id} is keep-it: nothing is sent back", code="no_physical_return"
        )
    _can(ret, S.RECEIVED)
    lots = await _lots(session, ret)
    by_key = _lot_map(lots, [(item.line_no, item.lot) for item in body.lots])
    for item in body.lots:
        lot = by_key[(item.line_no, item.lot)]
        if item.good + item.damaged > lot.expected:
            raise Unprocessable(
                f"line {item.line_no} lot {item.lot}: {item.good + item.damaged} received, "
                f"{lot.expected} expected",
                code="quantity_exceeds_expected",
            )
        lot.good, lot.damaged = item.good, item.damaged
    for line in await _lines(session, ret):
        mine = [lot for lot in lots if lot.line_no == line.line_no]
        line.received_good = sum(lot.good for lot in mine)
        line.received_damaged = sum(lot.damaged for lot in mine)
    good = sum(lot.good for lot in lots)
    damaged = sum(lot.damaged for lot in lots)
    _move(session, ret, S.RECEIVED, actor.by, f"{good} good, {damaged} damaged")
    await _emit(
        session,
        actor,
        ret,
        ev.ReturnReceived(
            **_ids(ret),
            lots=[
                ev.ReceivedLot(
                    line_no=lot.line_no,
                    sku=lot.sku,
                    warehouse_id=lot.warehouse_id,
                    lot=lot.lot,
                    good=lot.good,
                    damaged=lot.damaged,
                )
                for lot in lots
            ],
            received_by=actor.by,
        ),
    )
    return ret


def disposed_lots(lots: list[ReturnLot]) -> list[ev.DisposedLot]:
    """What each received lot becomes: a `restock` lot puts back its good quantity only,
    its damaged quantity is scrapped."""
    out: list[ev.DisposedLot] = []
    for lot in lots:
        if lot.disposition is None or lot.good + lot.damaged == 0:
            continue
        common = {
            "line_no": lot.line_no,
            "sku": lot.sku,
            "warehouse_id": lot.warehouse_id,
            "lot": lot.lot,
        }
        if lot.disposition == Disposition.RESTOCK:
            if lot.good:
                out.append(ev.DisposedLot(**common, quantity=lot.good, disposition="restock"))
            if lot.damaged:
                out.append(
                    ev.DisposedLot(
                        **common,
                        quantity=lot.damaged,
                        disposition=Disposition.SCRAP.value,
                        reason="damaged on receipt",
                    )
                )
        else:
            out.append(
                ev.DisposedLot(
                    **common,
                    quantity=lot.good + lot.damaged,
                    disposition=lot.disposition,
                    reason=lot.disposition_reason,
                )
            )
    return out


async def inspect(session: AsyncSession, actor: Actor, ret: Return, body: InspectionIn) -> Return:
    """A disposition per received lot and the resolution: `received → inspected`."""
    _can(ret, S.INSPECTED)
    lots = await _lots(session, ret)
    by_key = _lot_map(lots, [(item.line_no, item.lot) for item in body.lots])
    given = {(item.line_no, item.lot): item for item in body.lots}
    for key, lot in by_key.items():
        item = given.get(key)
        if item is None:
            if lot.good + lot.damaged > 0:
                raise Unprocessable(
                    f"line {lot.line_no} lot {lot.lot} was received: give its disposition",
                    code="disposition_missing",
                )
            continue
        if item.disposition is Disposition.SCRAP and not item.reason:
            raise Unprocessable(f"scrapping lot {lot.lot} needs a reason", code="reason_required")
        if item.disposition is Disposition.RESTOCK and lot.good == 0 and lot.damaged > 0:
            raise Unprocessable(
                f"lot {lot.lot} came back damaged only: it cannot be restocked",
                code="damaged_not_restockable",
            )
        lot.disposition = item.disposition.value
        lot.disposition_reason = item.reason
    resolution = body.resolution or Resolution(ret.requested_resolution or Resolution.REFUND)
    ret.resolution = resolution.value
    _move(session, ret, S.INSPECTED, actor.by, f"resolution {resolution}")
    await _emit(
        session,
        actor,
        ret,
        ev.ReturnInspected(**_ids(ret), lots=disposed_lots(lots), inspected_by=actor.by),
    )
    return ret


async def dispose(session: AsyncSession, actor: Actor, ret: Return) -> Return:
    """Stage `ReturnDisposed` with the inspected lots, once (the order service restocks
    from it)."""
    if ret.disposed_at is not None:
        return ret
    if ret.status not in (S.INSPECTED, S.RESOLVED, S.CLOSED) or ret.keep_it:
        raise Conflict(
            f"return {ret.id} is {ret.status}: nothing to dispose", code="invalid_transition"
        )
    ret.disposed_at = datetime.now(UTC)
    lots = disposed_lots(await _lots(session, ret))
    _note(session, ret, actor.by, f"{sum(d.quantity for d in lots)} unit(s) disposed")
    await _emit(session, actor, ret, ev.ReturnDisposed(**_ids(ret), lots=lots))
    return ret


# --- resolution ---------------------------------------------------------------------


def _resolvable(ret: Return) -> None:
    if ret.status in RESOLVABLE or (ret.status == S.AUTHORIZED and ret.keep_it):
        return
    raise Conflict(
        f"return {ret.id} is {ret.status}: not ready to resolve", code="invalid_transition"
    )


async def _resolved(
    session: AsyncSession, actor: Actor, ret: Return, resolution: Resolution, **extra: str | None
) -> None:
    ret.resolution = resolution.value
    _move(session, ret, S.RESOLVED, actor.by, f"resolved: {resolution}")
    await _emit(
        session, actor, ret, ev.ReturnResolved(**_ids(ret), resolution=resolution.value, **extra)
    )


async def _refunded_elsewhere(session: AsyncSession, ret: Return) -> dict[int, Decimal]:
    """What other returns of the order refunded per order line."""
    others = sa.select(Return.id).where(Return.order_id == ret.order_id, Return.id != ret.id)
    result = await session.execute(
        sa.select(ReturnLine.line_no, sa.func.sum(ReturnLine.refund_amount))
        .where(ReturnLine.return_id.in_(others))
        .group_by(ReturnLine.line_no)
    )
    return {line_no: Decimal(str(amount or 0)) for line_no, amount in result}


async def refund(session: AsyncSession, actor: Actor, ret: Return) -> Return:
    """The credit record: price paid x quantity (received, or requested for keep-it) -
    restocking fee, capped per order line at what was paid across all its returns;
    `ReturnRefunded`, then `ReturnResolved(refund)`. Once per return."""
    if (await session.execute(sa.select(Refund.id).where(Refund.return_id == ret.id))).first():
        return ret
    _resolvable(ret)
    delivered = await delivered_of(session, ret.order_id, lock=True)
    elsewhere = await _refunded_elsewhere(session, ret)
    lines = await _lines(session, ret)
    amounts: dict[int, Decimal] = {}
    for line in lines:
        ordered = delivered.lines.get(line.line_no) if delivered else None
        price = line.unit_price
        if price == 0 and ordered is not None:  # a recall return: the price paid
            price = ordered.unit_price
        quantity = line.quantity if ret.keep_it else line.received_good + line.received_damaged
        paid = ordered.unit_price * ordered.quantity if ordered else price * line.quantity
        room = max(Decimal("0"), paid - elsewhere.get(line.line_no, Decimal("0")))
        amounts[line.line_no] = min(price * quantity, room).quantize(policies.CENTS)
    gross = sum(amounts.values(), Decimal("0"))
    policy = None if ret.kind == ReturnKind.RECALL else await policy_of(session, ret)
    fee = policies.restocking_fee(policy, ret.reason, gross)
    left = fee
    for line in lines:  # the fee comes off the lines in order
        take = min(left, amounts[line.line_no])
        line.refund_amount = amounts[line.line_no] - take
        left -= take
    total = gross - fee
    ret.refund_total, ret.restocking_fee = total, fee
    refunded = [
        ev.RefundedLine(
            line_no=line.line_no,
            sku=line.sku,
            quantity=line.quantity if ret.keep_it else line.received_good + line.received_damaged,
            amount=str(line.refund_amount),
        )
        for line in lines
    ]
    row = Refund(
        id=str(uuid.uuid5(REFUND_IDS, ret.id)),
        return_id=ret.id,
        order_id=ret.order_id,
        customer_id=ret.customer_id,
        amount=total,
        restocking_fee=fee,
        currency=ret.currency,
        lines=[item.model_dump() for item in refunded],
        created_at=datetime.now(UTC),
    )
    session.add(row)
    await _emit(
        session,
        actor,
        ret,
        ev.ReturnRefunded(
            **_ids(ret),
            refund_id=row.id,
            amount=str(total),
            restocking_fee=str(fee),
            currency=ret.currency,
            lines=refunded,
        ),
    )
    await _resolved(session, actor, ret, Resolution.REFUND, refund_amount=str(total))
    return ret


async def replacement(session: AsyncSession, actor: Actor, ret: Return, order_id: str) -> Return:
    """The replacement order is placed: linked, `ReturnReplacementOrdered`, resolved."""
    if ret.replacement_order_id is not None:
        return ret
    _resolvable(ret)
    ret.replacement_order_id = order_id
    await _emit(
        session,
        actor,
        ret,
        ev.ReturnReplacementOrdered(**_ids(ret), replacement_order_id=order_id),
    )
    await _resolved(session, actor, ret, Resolution.REPLACEMENT, replacement_order_id=order_id)
    return ret


async def resolve(
    session: AsyncSession, actor: Actor, ret: Return, resolution: Resolution
) -> Return:
    """Repair or returned to the customer: `inspected → resolved`."""
    if ret.status in (S.RESOLVED, S.CLOSED) and ret.resolution == resolution:
        return ret
    if ret.status not in RESOLVABLE:
        raise Conflict(
            f"return {ret.id} is {ret.status}: not ready to resolve", code="invalid_transition"
        )
    await _resolved(session, actor, ret, resolution)
    return ret


async def close(session: AsyncSession, actor: Actor, ret: Return) -> Return:
    if ret.status == S.CLOSED:
        return ret
    _move(session, ret, S.CLOSED, actor.by)
    await _emit(session, actor, ret, ev.ReturnClosed(**_ids(ret)))
    return ret


async def cancel(session: AsyncSession, actor: Actor, ret: Return, reason: str) -> Return:
    """Before receipt, by the customer or a coordinator: `→ cancelled`."""
    _can(ret, S.CANCELLED)
    _move(session, ret, S.CANCELLED, actor.by, reason)
    await _emit(
        session,
        actor,
        ret,
        ev.ReturnCancelled(**_ids(ret), reason=reason, cancelled_by=actor.by),
    )
    return ret


async def need_attention(
    session: AsyncSession, actor: Actor, ret: Return, reason: str, detail: str | None
) -> Return:
    """A workflow step failed for good: marked on the return, status unchanged."""
    if ret.attention == reason and ret.attention_detail == detail:
        return ret
    ret.attention, ret.attention_detail = reason, detail
    ret.updated_at = datetime.now(UTC)
    _note(
        session,
        ret,
        actor.by,
        f"needs attention: {reason}: {detail or ''}".rstrip(": "),
        internal=True,
    )
    return ret


async def retry(session: AsyncSession, actor: Actor, ret: Return) -> Return:
    """A coordinator clears the attention mark; the workflow (signalled through
    `ReturnRetryRequested`) runs the step that failed again. 409 when nothing failed."""
    if ret.attention is None:
        raise Conflict(
            f"return {ret.id} is {ret.status} and needs no attention", code="not_needing_attention"
        )
    ret.attention, ret.attention_detail = None, None
    ret.updated_at = datetime.now(UTC)
    _note(session, ret, actor.by, "retry requested", internal=True)
    await _emit(session, actor, ret, ev.ReturnRetryRequested(**_ids(ret), requested_by=actor.by))
    return ret


# --- views --------------------------------------------------------------------------


async def view(session: AsyncSession, ret: Return, caller: Principal) -> ReturnOut:
    """The `Return` body; customers get it without internal notes and attention."""
    await session.flush()
    staff = caller.is_staff
    policy = await policy_of(session, ret)
    history = (
        await session.execute(
            sa.select(ReturnHistory)
            .where(ReturnHistory.return_id == ret.id)
            .order_by(ReturnHistory.id)
        )
    ).scalars()
    return ReturnOut(
        id=ret.id,
        order_id=ret.order_id,
        customer_id=ret.customer_id,
        kind=ret.kind,
        recall_id=ret.recall_id,
        status=ret.status,
        reason=ret.reason,
        reason_detail=ret.reason_detail,
        condition=ret.condition,
        requested_resolution=ret.requested_resolution,
        resolution=ret.resolution,
        keep_it=ret.keep_it,
        currency=ret.currency,
        refund_total=ret.refund_total,
        restocking_fee=ret.restocking_fee,
        warehouse_id=ret.warehouse_id,
        return_shipment_id=ret.return_shipment_id,
        carrier=ret.carrier,
        tracking_number=ret.tracking_number,
        label_url=ret.label_url,
        receipt_deadline=ret.receipt_deadline,
        arrived_at=ret.arrived_at,
        replacement_order_id=ret.replacement_order_id,
        attention=ret.attention if staff else None,
        attention_detail=ret.attention_detail if staff else None,
        policy=PolicyRef(
            id=policy.id,
            receipt_timeout_days=policy.receipt_timeout_days,
            auto_authorize=policy.auto_authorize,
        ),
        lines=[
            ReturnLineOut.model_validate(line, from_attributes=True)
            for line in await _lines(session, ret)
        ],
        lots=[
            ReturnLotOut.model_validate(lot, from_attributes=True)
            for lot in await _lots(session, ret)
        ],
        history=[
            HistoryOut(
                status=h.status, at=h.at, by=h.by, note=h.note if staff or not h.internal else None
            )
            for h in history
        ],
        revision=ret.revision,
        created_at=ret.created_at,
        updated_at=ret.updated_at,
    )


@dataclass(frozen=True)
class ReturnFilter:
    """What `GET /returns` narrows by (None: any)."""

    customer_id: str | None = None
    order_id: str | None = None
    status: ReturnStatus | None = None
    kind: ReturnKind | None = None
    attention: bool | None = None


async def page(
    session: AsyncSession,
    caller: Principal,
    filters: ReturnFilter,
    *,
    limit: int,
    cursor: str | None,
) -> ReturnPage:
    """One page of returns, newest first. A customer sees only their own (another
    customer's id gives an empty page); only staff filter by `attention`."""
    customer_id = filters.customer_id
    if caller.role is Role.CUSTOMER:
        if customer_id not in (None, caller.customer_id):
            return ReturnPage(items=[], next_cursor=None)
        customer_id = caller.customer_id
    query = sa.select(Return).order_by(Return.created_at.desc(), Return.id.desc()).limit(limit + 1)
    if customer_id is not None:
        query = query.where(Return.customer_id == customer_id)
    if filters.order_id is not None:
        query = query.where(Return.order_id == filters.order_id)
    if filters.status is not None:
        query = query.where(Return.status == filters.status.value)
    if filters.kind is not None:
        query = query.where(Return.kind == filters.kind.value)
    if filters.attention is not None and caller.is_staff:
        flagged = Return.attention.is_not(None)
        query = query.where(flagged if filters.attention else sa.not_(flagged))
    if cursor:
        at, last_id = decode_time_cursor(cursor)
        query = query.where(
            sa.tuple_(Return.created_at, Return.id) < sa.tuple_(sa.literal(at), sa.literal(last_id))
        )
    rows = list((await session.execute(query)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    items = [await view(session, ret, caller) for ret in rows]
    next_cursor = encode_time_cursor(rows[-1].created_at, rows[-1].id) if more else None
    return ReturnPage(items=items, next_cursor=next_cursor)
