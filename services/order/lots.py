"""Lot status: `released`, `on_hold`, `quarantined`, `recalled` (`statuses.LotStatus`).

Only released stock is reserved or picked. A lot leaving `released` is blocked in every
warehouse (`stock.block_lot`: free stock held, open reservations moved to other lots or
backordered); a lot coming back to `released` is unblocked wherever no hold covers it
(`stock.unblock_lot`). Moves between the blocked statuses change the record only. Every
change is a history row and a `LotStatusChanged` event, in the caller's transaction;
setting the status a lot already has changes nothing. Any status may follow any other:
a recall can be withdrawn, a quarantine cleared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import events as ev
from services.common.outbox import stage
from services.common.problems import NotFound
from services.common.statuses import LotStatus
from services.order import stock
from services.order.stock_models import StockBalance, StockLot, StockLotChange


@dataclass
class LotState:
    """A lot as the lot routes answer it: status, balances, history, what a change moved."""

    sku: str
    lot: str
    status: LotStatus
    balances: list[StockBalance]
    history: list[StockLotChange]
    displaced: list[stock.Displaced] = field(default_factory=list)
    changed: bool = False


def lot_subject(sku: str, lot: str) -> str:
    """The CloudEvents subject of a LotStatusChanged event."""
    return f"{sku}/{lot}"


async def _balances(session: AsyncSession, sku: str, lot: str) -> list[StockBalance]:
    rows = await session.scalars(
        sa.select(StockBalance)
        .where(StockBalance.sku == sku, StockBalance.lot == lot)
        .order_by(StockBalance.warehouse_id)
    )
    return list(rows)


async def _history(session: AsyncSession, sku: str, lot: str) -> list[StockLotChange]:
    rows = await session.scalars(
        sa.select(StockLotChange)
        .where(StockLotChange.sku == sku, StockLotChange.lot == lot)
        .order_by(StockLotChange.id)
    )
    return list(rows)


async def read(session: AsyncSession, sku: str, lot: str) -> LotState:
    """The lot's status, balances and history; 404 when the SKU never had it."""
    record = await session.get(StockLot, (sku, lot))
    balances = await _balances(session, sku, lot)
    if record is None and not balances:
        raise NotFound(f"lot {lot} of {sku} not found")
    status = LotStatus(record.status) if record else LotStatus.RELEASED
    return LotState(sku, lot, status, balances, await _history(session, sku, lot))


async def set_status(
    session: AsyncSession,
    *,
    sku: str,
    lot: str,
    status: LotStatus,
    reason: str,
    recall_id: str | None,
    actor: str,
    source: str,
) -> LotState:
    """Give the lot `status` (404 for an unknown SKU); see the module docstring. A lot
    with no stock yet may be given a status: stock received later follows it."""
    if await stock.lock_sku(session, sku) is None:
        raise NotFound(f"SKU {sku} not found")
    record = await session.get(StockLot, (sku, lot), populate_existing=True)
    previous = LotStatus(record.status) if record else LotStatus.RELEASED
    if previous == status:
        state = LotState(
            sku, lot, status, await _balances(session, sku, lot), await _history(session, sku, lot)
        )
        return state
    now = datetime.now(UTC)
    if record is None:
        record = StockLot(sku=sku, lot=lot)
        session.add(record)
    record.status = status
    record.reason = reason
    record.recall_id = recall_id
    record.changed_by = actor
    record.updated_at = now
    session.add(
        StockLotChange(
            sku=sku,
            lot=lot,
            previous=previous,
            status=status,
            reason=reason,
            recall_id=recall_id,
            changed_by=actor,
            changed_at=now,
        )
    )
    await session.flush()
    displaced: list[stock.Displaced] = []
    if previous == LotStatus.RELEASED:
        outcome = await stock.block_lot(
            session, sku=sku, lot=lot, reason=f"{status}: {reason}", actor=actor, source=source
        )
        displaced = outcome.displaced
    elif status == LotStatus.RELEASED:
        await stock.unblock_lot(session, sku=sku, lot=lot, actor=actor, source=source)
    await stage(
        session,
        source,
        ev.LotStatusChanged(
            sku=sku,
            lot=lot,
            status=status,
            previous=previous,
            reason=reason,
            changed_by=actor,
            recall_id=recall_id,
        ),
        subject=lot_subject(sku, lot),
    )
    return LotState(
        sku,
        lot,
        status,
        await _balances(session, sku, lot),
        await _history(session, sku, lot),
        displaced,
        changed=True,
    )
