"""Replenishment signals: when a SKU x warehouse needs stock, from whom, how much, by when.

`evaluate` assesses one pair (its policy, the preferred supplier item effective today,
the inventory position and the demand history of the policy's `horizon_days`,
zero-filled per day) with the pure rules of `forecast.py` and
`replenishment.py`, and raises a signal when the plan says so and no signal of the pair
is open. Continuous-review policies are evaluated in the transaction that applies each
`InventoryChanged` (`handlers.py`); periodic ones by `run_review` (`POST
/internal/replenishment/review`), which forecasts outside the write transactions and
plans again with the position read inside them.
Suppliers propose their own replenishment (`propose`) within the policy.

A raised signal becomes a purchase order in the same transaction
(`purchase_orders.order_from_signal`: approved within the policy's auto-approve limit,
else pending approval) and turns `ordered`. What open POs still lack (pending approval
included) is on order in the position, so the pair does not signal again while one is
open, however late it is; closing a PO (`reorder_after_close`) evaluates the pair again,
so a shortfall is ordered again when the position still needs it.

Lead time: the plan uses the supplier item's declared lead time and deviation until the
supplier x SKU has `scorecard.MIN_OBSERVED` (3) closed POs; from then on the observed mean
and sample standard deviation of ordered-to-received days (`scorecard.observed_lead_time`).

A signal is raised at most once per pair at a time: the evaluation locks the pair's
policy row (PostgreSQL; SQLite writers are serial), finds no open signal of the pair,
and the insert runs in a savepoint under the partial unique index on (sku, warehouse,
supplier) WHERE status = 'open', so even a race that slipped past both raises nothing
twice. Raising stages `SignalRaised` on `supplier.signal.raised` and a copy (its own
event id) on the supplier's `supplier.<id>.signals`, and queues the webhook delivery,
all in the caller's transaction.

    open ──PO made (same transaction)──▶ ordered
    open ──cancel──▶ cancelled      (superseded: not used yet)

Errors (each a problem; nothing is written):

    404 not_found              the signal, or its supplier, is not the caller's
    409 invalid_transition     the signal is not open
    409 signal_open            (proposal) a signal of the pair is open already
    422 no_policy              (proposal) the pair has no replenishment policy
    422 not_supplied           (proposal) the supplier sells no effective item of the SKU
    422 not_needed             (proposal) the policy asks for nothing now
    422 quantity_exceeds_policy  (proposal) more than the policy allows now
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import events as ev
from services.common.auth import Principal
from services.common.db import Database
from services.common.envelope import Envelope
from services.common.outbox import stage
from services.common.pagination import decode_time_cursor, encode_time_cursor
from services.common.problems import Conflict, NotFound, Unprocessable
from services.common.statuses import SignalOrigin, SignalStatus
from services.supplier import positions, purchase_orders, scorecard, suppliers, webhooks
from services.supplier.forecast import Forecast, forecast_many, forecast_one
from services.supplier.models import (
    PurchaseOrder,
    ReplenishmentPolicy,
    ReplenishmentSignal,
    SignalHistory,
    Supplier,
    SupplierItem,
)
from services.supplier.replenishment import Plan, PlanInput, PlanInputs, plan, plan_many
from services.supplier.schemas import (
    PairIn,
    ProposalIn,
    ReviewMode,
    ReviewOut,
    SignalHistoryOut,
    SignalOut,
    SignalPage,
)

S = SignalStatus
TRANSITIONS: dict[SignalStatus, frozenset[SignalStatus]] = {
    S.OPEN: frozenset({S.ORDERED, S.CANCELLED, S.SUPERSEDED}),
}
REVIEW_CHUNK = 200  # pairs per write transaction of a periodic review


def supplier_subject(supplier_id: str) -> str:
    """The NATS subject a supplier follows its own signals on."""
    return f"supplier.{supplier_id}.signals"


@dataclass(frozen=True)
class Actor:
    """Who makes a change, and where its events come from."""

    source: str
    by: str


POLICY = "policy"  # the `by` of signals the replenishment policy raises


# --- assessing a pair -------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    """What a pair's plan is made from (its forecast aside)."""

    policy: ReplenishmentPolicy
    item: SupplierItem
    position: positions.Position
    history: list[float]
    # Observed over the supplier x SKU's closed POs; None: the item's declared values.
    lead: scorecard.LeadTime | None = None

    @property
    def lead_days(self) -> float:
        return self.lead.mean_days if self.lead else float(self.item.lead_time_days)

    @property
    def lead_sd_days(self) -> float:
        return self.lead.sd_days if self.lead else float(self.item.lead_time_sd_days)


