"""Stock ledger and reservations: the rules behind the stock routes, and the functions the
order code and the order-to-delivery workflow call inside their own transactions.

Every quantity change goes through `_Work.move`, which updates the lot's balance and appends
a `StockMovement` whose bucket deltas sum to the balance; each public function then
stages one `InventoryChanged` per SKU x warehouse it touched, in the same transaction.
The event also carries the SKU's open backorder units (all warehouses); a change of
backorders alone (`_Work.backorders_changed`) announces the SKU in each warehouse that
holds a balance of it, or in every active warehouse when none does, so a follower (the
supplier service's inventory position) always knows what is owed to orders.

Concurrency: a writer first locks the SKU rows it works on (sorted by code, `FOR NO KEY
UPDATE`), then their balance rows (sorted by sku, warehouse, lot, `FOR UPDATE`), and only
then reads what it decides on. That is one lock order for every writer on PostgreSQL;
SQLite writers are already serialized by `BEGIN IMMEDIATE`. The CHECK constraints on
`stock_balances` are the last line of defence against overselling.

Reservation policy: first-expiry-first-out within a warehouse (no-expiry lots last; lots
at or past their expiry date, blocked lots and inactive warehouses never), and the fewest
warehouses per order: one warehouse when one can fill every line, else warehouses chosen
greedily by how much of the remaining demand they cover.

Blocked lots: a balance is blocked (`StockBalance.on_hold`) while an active hold covers
its warehouse or its lot's status (`StockLot`) is not `released`. Blocking holds its free
stock and moves its open reservations to other lots (`_block`); stock arriving in a
blocked lot arrives held; a reservation found on one at pick time is swapped like an
expired one. Unblocking frees the held stock and fills backorders (`_unblock`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.events import BookedReceipt, InventoryChanged, OrderBackorderFilled
from services.common.outbox import stage
from services.common.problems import Conflict, Unprocessable
from services.common.statuses import LotStatus
from services.order.stock_models import (
    Sku,
    StockAllocation,
    StockBackorder,
    StockBalance,
    StockHold,
    StockLot,
    StockMovement,
    Warehouse,
)
from services.order.stock_schemas import (
    MAX_QUANTITY,
    Allocation,
    LineRequest,
    LotAvailability,
    Missing,
    PickedLot,
    ReservationResult,
    WarehouseAvailability,
)

__all__ = [
    "HoldOutcome",
    "Pick",
    "StockChange",
    "acting_as",
    "adjust",
    "availability",
    "block_lot",
    "drop_backorders",
    "fill_backorders",
    "hold",
    "issue",
    "lock_sku",
    "lot_status",
    "receive",
    "release",
    "release_hold",
    "reservations_of",
    "reserve",
    "restock",
    "restock_return",
    "set_warehouse_active",
    "today",
    "unblock_lot",
    "unissue",
]

_actor: ContextVar[str | None] = ContextVar("waybill_stock_actor", default=None)


@contextmanager
def acting_as(subject: str) -> Iterator[None]:
    """Record `subject` as the actor of the movements written inside the block."""
    token = _actor.set(subject)
    try:
        yield
    finally:
        _actor.reset(token)


def today() -> date:
    """The current UTC date: lots expiring on or before it are not reserved."""
    return datetime.now(UTC).date()


def _now() -> datetime:
    return datetime.now(UTC)


def inventory_subject(sku: str, warehouse_id: str) -> str:
    """The CloudEvents subject of an InventoryChanged event."""
    return f"{sku}@{warehouse_id}"


# --- the unit of work ----------------------------------------------------------------


@dataclass
class _Work:
    """One stock operation: who does it, what it touched, what to announce at the end."""

    session: AsyncSession
    source: str
    actor: str
    reason: str
    touched: set[tuple[str, str]] = field(default_factory=set)
    backordered: set[str] = field(default_factory=set)
    receipts: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)

    def booked(self, sku: str, warehouse_id: str, purchase_reference: str, quantity: int) -> None:
        """Purchase-order goods went into the pair's stock: say so in its InventoryChanged."""
        self.receipts.setdefault((sku, warehouse_id), Counter())[purchase_reference] += quantity

    def backorders_changed(self, sku: str) -> None:
        """The SKU's open backorders changed: announce it even if no balance moved."""
        self.backordered.add(sku)

    def move(
        self,
        balance: StockBalance,
        kind: str,
        quantity: int,
        *,
        on_hand: int = 0,
        reserved: int = 0,
        held: int = 0,
        reason: str | None = None,
        note: str | None = None,
        reference: str | None = None,
        order_id: str | None = None,
        shipment_id: str | None = None,
    ) -> StockMovement:
        """Apply the deltas to `balance` and append the ledger entry for them. A lot
        never holds more than `MAX_QUANTITY` (422 `quantity_too_large`)."""
        if on_hand > 0 and balance.on_hand + on_hand > MAX_QUANTITY:
            raise Unprocessable(
                f"lot {balance.lot} of {balance.sku} in {balance.warehouse_id} would hold "
                f"more than {MAX_QUANTITY} units",
                code="quantity_too_large",
            )
        now = _now()
        balance.on_hand += on_hand
        balance.reserved += reserved
        balance.held += held
        balance.updated_at = now
        movement = StockMovement(
            kind=kind,
            sku=balance.sku,
            warehouse_id=balance.warehouse_id,
            lot=balance.lot,
            quantity=quantity,
            on_hand_delta=on_hand,
            reserved_delta=reserved,
            held_delta=held,
            reason=reason,
            note=note,
            reference=reference,
            order_id=order_id,
            shipment_id=shipment_id,
            actor=self.actor,
            created_at=now,
        )
        self.session.add(movement)
        self.touched.add((balance.sku, balance.warehouse_id))
        return movement

    async def _warehouses_of(self, sku: str) -> list[str]:
        """Where a change of the SKU's backorders is announced: every warehouse holding a
        balance of it, else every active warehouse."""
        held = await self.session.scalars(
            sa.select(StockBalance.warehouse_id).where(StockBalance.sku == sku).distinct()
        )
        found = sorted(held)
        return found or sorted(await _active_warehouses(self.session))

    async def _open_backordered(self, sku: str) -> int:
        total = await self.session.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(StockBackorder.quantity), 0)).where(
                StockBackorder.sku == sku, StockBackorder.status == "open"
            )
        )
        return int(total or 0)

    async def emit(self) -> None:
        """Stage one InventoryChanged per SKU x warehouse touched, with its new totals and
        the SKU's open backorders (also for SKUs whose backorders alone changed)."""
        if not self.touched and not self.backordered:
            return
        await self.session.flush()
        for sku in sorted(self.backordered):
            self.touched.update(
                (sku, warehouse_id) for warehouse_id in await self._warehouses_of(sku)
            )
        backordered: dict[str, int] = {}
        for sku, warehouse_id in sorted(self.touched):
            if sku not in backordered:
                backordered[sku] = await self._open_backordered(sku)
            row = (
                await self.session.execute(
                    sa.select(
                        sa.func.coalesce(sa.func.sum(StockBalance.on_hand), 0),
                        sa.func.coalesce(sa.func.sum(StockBalance.reserved), 0),
                        sa.func.coalesce(sa.func.sum(StockBalance.held), 0),
                    ).where(StockBalance.sku == sku, StockBalance.warehouse_id == warehouse_id)
                )
            ).one()
            on_hand, reserved, held = (int(v) for v in row)
            await stage(
                self.session,
                self.source,
                InventoryChanged(
                    sku=sku,
                    warehouse_id=warehouse_id,
                    on_hand=on_hand,
                    reserved=reserved,
                    held=held,
                    available=on_hand - reserved - held,
                    reason=self.reason,
                    backordered=backordered[sku],
                    receipts=[
                        BookedReceipt(purchase_reference=ref, quantity=qty)
                        for ref, qty in sorted(self.receipts.get((sku, warehouse_id), {}).items())
                    ],
                ),
                subject=inventory_subject(sku, warehouse_id),
            )
        self.touched.clear()
        self.backordered.clear()
        self.receipts.clear()