@dataclass(frozen=True)
class Assessment:
    """A pair's inputs, forecast and plan."""

    inputs: Inputs
    forecast: Forecast
    plan: Plan

    @property
    def sku(self) -> str:
        return self.inputs.policy.sku

    @property
    def warehouse_id(self) -> str:
        return self.inputs.policy.warehouse_id


async def _policy(
    session: AsyncSession, sku: str, warehouse_id: str, *, lock: bool
) -> ReplenishmentPolicy | None:
    query = sa.select(ReplenishmentPolicy).where(
        ReplenishmentPolicy.sku == sku, ReplenishmentPolicy.warehouse_id == warehouse_id
    )
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def load_inputs(
    session: AsyncSession,
    sku: str,
    warehouse_id: str,
    today: date,
    *,
    supplier_id: str | None = None,
    lock: bool = False,
) -> Inputs | None:
    """The pair's policy (locked with `lock`), the item to order from (the preferred one,
    or `supplier_id`'s), position and history; None without a policy or an item."""
    policy = await _policy(session, sku, warehouse_id, lock=lock)
    if policy is None:
        return None
    item = await suppliers.preferred_item(session, sku, today, supplier_id=supplier_id)
    if item is None:
        return None
    return Inputs(
        policy=policy,
        item=item,
        position=await positions.position(session, sku, warehouse_id),
        history=await positions.history(session, sku, warehouse_id, today, policy.horizon_days),
        lead=await scorecard.observed_lead_time(session, item.supplier_id, sku),
    )


def plan_input(inputs: Inputs, forecast: Forecast) -> PlanInput:
    policy, item, pos = inputs.policy, inputs.item, inputs.position
    periodic = policy.review_mode == ReviewMode.PERIODIC
    return PlanInput(
        on_hand=pos.on_hand,
        reserved=pos.reserved,
        held=pos.held,
        backordered=pos.backordered,
        on_order=pos.on_order,
        daily_mean=forecast.daily_mean,
        daily_sigma=forecast.daily_sigma,
        lead_days=inputs.lead_days,
        lead_sd_days=inputs.lead_sd_days,
        service_level=policy.service_level,
        review_period_days=float(policy.review_period_days or 0) if periodic else 0.0,
        order_cost=float(policy.order_cost),
        unit_cost=float(item.unit_cost),
        holding_rate=policy.holding_rate,
        moq=item.moq,
        pack=item.pack_multiple,
        min_qty=policy.min_qty,
        max_qty=policy.max_qty,
    )


async def assess(
    session: AsyncSession,
    sku: str,
    warehouse_id: str,
    today: date,
    *,
    supplier_id: str | None = None,
    lock: bool = False,
) -> Assessment | None:
    """One pair's plan (None without a policy or an item). The forecast runs in a
    thread: the event loop keeps serving meanwhile."""
    inputs = await load_inputs(
        session, sku, warehouse_id, today, supplier_id=supplier_id, lock=lock
    )
    if inputs is None:
        return None
    forecast = await asyncio.to_thread(forecast_one, inputs.history)
    return Assessment(inputs, forecast, plan(plan_input(inputs, forecast), today))


async def forecast_each(histories: Sequence[list[float]]) -> list[Forecast]:
    """Forecasts of many histories (grouped by length, one `forecast_many` call each)."""
    groups: dict[int, list[int]] = defaultdict(list)
    for i, values in enumerate(histories):
        groups[len(values)].append(i)
    out: list[Forecast | None] = [None] * len(histories)
    for rows in groups.values():
        matrix = np.asarray([histories[i] for i in rows], dtype=np.float64)
        batch = await asyncio.to_thread(forecast_many, matrix)
        for k, i in enumerate(rows):
            out[i] = batch.one(k)
    return [f for f in out if f is not None]


def plan_each(inputs: Sequence[Inputs], forecasts: Sequence[Forecast], today: date) -> list[Plan]:
    """The plans of many pairs at once (`plan_many`)."""
    if not inputs:
        return []
    batch = plan_many(
        PlanInputs.of([plan_input(i, f) for i, f in zip(inputs, forecasts, strict=True)]), today
    )
    return [batch.plan(i) for i in range(len(batch))]


# --- raising ----------------------------------------------------------------------------


async def open_signal(
    session: AsyncSession, sku: str, warehouse_id: str, supplier_id: str | None = None
) -> ReplenishmentSignal | None:
    """The pair's open signal (from any supplier, or from `supplier_id`)."""
    query = sa.select(ReplenishmentSignal).where(
        ReplenishmentSignal.sku == sku,
        ReplenishmentSignal.warehouse_id == warehouse_id,
        ReplenishmentSignal.status == S.OPEN.value,
    )
    if supplier_id is not None:
        query = query.where(ReplenishmentSignal.supplier_id == supplier_id)
    return (await session.execute(query.limit(1))).scalar_one_or_none()


def _note(session: AsyncSession, signal: ReplenishmentSignal, by: str, note: str | None) -> None:
    session.add(
        SignalHistory(
            signal_id=signal.id, status=signal.status, at=datetime.now(UTC), by=by, note=note
        )
    )


async def _stage_both(
    session: AsyncSession, actor: Actor, signal: ReplenishmentSignal, event: ev.Event
) -> Envelope:
    """Stage the event on its domain subject and a copy on the supplier's own subject;
    returns the copy's envelope."""
    await stage(session, actor.source, event, subject=signal.id)
    return await stage(
        session,
        actor.source,
        event,
        subject=signal.id,
        nats_subject=supplier_subject(signal.supplier_id),
    )