def _work(session: AsyncSession, source: str, reason: str, actor: str | None = None) -> _Work:
    return _Work(session, source, actor or _actor.get() or source, reason)


# --- locking and reading ---------------------------------------------------------------


async def _lock_skus(session: AsyncSession, codes: Iterable[str]) -> dict[str, Sku]:
    """Lock the SKU rows (sorted by code): the serialization point of every stock writer."""
    wanted = sorted(set(codes))
    if not wanted:
        return {}
    rows = await session.scalars(
        sa.select(Sku)
        .where(Sku.code.in_(wanted))
        .order_by(Sku.code)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    return {sku.code: sku for sku in rows}


async def lock_sku(session: AsyncSession, code: str) -> Sku | None:
    """Lock one SKU row (the stock writers' serialization point); None when unknown."""
    return (await _lock_skus(session, [code])).get(code)


async def _require_skus(session: AsyncSession, codes: Iterable[str]) -> dict[str, Sku]:
    wanted = set(codes)
    found = await _lock_skus(session, wanted)
    unknown = sorted(wanted - set(found))
    if unknown:
        raise Unprocessable(f"unknown SKU: {', '.join(unknown)}", code="unknown_sku")
    return found


# Which balance rows an operation needs: a SKU keeps the rows of every lot it ever had.
HAS_AVAILABLE = StockBalance.on_hand > StockBalance.reserved + StockBalance.held
HAS_RESERVED = StockBalance.reserved > 0


async def _lock_balances(
    session: AsyncSession, skus: Iterable[str], where: sa.ColumnElement[bool] | None = None
) -> list[StockBalance]:
    """Lock and (re)load the balance rows of `skus` (those matching `where`), sorted by
    sku, warehouse, lot. Callers hold the SKU locks, so skipped rows cannot change."""
    wanted = sorted(set(skus))
    if not wanted:
        return []
    await session.flush()
    query = sa.select(StockBalance).where(StockBalance.sku.in_(wanted))
    if where is not None:
        query = query.where(where)
    rows = await session.scalars(
        query.order_by(StockBalance.sku, StockBalance.warehouse_id, StockBalance.lot)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def _active_warehouses(session: AsyncSession) -> set[str]:
    rows = await session.scalars(sa.select(Warehouse.id).where(Warehouse.active.is_(True)))
    return set(rows)


async def _require_warehouse(session: AsyncSession, warehouse_id: str) -> Warehouse:
    warehouse = await session.get(Warehouse, warehouse_id)
    if warehouse is None:
        raise Unprocessable(f"unknown warehouse: {warehouse_id}", code="unknown_warehouse")
    return warehouse


async def _allocations(
    session: AsyncSession,
    *,
    order_id: str | None = None,
    shipment_id: str | None = None,
    warehouse_id: str | None = None,
    statuses: Sequence[str] = (),
    lock: bool = False,
) -> list[StockAllocation]:
    query = sa.select(StockAllocation).order_by(StockAllocation.id)
    if order_id is not None:
        query = query.where(StockAllocation.order_id == order_id)
    if shipment_id is not None:
        query = query.where(StockAllocation.shipment_id == shipment_id)
    if warehouse_id is not None:
        query = query.where(StockAllocation.warehouse_id == warehouse_id)
    if statuses:
        query = query.where(StockAllocation.status.in_(statuses))
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return list(await session.scalars(query))


async def _open_backorders(
    session: AsyncSession,
    *,
    order_id: str | None = None,
    sku: str | None = None,
    lock: bool = False,
) -> list[StockBackorder]:
    query = (
        sa.select(StockBackorder)
        .where(StockBackorder.status == "open")
        .order_by(StockBackorder.created_at, StockBackorder.id)
    )
    if order_id is not None:
        query = query.where(StockBackorder.order_id == order_id)
    if sku is not None:
        query = query.where(StockBackorder.sku == sku)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return list(await session.scalars(query))


def _fefo_key(balance: StockBalance) -> tuple[bool, date, str]:
    return (balance.expiry is None, balance.expiry or date.max, balance.lot)


def _expired(balance: StockBalance, on: date) -> bool:
    return balance.expiry is not None and balance.expiry <= on


def _unpickable(balance: StockBalance, on: date) -> bool:
    """Reserved stock that must not ship: its lot expired or was blocked since."""
    return balance.on_hold or _expired(balance, on)


def _reservable(balances: Iterable[StockBalance], active: set[str]) -> list[StockBalance]:
    """The lots reservations may draw on, first expiry first."""
    on = today()
    eligible = [
        b
        for b in balances
        if b.warehouse_id in active and not b.on_hold and not _expired(b, on) and b.available > 0
    ]
    return sorted(eligible, key=_fefo_key)


def aggregate(rows: Iterable[StockAllocation]) -> list[Allocation]:
    """Allocation rows summed per (line, sku, warehouse, lot), in line and FEFO order."""
    sums: dict[tuple[int, str, str, str, date | None], int] = defaultdict(int)
    for row in rows:
        sums[(row.line_no, row.sku, row.warehouse_id, row.lot, row.expiry)] += row.quantity
    out = [
        Allocation(line_no=k[0], sku=k[1], warehouse_id=k[2], lot=k[3], expiry=k[4], quantity=q)
        for k, q in sums.items()
        if q > 0
    ]
    out.sort(
        key=lambda a: (a.line_no, a.warehouse_id, a.expiry is None, a.expiry or date.max, a.lot)
    )
    return out


# --- planning ----------------------------------------------------------------------------


@dataclass
class _Need:
    line_no: int
    sku: str
    quantity: int


def _plan(
    needs: Sequence[_Need], lots: Sequence[StockBalance], preferred: set[str]
) -> list[tuple[_Need, StockBalance, int]]:
    """Which lots fill which needs: fewest warehouses, then FEFO inside each.

    `lots` are the reservable lots in FEFO order; `preferred` are warehouses the order
    already draws on (they win ties, so an order does not spread further than needed).
    """
    demand: dict[str, int] = defaultdict(int)
    for need in needs:
        demand[need.sku] += need.quantity
    by_warehouse: dict[str, dict[str, list[StockBalance]]] = defaultdict(lambda: defaultdict(list))
    for lot in lots:
        if lot.sku in demand and lot.available > 0:
            by_warehouse[lot.warehouse_id][lot.sku].append(lot)
    have = {
        w: {s: sum(b.available for b in rows) for s, rows in skus.items()}
        for w, skus in by_warehouse.items()
    }

    def total(w: str) -> int:
        return sum(have[w].get(s, 0) for s in demand)

    whole = [w for w in have if all(have[w].get(s, 0) >= q for s, q in demand.items())]
    chosen: list[str] = []
    if whole:
        chosen.append(min(whole, key=lambda w: (w not in preferred, -total(w), w)))
    else:
        remaining = dict(demand)
        pool = set(have)

        def cover(w: str) -> int:
            return sum(min(have[w].get(s, 0), r) for s, r in remaining.items())

        while pool and any(remaining.values()):
            best = min(pool, key=lambda w: (-cover(w), w not in preferred, -total(w), w))
            if cover(best) == 0:
                break
            chosen.append(best)
            pool.discard(best)
            for s in remaining:
                remaining[s] -= min(have[best].get(s, 0), remaining[s])

    plan: list[tuple[_Need, StockBalance, int]] = []
    left = [need.quantity for need in needs]
    taken: dict[int, int] = defaultdict(int)
    for w in chosen:
        for i, need in enumerate(needs):
            for lot in by_warehouse[w].get(need.sku, []):
                if left[i] == 0:
                    break
                quantity = min(left[i], lot.available - taken[id(lot)])
                if quantity > 0:
                    plan.append((need, lot, quantity))
                    taken[id(lot)] += quantity
                    left[i] -= quantity
    return plan


def _reserve_lot(
    work: _Work,
    order_id: str,
    line_no: int,
    balance: StockBalance,
    quantity: int,
    backorder_id: int | None = None,
) -> StockAllocation:
    work.move(balance, "reserve", quantity, reserved=quantity, order_id=order_id)
    now = _now()
    allocation = StockAllocation(
        order_id=order_id,
        line_no=line_no,
        sku=balance.sku,
        warehouse_id=balance.warehouse_id,
        lot=balance.lot,
        expiry=balance.expiry,
        quantity=quantity,
        status="reserved",
        backorder_id=backorder_id,
        created_at=now,
        updated_at=now,
    )
    work.session.add(allocation)
    return allocation


def _freed_into(balance: StockBalance, quantity: int) -> int:
    """How much of `quantity` coming back unreserved must be held (the lot is quarantined)."""
    return quantity if balance.on_hold else 0


def _backorder_more(
    work: _Work,
    backorder: StockBackorder | None,
    order_id: str,
    line_no: int,
    sku: str,
    quantity: int,
) -> None:
    """Add `quantity` to the line's open backorder, or open one."""
    if quantity > 0:
        work.backorders_changed(sku)
    if backorder is not None:
        backorder.quantity += quantity
        return
    work.session.add(
        StockBackorder(
            order_id=order_id,
            line_no=line_no,
            sku=sku,
            quantity=quantity,
            status="open",
            created_at=_now(),
        )
    )


# --- reservations ------------------------------------------------------------------------


async def reserve(
    session: AsyncSession, order_id: str, lines: list[LineRequest], source: str
) -> ReservationResult:
    """Reserve what the order's lines still lack and backorder the rest.

    Idempotent and incremental: quantities already reserved or issued for a line count,
    and a line's open backorder is updated rather than duplicated. Unknown SKUs are a
    422 `unknown_sku`.
    """
    numbers = [line.line_no for line in lines]
    if len(set(numbers)) != len(numbers):
        raise Unprocessable("line numbers must be unique", code="duplicate_line")
    if not lines:
        return ReservationResult(status="reserved", allocations=[], missing=[])
    work = _work(session, source, "reserve")
    await _require_skus(session, (line.sku for line in lines))
    balances = await _lock_balances(session, (line.sku for line in lines), HAS_AVAILABLE)
    held = await _allocations(
        session, order_id=order_id, statuses=("reserved", "issued"), lock=True
    )
    have: dict[tuple[int, str], int] = defaultdict(int)
    for row in held:
        have[(row.line_no, row.sku)] += row.quantity
    open_backorders = {
        b.line_no: b for b in await _open_backorders(session, order_id=order_id, lock=True)
    }

    needs = [
        _Need(line.line_no, line.sku, line.quantity - have[(line.line_no, line.sku)])
        for line in lines
        if line.quantity > have[(line.line_no, line.sku)]
    ]
    lots = _reservable(balances, await _active_warehouses(session))
    got: dict[int, int] = defaultdict(int)
    for need, lot, quantity in _plan(needs, lots, {row.warehouse_id for row in held}):
        _reserve_lot(work, order_id, need.line_no, lot, quantity)
        got[need.line_no] += quantity

    missing: list[Missing] = []
    now = _now()
    for line in lines:
        short = max(0, line.quantity - have[(line.line_no, line.sku)] - got[line.line_no])
        backorder = open_backorders.get(line.line_no)
        if short:
            missing.append(Missing(line_no=line.line_no, sku=line.sku, quantity=short))
            if backorder is None or (backorder.sku, backorder.quantity) != (line.sku, short):
                work.backorders_changed(line.sku)
                if backorder is not None:
                    work.backorders_changed(backorder.sku)
            if backorder is None:
                session.add(
                    StockBackorder(
                        order_id=order_id,
                        line_no=line.line_no,
                        sku=line.sku,
                        quantity=short,
                        status="open",
                        created_at=now,
                    )
                )
            else:
                backorder.sku = line.sku
                backorder.quantity = short
        elif backorder is not None:
            work.backorders_changed(backorder.sku)
            backorder.quantity = 0
            backorder.status = "filled"
            backorder.closed_at = now
    await work.emit()

    wanted = set(numbers)
    allocations = [a for a in await reservations_of(session, order_id) if a.line_no in wanted]
    if not missing:
        status = "reserved"
    elif any(have[(line.line_no, line.sku)] or got[line.line_no] for line in lines):
        status = "partial"
    else:
        status = "backordered"
    return ReservationResult(status=status, allocations=allocations, missing=missing)


async def _fill(work: _Work, sku: str) -> list[tuple[str, list[Allocation]]]:
    """Reserve open backorders of `sku` first in, first out; announce completed orders."""
    session = work.session
    await _lock_skus(session, [sku])
    balances = await _lock_balances(session, [sku], HAS_AVAILABLE)
    queue = await _open_backorders(session, sku=sku, lock=True)
    if not queue:
        return []
    lots = _reservable(balances, await _active_warehouses(session))
    touched: list[str] = []
    for backorder in queue:
        if not any(lot.available > 0 for lot in lots):
            break
        used = await session.scalars(
            sa.select(StockAllocation.warehouse_id).where(
                StockAllocation.order_id == backorder.order_id,
                StockAllocation.status.in_(("reserved", "issued")),
            )
        )
        need = _Need(backorder.line_no, sku, backorder.quantity)
        got = 0
        for _, lot, quantity in _plan([need], lots, set(used)):
            _reserve_lot(work, backorder.order_id, backorder.line_no, lot, quantity, backorder.id)
            got += quantity
        if got:
            work.backorders_changed(sku)
            backorder.quantity -= got
            if backorder.quantity == 0:
                backorder.status = "filled"
                backorder.closed_at = _now()
            if backorder.order_id not in touched:
                touched.append(backorder.order_id)
    await session.flush()

    filled: list[tuple[str, list[Allocation]]] = []
    for order_id in touched:
        if await _open_backorders(session, order_id=order_id):
            continue
        rows = await session.scalars(
            sa.select(StockAllocation).where(
                StockAllocation.order_id == order_id,
                StockAllocation.status == "reserved",
                StockAllocation.backorder_id.is_not(None),
            )
        )
        allocations = aggregate(rows)
        filled.append((order_id, allocations))
        await stage(
            session,
            work.source,
            OrderBackorderFilled(
                order_id=order_id, allocations=[a.lot_quantity() for a in allocations]
            ),
            subject=order_id,
        )
    return filled


async def fill_backorders(
    session: AsyncSession, sku: str, source: str
) -> list[tuple[str, list[Allocation]]]:
    """Reserve open backorders of `sku` in creation order (FIFO) from reservable stock.

    Returns (order_id, allocations filled from backorders) for every order that has no
    open backorder left afterwards, and stages `OrderBackorderFilled` for each; a
    partly filled backorder stays open with the remaining quantity.
    """
    work = _work(session, source, "backorder_fill")
    filled = await _fill(work, sku)
    await work.emit()
    return filled


async def _fill_each(work: _Work, skus: Iterable[str]) -> list[str]:
    orders: list[str] = []
    for sku in sorted(set(skus)):
        for order_id, _ in await _fill(work, sku):
            if order_id not in orders:
                orders.append(order_id)
    return orders


async def release(session: AsyncSession, order_id: str, source: str) -> None:
    """Release everything the order still has reserved (not issued) and cancel its open
    backorders; the freed stock then fills other orders' backorders."""
    work = _work(session, source, "unreserve")
    pending = await _allocations(session, order_id=order_id, statuses=("reserved",))
    backorders = await _open_backorders(session, order_id=order_id)
    skus = {a.sku for a in pending} | {b.sku for b in backorders}
    if not skus:
        return
    await _lock_skus(session, skus)
    balances = {
        (b.sku, b.warehouse_id, b.lot): b for b in await _lock_balances(session, skus, HAS_RESERVED)
    }
    now = _now()
    released: set[str] = set()
    for row in await _allocations(session, order_id=order_id, statuses=("reserved",), lock=True):
        balance = balances.get((row.sku, row.warehouse_id, row.lot))
        if balance is None:  # a row of a SKU reserved after our first read: lock it too
            await _lock_skus(session, [row.sku])
            for b in await _lock_balances(session, [row.sku], HAS_RESERVED):
                balances[(b.sku, b.warehouse_id, b.lot)] = b
            balance = balances[(row.sku, row.warehouse_id, row.lot)]
        work.move(
            balance,
            "unreserve",
            -row.quantity,
            reserved=-row.quantity,
            held=_freed_into(balance, row.quantity),
            order_id=order_id,
        )
        row.status = "released"
        row.updated_at = now
        released.add(row.sku)
    for backorder in await _open_backorders(session, order_id=order_id, lock=True):
        work.backorders_changed(backorder.sku)
        backorder.status = "cancelled"
        backorder.closed_at = now
    await _fill_each(work, released)
    await work.emit()


async def drop_backorders(session: AsyncSession, order_id: str, source: str) -> list[Missing]:
    """Cancel the order's open backorders (ship what is reserved); returns what was dropped."""
    first = await _open_backorders(session, order_id=order_id)
    if not first:
        return []
    work = _work(session, source, "backorder_drop")
    await _lock_skus(session, {b.sku for b in first})
    now = _now()
    dropped = []
    for backorder in await _open_backorders(session, order_id=order_id, lock=True):
        dropped.append(
            Missing(line_no=backorder.line_no, sku=backorder.sku, quantity=backorder.quantity)
        )
        work.backorders_changed(backorder.sku)
        backorder.status = "cancelled"
        backorder.closed_at = now
    await work.emit()
    return sorted(dropped, key=lambda m: m.line_no)


@dataclass
class Pick:
    """What `issue` did in one warehouse: the lots picked or, when expired lots could not
    be swapped for good ones there, what was backordered instead (then nothing is picked)."""

    picked: list[PickedLot]
    backordered: list[Missing]


async def _weighed(session: AsyncSession, allocations: list[Allocation]) -> list[PickedLot]:
    """The allocations with their SKUs' catalogue weights (the shipment packs by them)."""
    codes = sorted({a.sku for a in allocations})
    rows = await session.execute(sa.select(Sku.code, Sku.weight_grams).where(Sku.code.in_(codes)))
    weights = {code: grams for code, grams in rows}
    return [PickedLot(**a.model_dump(), unit_weight_grams=weights[a.sku]) for a in allocations]


async def issue(
    session: AsyncSession, order_id: str, warehouse_id: str, shipment_id: str, source: str
) -> Pick:
    """Turn the order's reservations in `warehouse_id` into stock issued to `shipment_id`.

    Expiry and lot status are checked again at pick time: a reserved lot that has expired
    or been blocked since is swapped for the warehouse's other reservable lots (FEFO); what
    they cannot cover is released and backordered, and then nothing is picked in the
    warehouse (`Pick.backordered`).

    Returns the picked lots (empty when nothing is reserved there). Idempotent per
    shipment: a repeat returns the same lots and changes nothing; a shipment id already
    used for another order or warehouse is a 409 `shipment_mismatch`.
    """

    async def already() -> list[Allocation] | None:
        # Rows put back (`unissued`) belong to an earlier, compensated try: a retry
        # must pick the new reservations, not answer the old lots.
        rows = await _allocations(
            session, shipment_id=shipment_id, statuses=("issued", "restocked")
        )
        if not rows:
            return None
        if any(r.order_id != order_id or r.warehouse_id != warehouse_id for r in rows):
            raise Conflict(
                f"shipment {shipment_id} was issued for another order or warehouse",
                code="shipment_mismatch",
            )
        return aggregate(rows)

    done = await already()
    if done is not None:
        return Pick(await _weighed(session, done), [])
    pending = await _allocations(
        session, order_id=order_id, warehouse_id=warehouse_id, statuses=("reserved",)
    )
    if not pending:
        return Pick([], [])
    work = _work(session, source, "issue")
    skus = {row.sku for row in pending}
    await _lock_skus(session, skus)
    done = await already()  # a concurrent call for the same shipment got there first
    if done is not None:
        return Pick(await _weighed(session, done), [])
    balances = {
        (b.sku, b.warehouse_id, b.lot): b
        for b in await _lock_balances(session, skus, StockBalance.warehouse_id == warehouse_id)
    }

    async def reserved_here() -> list[StockAllocation]:
        rows = await _allocations(
            session, order_id=order_id, warehouse_id=warehouse_id, statuses=("reserved",), lock=True
        )
        return [r for r in rows if r.sku in skus]

    rows = await reserved_here()
    on = today()
    stale = [r for r in rows if _unpickable(balances[(r.sku, r.warehouse_id, r.lot)], on)]
    if stale:
        short = await _swap_unpickable(work, stale, balances)
        if short:
            await _fill_each(work, {m.sku for m in short})
            await work.emit()
            return Pick([], short)
        rows = await reserved_here()
    now = _now()
    for row in rows:
        balance = balances[(row.sku, row.warehouse_id, row.lot)]
        work.move(
            balance,
            "issue",
            -row.quantity,
            on_hand=-row.quantity,
            reserved=-row.quantity,
            order_id=order_id,
            shipment_id=shipment_id,
        )
        row.status = "issued"
        row.shipment_id = shipment_id
        row.updated_at = now
    await work.emit()
    return Pick(await _weighed(session, aggregate(rows)), [])


async def _swap_unpickable(
    work: _Work,
    stale: list[StockAllocation],
    balances: dict[tuple[str, str, str], StockBalance],
) -> list[Missing]:
    """Move reservations off expired or blocked lots onto the warehouse's other
    reservable lots (`balances`: the warehouse's locked rows of the SKUs); backorder what
    they cannot cover. Returns the backordered quantities per line."""
    session = work.session
    lots = _reservable(balances.values(), await _active_warehouses(session))
    now = _now()
    short: dict[tuple[int, str], int] = defaultdict(int)
    for row in stale:
        expired = balances[(row.sku, row.warehouse_id, row.lot)]
        work.move(
            expired,
            "unreserve",
            -row.quantity,
            reserved=-row.quantity,
            held=_freed_into(expired, row.quantity),
            order_id=row.order_id,
            note=(
                f"lot {row.lot} blocked before picking"
                if expired.on_hold
                else f"lot {row.lot} expired {row.expiry} before picking"
            ),
        )
        row.status = "released"
        row.updated_at = now
        left = row.quantity
        for lot in lots:
            if lot.sku != row.sku or lot.available <= 0 or left == 0:
                continue
            quantity = min(left, lot.available)
            _reserve_lot(work, row.order_id, row.line_no, lot, quantity, row.backorder_id)
            left -= quantity
        if left:
            short[(row.line_no, row.sku)] += left
    if not short:
        return []
    order_id = stale[0].order_id
    open_backorders = {
        b.line_no: b for b in await _open_backorders(session, order_id=order_id, lock=True)
    }
    for (line_no, sku), quantity in short.items():
        _backorder_more(work, open_backorders.get(line_no), order_id, line_no, sku, quantity)
    await session.flush()
    return [Missing(line_no=n, sku=s, quantity=q) for (n, s), q in sorted(short.items())]


async def _return_shipment(
    session: AsyncSession, shipment_id: str, source: str, kind: str, status: str
) -> list[StockAllocation]:
    """Put a shipment's issued lots back on hand, unreserved (held if quarantined)."""
    pending = await _allocations(session, shipment_id=shipment_id, statuses=("issued",))
    if not pending:
        return []
    work = _work(session, source, kind)
    skus = {row.sku for row in pending}
    await _lock_skus(session, skus)
    lots = sa.tuple_(StockBalance.warehouse_id, StockBalance.lot).in_(
        sorted({(row.warehouse_id, row.lot) for row in pending})
    )
    balances = {
        (b.sku, b.warehouse_id, b.lot): b for b in await _lock_balances(session, skus, lots)
    }
    rows = await _allocations(session, shipment_id=shipment_id, statuses=("issued",), lock=True)
    now = _now()
    for row in rows:
        balance = balances[(row.sku, row.warehouse_id, row.lot)]
        work.move(
            balance,
            kind,
            row.quantity,
            on_hand=row.quantity,
            held=_freed_into(balance, row.quantity),
            order_id=row.order_id,
            shipment_id=shipment_id,
        )
        row.status = status
        row.updated_at = now
    await _fill_each(work, {row.sku for row in rows})
    await work.emit()
    return rows


async def unissue(session: AsyncSession, shipment_id: str, source: str) -> None:
    """Reverse an issue (shipment cancelled before dispatch): the stock is back on hand and
    released, not re-reserved for the order. Idempotent."""
    await _return_shipment(session, shipment_id, source, "unissue", "unissued")


async def restock(session: AsyncSession, shipment_id: str, source: str) -> list[Allocation]:
    """Returned to sender: the shipment's lots come back on hand. Idempotent per shipment;
    returns the restocked lots (a repeat returns the same ones)."""
    await _return_shipment(session, shipment_id, source, "restock", "restocked")
    rows = await _allocations(session, shipment_id=shipment_id, statuses=("restocked",))
    return aggregate(rows)


async def allocations_of(session: AsyncSession, order_id: str) -> list[Allocation]:
    """What the order holds: still reserved, or already issued to a shipment."""
    return aggregate(
        await _allocations(session, order_id=order_id, statuses=("reserved", "issued"))
    )


async def reservations_of(session: AsyncSession, order_id: str) -> list[Allocation]:
    """What the order still has reserved (not yet issued), per line and lot."""
    return aggregate(await _allocations(session, order_id=order_id, statuses=("reserved",)))


async def availability(
    session: AsyncSession, sku: str | None, warehouse_id: str | None = None
) -> list[WarehouseAvailability]:
    """Quantities per SKU per warehouse, with the lots in stock in FEFO order (filters
    optional; a warehouse whose lots are all empty is listed with zero totals)."""
    query = sa.select(StockBalance, Warehouse.active).join(
        Warehouse, Warehouse.id == StockBalance.warehouse_id
    )
    if sku is not None:
        query = query.where(StockBalance.sku == sku)
    if warehouse_id is not None:
        query = query.where(StockBalance.warehouse_id == warehouse_id)
    rows = (await session.execute(query)).all()
    on = today()
    groups: dict[tuple[str, str], list[StockBalance]] = defaultdict(list)
    active: dict[str, bool] = {}
    for balance, is_active in rows:
        groups[(balance.sku, balance.warehouse_id)].append(balance)
        active[balance.warehouse_id] = bool(is_active)
    out = []
    for (code, warehouse), balances in sorted(groups.items()):
        balances.sort(key=_fefo_key)
        lots = [
            LotAvailability(
                lot=b.lot,
                expiry=b.expiry,
                on_hand=b.on_hand,
                reserved=b.reserved,
                held=b.held,
                available=b.available,
                on_hold=b.on_hold,
                expired=_expired(b, on),
            )
            for b in balances
            if b.on_hand > 0
        ]
        out.append(
            WarehouseAvailability(
                sku=code,
                warehouse_id=warehouse,
                warehouse_active=active[warehouse],
                on_hand=sum(lot.on_hand for lot in lots),
                reserved=sum(lot.reserved for lot in lots),
                held=sum(lot.held for lot in lots),
                available=sum(lot.available for lot in lots),
                reservable=sum(
                    lot.available
                    for lot in lots
                    if active[warehouse] and not lot.expired and not lot.on_hold
                ),
                lots=lots,
            )
        )
    return out


# --- receipts, adjustments, holds ------------------------------------------------------


@dataclass
class StockChange:
    """A receipt or adjustment: the ledger entry, the lot after it, the orders it filled."""

    movement: StockMovement
    balance: StockBalance
    backorders_filled: list[str]


async def receive(
    session: AsyncSession,
    *,
    warehouse_id: str,
    sku: str,
    lot: str,
    expiry: date | None,
    quantity: int,
    reference: str | None,
    actor: str,
    source: str,
    supplier_id: str | None = None,
    purchase_reference: str | None = None,
) -> StockChange:
    """Book goods in, with the supplier and purchase reference they came from if known.
    Shelf-life SKUs need an expiry (a known lot's is inherited); an expiry in the past, or
    one that differs from the lot's, is refused. Stock of a blocked lot arrives held; open
    backorders of the SKU are filled afterwards."""
    work = _work(session, source, "receipt", actor)
    item = (await _require_skus(session, [sku]))[sku]
    warehouse = await _require_warehouse(session, warehouse_id)
    if not warehouse.active:
        raise Conflict(f"warehouse {warehouse_id} is inactive", code="warehouse_inactive")
    balances = await _lock_balances(session, [sku], StockBalance.lot == lot)
    known = {b.expiry for b in balances}
    if expiry is None and len(known) == 1:
        expiry = next(iter(known))
    if known and known != {expiry}:
        shown = ", ".join(sorted(str(e) if e else "none" for e in known))
        raise Conflict(
            f"lot {lot} of {sku} has expiry {shown}, not {expiry or 'none'}",
            code="lot_expiry_mismatch",
        )
    if item.shelf_life and expiry is None:
        raise Unprocessable(
            f"{sku} has a shelf life: a receipt needs an expiry date", code="expiry_required"
        )
    if expiry is not None and expiry < today():
        raise Unprocessable(f"expiry {expiry} is in the past", code="expiry_in_past")
    balance = next((b for b in balances if b.warehouse_id == warehouse_id and b.lot == lot), None)
    if balance is None:
        now = _now()
        balance = StockBalance(
            sku=sku,
            warehouse_id=warehouse_id,
            lot=lot,
            expiry=expiry,
            on_hand=0,
            reserved=0,
            held=0,
            on_hold=await _blocked(session, sku, lot, warehouse_id),
            created_at=now,
            updated_at=now,
        )
        session.add(balance)
    movement = work.move(
        balance,
        "receipt",
        quantity,
        on_hand=quantity,
        held=_freed_into(balance, quantity),
        reference=reference,
    )
    movement.supplier_id = supplier_id
    movement.purchase_reference = purchase_reference
    if purchase_reference is not None:
        work.booked(sku, warehouse_id, purchase_reference, quantity)
    await session.flush()
    filled = [order_id for order_id, _ in await _fill(work, sku)]
    await work.emit()
    return StockChange(movement, balance, filled)


async def adjust(
    session: AsyncSession,
    *,
    warehouse_id: str,
    sku: str,
    lot: str,
    delta: int,
    reason: str,
    note: str | None,
    actor: str,
    source: str,
) -> StockChange:
    """Correct a lot's on-hand quantity. A decrease takes unreserved stock only (409
    `insufficient_stock` otherwise); on a held lot that is the quarantined stock, so
    held goods can be written off. An increase fills open backorders."""
    work = _work(session, source, "adjustment", actor)
    await _require_skus(session, [sku])
    await _require_warehouse(session, warehouse_id)
    balances = await _lock_balances(
        session, [sku], (StockBalance.lot == lot) & (StockBalance.warehouse_id == warehouse_id)
    )
    balance = balances[0] if balances else None
    if balance is None:
        raise Unprocessable(
            f"no stock record of lot {lot} of {sku} in {warehouse_id}; book it in as a receipt",
            code="unknown_lot",
        )
    if delta > 0:
        held = _freed_into(balance, delta)
    else:
        removable = balance.on_hand - balance.reserved - (0 if balance.on_hold else balance.held)
        if -delta > removable:
            raise Conflict(
                f"lot {lot} of {sku} in {warehouse_id} has {balance.on_hand} on hand of "
                f"which {balance.reserved} reserved: cannot remove {-delta}",
                code="insufficient_stock",
            )
        held = -min(-delta, balance.held) if balance.on_hold else 0
    movement = work.move(
        balance, "adjustment", delta, on_hand=delta, held=held, reason=reason, note=note
    )
    await session.flush()
    filled = [order_id for order_id, _ in await _fill(work, sku)] if delta > 0 else []
    await work.emit()
    return StockChange(movement, balance, filled)


@dataclass
class Displaced:
    """An order line whose reservation was taken off a lot put into quarantine."""

    order_id: str
    line_no: int
    quantity: int
    short: int  # still backordered after re-reserving from other lots


@dataclass
class HoldOutcome:
    """A lot after a hold or release: its active holds and balances, the orders filled,
    and the reservations a hold moved off the lot."""

    holds: list[StockHold]
    balances: list[StockBalance]
    backorders_filled: list[str]
    displaced: list[Displaced] = field(default_factory=list)


def _covers(hold_row: StockHold, balance: StockBalance) -> bool:
    return hold_row.warehouse_id is None or hold_row.warehouse_id == balance.warehouse_id


async def _active_holds(session: AsyncSession, sku: str, lot: str) -> list[StockHold]:
    rows = await session.scalars(
        sa.select(StockHold)
        .where(StockHold.sku == sku, StockHold.lot == lot, StockHold.released_at.is_(None))
        .order_by(StockHold.id)
    )
    return list(rows)


async def lot_status(session: AsyncSession, sku: str, lot: str) -> str:
    """The lot's status (`statuses.LotStatus`); a lot never given one is released."""
    found = await session.scalar(
        sa.select(StockLot.status).where(StockLot.sku == sku, StockLot.lot == lot)
    )
    return found or LotStatus.RELEASED


async def _blocked(session: AsyncSession, sku: str, lot: str, warehouse_id: str) -> bool:
    """The one rule: a balance is blocked while its lot is not released or a hold covers
    its warehouse."""
    if await lot_status(session, sku, lot) != LotStatus.RELEASED:
        return True
    found = await session.scalar(
        sa.select(StockHold.id)
        .where(
            StockHold.sku == sku,
            StockHold.lot == lot,
            StockHold.released_at.is_(None),
            sa.or_(StockHold.warehouse_id.is_(None), StockHold.warehouse_id == warehouse_id),
        )
        .limit(1)
    )
    return found is not None


async def hold(
    session: AsyncSession,
    *,
    sku: str,
    lot: str,
    warehouse_id: str | None,
    reason: str,
    actor: str,
    source: str,
) -> HoldOutcome:
    """Quarantine a lot in one warehouse or all: its stock becomes held, and stock of the
    lot arriving later is held too. Holding a held lot changes nothing.

    Quarantined goods must not ship, so reservations on the lot (not yet issued) move:
    they are released into the held quantity and backordered, and the backorders are
    filled at once from the SKU's other reservable lots (the order's own warehouses
    first); what no other lot covers stays backordered until stock arrives."""
    work = _work(session, source, "hold", actor)
    await _require_skus(session, [sku])
    if warehouse_id is not None:
        await _require_warehouse(session, warehouse_id)
    active = await _active_holds(session, sku, lot)
    covering = [h for h in active if h.warehouse_id in (None, warehouse_id)]
    balances = await _lock_balances(session, [sku], StockBalance.lot == lot)
    if not covering:
        record = StockHold(
            sku=sku,
            lot=lot,
            warehouse_id=warehouse_id,
            reason=reason,
            held_by=work.actor,
            created_at=_now(),
        )
        session.add(record)
        await session.flush()
        active.append(record)
        covered = [b for b in balances if _covers(record, b)]
        displaced = await _block(work, covered, reason, f"hold:{record.id}")
    else:
        displaced = []
    await work.emit()
    return HoldOutcome(active, balances, [], displaced)


async def _block(
    work: _Work, balances: list[StockBalance], reason: str, reference: str
) -> list[Displaced]:
    """Block the balances (one SKU and lot) not blocked yet: hold their free stock and
    move their reservations off them (`_displace`)."""
    for balance in balances:
        if balance.on_hold:
            continue
        balance.on_hold = True
        balance.updated_at = _now()
        if balance.available > 0:
            work.move(
                balance,
                "hold",
                balance.available,
                held=balance.available,
                note=reason,
                reference=reference,
            )
    return await _displace(work, balances, reason)


def _unblock(work: _Work, balances: list[StockBalance], reference: str) -> None:
    """Unblock the balances: their held stock becomes available (callers fill backorders)."""
    now = _now()
    for balance in balances:
        if not balance.on_hold:
            continue
        balance.on_hold = False
        balance.updated_at = now
        if balance.held:
            work.move(
                balance, "release_hold", -balance.held, held=-balance.held, reference=reference
            )


async def _displace(work: _Work, held: list[StockBalance], reason: str) -> list[Displaced]:
    """Move the reservations off quarantined balances (one SKU and lot); see `hold`."""
    held = [b for b in held if b.reserved > 0]
    if not held:
        return []
    session = work.session
    sku, lot = held[0].sku, held[0].lot
    by_warehouse = {b.warehouse_id: b for b in held}
    rows = await session.scalars(
        sa.select(StockAllocation)
        .where(
            StockAllocation.status == "reserved",
            StockAllocation.sku == sku,
            StockAllocation.lot == lot,
            StockAllocation.warehouse_id.in_(sorted(by_warehouse)),
        )
        .order_by(StockAllocation.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    now = _now()
    lost: dict[tuple[str, int], int] = defaultdict(int)
    for row in rows:
        work.move(
            by_warehouse[row.warehouse_id],
            "unreserve",
            -row.quantity,
            reserved=-row.quantity,
            held=row.quantity,
            order_id=row.order_id,
            note=f"quarantined: {reason}",
        )
        row.status = "released"
        row.updated_at = now
        lost[(row.order_id, row.line_no)] += row.quantity
    open_backorders = {
        (b.order_id, b.line_no): b for b in await _open_backorders(session, sku=sku, lock=True)
    }
    for (order_id, line_no), quantity in lost.items():
        backorder = open_backorders.get((order_id, line_no))
        _backorder_more(work, backorder, order_id, line_no, sku, quantity)
    await session.flush()
    await _fill(work, sku)
    short = {
        (b.order_id, b.line_no): b.quantity
        for b in await _open_backorders(session, sku=sku)
        if (b.order_id, b.line_no) in lost
    }
    return [
        Displaced(order_id, line_no, quantity, min(quantity, short.get((order_id, line_no), 0)))
        for (order_id, line_no), quantity in sorted(lost.items())
    ]


async def release_hold(
    session: AsyncSession,
    *,
    sku: str,
    lot: str,
    warehouse_id: str | None,
    actor: str,
    source: str,
) -> HoldOutcome:
    """Lift holds on a lot: all of them without `warehouse_id`, else that warehouse's (409
    `held_everywhere` while an all-warehouse hold stands). The freed stock becomes
    available and fills open backorders, unless the lot's status still blocks it.
    Releasing an unheld lot changes nothing."""
    work = _work(session, source, "release_hold", actor)
    await _require_skus(session, [sku])
    if warehouse_id is not None:
        await _require_warehouse(session, warehouse_id)
    active = await _active_holds(session, sku, lot)
    if warehouse_id is None:
        lifting = active
    else:
        if any(h.warehouse_id is None for h in active):
            raise Conflict(
                f"lot {lot} of {sku} is held in every warehouse; release it without warehouse_id",
                code="held_everywhere",
            )
        lifting = [h for h in active if h.warehouse_id == warehouse_id]
    now = _now()
    for record in lifting:
        record.released_at = now
        record.released_by = work.actor
    remaining = [h for h in active if h not in lifting]
    balances = await _lock_balances(session, [sku], StockBalance.lot == lot)
    if await lot_status(session, sku, lot) == LotStatus.RELEASED:
        freed = [b for b in balances if not any(_covers(h, b) for h in remaining)]
        _unblock(work, freed, f"hold:{','.join(str(h.id) for h in lifting)}"[:128])
    await session.flush()
    filled = [order_id for order_id, _ in await _fill(work, sku)] if lifting else []
    await work.emit()
    return HoldOutcome(remaining, balances, filled)


async def block_lot(
    session: AsyncSession, *, sku: str, lot: str, reason: str, actor: str, source: str
) -> HoldOutcome:
    """Block a lot in every warehouse (its status left `released`): see `_block`. The
    caller holds the SKU lock and has recorded the new status."""
    work = _work(session, source, "lot_status", actor)
    balances = await _lock_balances(session, [sku], StockBalance.lot == lot)
    displaced = await _block(work, balances, reason, f"lot:{lot}"[:128])
    await work.emit()
    return HoldOutcome(await _active_holds(session, sku, lot), balances, [], displaced)


async def unblock_lot(
    session: AsyncSession, *, sku: str, lot: str, actor: str, source: str
) -> HoldOutcome:
    """Unblock a lot released again, in the warehouses no active hold covers; the freed
    stock fills open backorders. The caller holds the SKU lock and has recorded the
    `released` status."""
    work = _work(session, source, "lot_status", actor)
    active = await _active_holds(session, sku, lot)
    balances = await _lock_balances(session, [sku], StockBalance.lot == lot)
    _unblock(
        work,
        [b for b in balances if not any(_covers(h, b) for h in active)],
        f"lot:{lot}"[:128],
    )
    await session.flush()
    filled = [order_id for order_id, _ in await _fill(work, sku)]
    await work.emit()
    return HoldOutcome(active, balances, filled)


@dataclass
class ReturnedLot:
    """A quantity of one lot coming back from a customer into one warehouse."""

    sku: str
    warehouse_id: str
    lot: str
    quantity: int


async def restock_return(
    session: AsyncSession, return_id: str, lots: Sequence[ReturnedLot], source: str
) -> list[StockMovement]:
    """Book returned goods back into their own SKU x warehouse x lot (movement kind
    `return`, the return id as reference): the lot keeps its expiry, stock of a blocked
    lot arrives held, and open backorders of the SKU are filled. Unknown SKUs and
    warehouses are a 422 (the event cannot be applied)."""
    if not lots:
        return []
    work = _work(session, source, "return")
    skus = {item.sku for item in lots}
    await _require_skus(session, skus)
    for warehouse_id in sorted({item.warehouse_id for item in lots}):
        await _require_warehouse(session, warehouse_id)
    balances = {
        (b.sku, b.warehouse_id, b.lot): b
        for b in await _lock_balances(
            session, skus, StockBalance.lot.in_(sorted({item.lot for item in lots}))
        )
    }
    moved = []
    for item in lots:
        balance = balances.get((item.sku, item.warehouse_id, item.lot))
        if balance is None:
            # The lot never lay in this warehouse: it keeps the expiry it has elsewhere.
            expiry = next(
                (b.expiry for (s, _, lt), b in balances.items() if (s, lt) == (item.sku, item.lot)),
                None,
            )
            now = _now()
            balance = StockBalance(
                sku=item.sku,
                warehouse_id=item.warehouse_id,
                lot=item.lot,
                expiry=expiry,
                on_hand=0,
                reserved=0,
                held=0,
                on_hold=await _blocked(session, item.sku, item.lot, item.warehouse_id),
                created_at=now,
                updated_at=now,
            )
            session.add(balance)
            balances[(item.sku, item.warehouse_id, item.lot)] = balance
        moved.append(
            work.move(
                balance,
                "return",
                item.quantity,
                on_hand=item.quantity,
                held=_freed_into(balance, item.quantity),
                reference=return_id,
            )
        )
    await session.flush()
    await _fill_each(work, skus)
    await work.emit()
    return moved


async def set_warehouse_active(
    session: AsyncSession, warehouse: Warehouse, active: bool, source: str
) -> list[str]:
    """(De)activate a warehouse; reactivated stock fills open backorders (orders filled)."""
    if warehouse.active == active:
        return []
    warehouse.active = active
    warehouse.updated_at = _now()
    await session.flush()
    if not active:
        return []
    work = _work(session, source, "warehouse_activated")
    skus = await session.scalars(
        sa.select(StockBalance.sku).where(StockBalance.warehouse_id == warehouse.id).distinct()
    )
    filled = await _fill_each(work, skus)
    await work.emit()
    return filled