async def _raise(
    session: AsyncSession,
    actor: Actor,
    a: Assessment,
    *,
    origin: SignalOrigin,
    quantity: int,
    note: str | None = None,
) -> ReplenishmentSignal | None:
    """Insert the open signal (None when the pair has one), its history, its events and
    its webhook delivery."""
    if await open_signal(session, a.sku, a.warehouse_id) is not None:
        return None
    inputs, p = a.inputs, a.plan
    item, pos = inputs.item, inputs.position
    now = datetime.now(UTC)
    signal = ReplenishmentSignal(
        id=str(uuid.uuid4()),
        supplier_id=item.supplier_id,
        supplier_item_id=item.id,
        sku=a.sku,
        warehouse_id=a.warehouse_id,
        status=S.OPEN.value,
        origin=origin.value,
        review_mode=inputs.policy.review_mode,
        on_hand=pos.on_hand,
        reserved=pos.reserved,
        held=pos.held,
        backordered=pos.backordered,
        on_order=pos.on_order,
        position=p.position,
        forecast_method=str(a.forecast.method),
        forecast_daily_mean=p.daily_mean,
        forecast_daily_sigma=p.daily_sigma,
        safety_stock=p.safety_stock,
        reorder_point=p.reorder_point,
        target=p.target,
        eoq=p.eoq,
        quantity=quantity,
        need_by=p.need_by,
        lead_time_days=round(inputs.lead_days),
        unit_cost=item.unit_cost,
        currency=item.currency,
        raised_by=actor.by,
        note=note,
        created_at=now,
        updated_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(signal)
            await session.flush()
    except IntegrityError:
        return None  # a concurrent evaluation raised it: the partial unique index
    _note(session, signal, actor.by, note)
    copy = await _stage_both(
        session,
        actor,
        signal,
        ev.SignalRaised(
            signal_id=signal.id,
            supplier_id=signal.supplier_id,
            sku=signal.sku,
            warehouse_id=signal.warehouse_id,
            supplier_part_number=item.supplier_part_number,
            origin=signal.origin,
            review_mode=signal.review_mode,
            on_hand=signal.on_hand,
            reserved=signal.reserved,
            held=signal.held,
            backordered=signal.backordered,
            on_order=signal.on_order,
            position=signal.position,
            forecast_method=signal.forecast_method,
            forecast_daily_mean=signal.forecast_daily_mean,
            safety_stock=signal.safety_stock,
            reorder_point=signal.reorder_point,
            target=signal.target,
            quantity=signal.quantity,
            need_by=signal.need_by.isoformat(),
            unit_cost=str(signal.unit_cost),
            currency=signal.currency,
        ),
    )
    supplier = await session.get(Supplier, signal.supplier_id)
    if supplier is not None:
        webhooks.queue(session, supplier, signal.id, copy)
    po = await purchase_orders.order_from_signal(
        session, purchase_orders.Actor(actor.source, actor.by), signal, inputs.policy
    )
    _can(signal, S.ORDERED)
    signal.status = S.ORDERED.value
    signal.updated_at = signal.closed_at = now
    _note(session, signal, actor.by, f"purchase order {po.id} ({po.status})")
    return signal


@dataclass(frozen=True)
class Evaluation:
    """What evaluating a pair found, and the signal it raised (if any)."""

    assessment: Assessment
    signal: ReplenishmentSignal | None


SYSTEM = Actor("/waybill/supplier", POLICY)


async def evaluate(
    session: AsyncSession,
    sku: str,
    warehouse_id: str,
    today: date,
    *,
    actor: Actor = SYSTEM,
) -> Evaluation | None:
    """Assess the pair (its policy row locked) and raise a signal when the plan needs one
    and none of the pair is open; None without a policy or an effective item."""
    a = await assess(session, sku, warehouse_id, today, lock=True)
    if a is None:
        return None
    signal = None
    if a.plan.needed:
        signal = await _raise(
            session, actor, a, origin=SignalOrigin.POLICY, quantity=a.plan.quantity
        )
    return Evaluation(a, signal)


async def reorder_after_close(
    session: AsyncSession, actor: Actor, po: PurchaseOrder, today: date
) -> Evaluation | None:
    """Close the received PO (repeat-safe), then evaluate its pair again: a shortfall the
    position still needs is signalled (and ordered) again."""
    await purchase_orders.close(session, purchase_orders.Actor(actor.source, actor.by), po)
    await session.flush()
    return await evaluate(session, po.sku, po.warehouse_id, today, actor=SYSTEM)


async def _review_keys(
    session: AsyncSession, pairs: Sequence[PairIn] | None
) -> list[tuple[str, str]]:
    if pairs is not None:
        return sorted({(p.sku, p.warehouse_id) for p in pairs})
    rows = await session.execute(
        sa.select(ReplenishmentPolicy.sku, ReplenishmentPolicy.warehouse_id)
        .where(ReplenishmentPolicy.review_mode == ReviewMode.PERIODIC.value)
        .order_by(ReplenishmentPolicy.sku, ReplenishmentPolicy.warehouse_id)
    )
    return [(sku, wh) for sku, wh in rows]


async def run_review(
    db: Database, actor: Actor, pairs: Sequence[PairIn] | None, today: date, caller: Principal
) -> ReviewOut:
    """Evaluate every periodic policy (or the pairs named, whatever their mode), a chunk
    of pairs at a time: histories read and forecast outside any write transaction, then
    per chunk one transaction that locks the policies, reads the positions again, plans
    and raises."""
    async with db.reading() as session:
        keys = await _review_keys(session, pairs)
    evaluated = 0
    skipped: list[PairIn] = []
    raised: list[SignalOut] = []
    for start in range(0, len(keys), REVIEW_CHUNK):
        chunk = keys[start : start + REVIEW_CHUNK]
        async with db.reading() as session:
            found = {key: await load_inputs(session, *key, today) for key in chunk}
        ready = {key: inputs for key, inputs in found.items() if inputs is not None}
        skipped += [PairIn(sku=k[0], warehouse_id=k[1]) for k in chunk if k not in ready]
        forecasts = dict(
            zip(ready, await forecast_each([i.history for i in ready.values()]), strict=True)
        )
        async with db.transaction() as session:
            fresh: list[Inputs] = []
            for key in ready:
                inputs = await load_inputs(session, *key, today, lock=True)
                if inputs is not None:
                    fresh.append(inputs)
            plans = plan_each(
                fresh, [forecasts[(i.policy.sku, i.policy.warehouse_id)] for i in fresh], today
            )
            evaluated += len(fresh)
            for inputs, p in zip(fresh, plans, strict=True):
                if not p.needed:
                    continue
                key = (inputs.policy.sku, inputs.policy.warehouse_id)
                a = Assessment(inputs, forecasts[key], p)
                signal = await _raise(
                    session, actor, a, origin=SignalOrigin.POLICY, quantity=p.quantity
                )
                if signal is not None:
                    raised.append(await view(session, signal, caller))
    return ReviewOut(evaluated=evaluated, skipped=skipped, raised=raised)


# --- proposals (VMI) --------------------------------------------------------------------


def round_to_terms(quantity: int, moq: int, pack: int) -> int:
    """At least the MOQ, rounded up to whole packs; 0 for nothing."""
    if quantity <= 0:
        return 0
    return -(-max(quantity, moq) // pack) * pack


async def propose(
    session: AsyncSession, actor: Actor, supplier: Supplier, body: ProposalIn, today: date
) -> ReplenishmentSignal:
    """A supplier's proposal for one of its pairs: accepted when the pair has a policy
    and no open signal, and the quantity (rounded to MOQ and pack) is at most
    max(target - position, the plan's quantity) rounded likewise; an open signal of
    origin `supplier`."""
    if not await suppliers.effective_items(session, body.sku, today, supplier_id=supplier.id):
        raise Unprocessable(
            f"supplier {supplier.id} sells no item of {body.sku} effective {today}",
            code="not_supplied",
        )
    if await _policy(session, body.sku, body.warehouse_id, lock=True) is None:
        raise Unprocessable(
            f"{body.sku} has no replenishment policy in {body.warehouse_id}", code="no_policy"
        )
    if await open_signal(session, body.sku, body.warehouse_id) is not None:
        raise Conflict(
            f"a signal of {body.sku} in {body.warehouse_id} is open already", code="signal_open"
        )
    a = await assess(session, body.sku, body.warehouse_id, today, supplier_id=supplier.id)
    if a is None:  # the item or policy went meanwhile (SQLite: never)
        raise Unprocessable(f"{body.sku} cannot be planned now", code="no_policy")
    item, p = a.inputs.item, a.plan
    limit = round_to_terms(max(p.target - p.position, p.quantity), item.moq, item.pack_multiple)
    if limit == 0:
        raise Unprocessable(
            f"{body.sku} in {body.warehouse_id} needs nothing now: position {p.position}, "
            f"target {p.target}",
            code="not_needed",
        )
    quantity = round_to_terms(body.quantity, item.moq, item.pack_multiple)
    if quantity > limit:
        raise Unprocessable(
            f"{quantity} (after MOQ {item.moq} and pack {item.pack_multiple}) is more than the "
            f"{limit} the policy allows now (position {p.position}, target {p.target})",
            code="quantity_exceeds_policy",
        )
    signal = await _raise(
        session, actor, a, origin=SignalOrigin.SUPPLIER, quantity=quantity, note=body.note
    )
    if signal is None:  # raised concurrently meanwhile
        raise Conflict(
            f"a signal of {body.sku} in {body.warehouse_id} is open already", code="signal_open"
        )
    return signal


# --- transitions ------------------------------------------------------------------------


def _can(signal: ReplenishmentSignal, to: SignalStatus) -> None:
    if to not in TRANSITIONS.get(S(signal.status), frozenset()):
        raise Conflict(
            f"signal {signal.id} is {signal.status}; it cannot become {to}",
            code="invalid_transition",
        )


async def cancel(
    session: AsyncSession, actor: Actor, signal: ReplenishmentSignal, reason: str
) -> ReplenishmentSignal:
    """`open → cancelled` (a coordinator dismisses it); the pair may signal again."""
    _can(signal, S.CANCELLED)
    now = datetime.now(UTC)
    signal.status = S.CANCELLED.value
    signal.updated_at = signal.closed_at = now
    _note(session, signal, actor.by, reason)
    await _stage_both(
        session,
        actor,
        signal,
        ev.SignalCancelled(
            signal_id=signal.id,
            supplier_id=signal.supplier_id,
            sku=signal.sku,
            warehouse_id=signal.warehouse_id,
            reason=reason,
            cancelled_by=actor.by,
        ),
    )
    return signal


# --- views ------------------------------------------------------------------------------


async def load(
    session: AsyncSession, signal_id: str, caller: Principal, *, lock: bool = False
) -> ReplenishmentSignal:
    query = sa.select(ReplenishmentSignal).where(ReplenishmentSignal.id == signal_id)
    if lock:
        query = query.with_for_update()
    signal = (await session.execute(query)).scalar_one_or_none()
    if signal is None:
        raise NotFound(f"signal {signal_id} not found")
    caller.ensure_supplier(signal.supplier_id, f"signal {signal_id}")
    return signal


async def view(session: AsyncSession, signal: ReplenishmentSignal, caller: Principal) -> SignalOut:
    await session.flush()
    history = (
        await session.execute(
            sa.select(SignalHistory)
            .where(SignalHistory.signal_id == signal.id)
            .order_by(SignalHistory.id)
        )
    ).scalars()
    return SignalOut(
        id=signal.id,
        supplier_id=signal.supplier_id,
        supplier_item_id=signal.supplier_item_id,
        sku=signal.sku,
        warehouse_id=signal.warehouse_id,
        status=signal.status,
        origin=signal.origin,
        review_mode=signal.review_mode,
        on_hand=signal.on_hand,
        reserved=signal.reserved,
        held=signal.held,
        backordered=signal.backordered,
        on_order=signal.on_order,
        position=signal.position,
        forecast_method=signal.forecast_method,
        forecast_daily_mean=signal.forecast_daily_mean,
        forecast_daily_sigma=signal.forecast_daily_sigma,
        safety_stock=signal.safety_stock,
        reorder_point=signal.reorder_point,
        target=signal.target,
        eoq=signal.eoq,
        quantity=signal.quantity,
        need_by=signal.need_by,
        lead_time_days=signal.lead_time_days,
        unit_cost=signal.unit_cost,
        currency=signal.currency,
        raised_by=signal.raised_by,
        note=signal.note,
        history=[SignalHistoryOut(status=h.status, at=h.at, by=h.by, note=h.note) for h in history],
        created_at=signal.created_at,
        updated_at=signal.updated_at,
        closed_at=signal.closed_at,
    )


async def page(
    session: AsyncSession,
    caller: Principal,
    supplier_id: str,
    *,
    status: SignalStatus | None,
    limit: int,
    cursor: str | None,
) -> SignalPage:
    """The supplier's signals, newest first."""
    await suppliers.load(session, supplier_id, caller)
    query = (
        sa.select(ReplenishmentSignal)
        .where(ReplenishmentSignal.supplier_id == supplier_id)
        .order_by(ReplenishmentSignal.created_at.desc(), ReplenishmentSignal.id.desc())
        .limit(limit + 1)
    )
    if status is not None:
        query = query.where(ReplenishmentSignal.status == status.value)
    if cursor:
        at, last_id = decode_time_cursor(cursor)
        query = query.where(
            sa.tuple_(ReplenishmentSignal.created_at, ReplenishmentSignal.id)
            < sa.tuple_(sa.literal(at), sa.literal(last_id))
        )
    rows = list((await session.execute(query)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    items = [await view(session, signal, caller) for signal in rows]
    return SignalPage(
        items=items,
        next_cursor=encode_time_cursor(rows[-1].created_at, rows[-1].id) if more else None,
    )
