"""Order rules: the guarded lifecycle and the timeline that explains it.

placed ──► credit_hold ──► placed (released)
  │
  ├──► confirmed ──► shipping ──► completed
  ├──► backordered ──► confirmed
  └──► cancelled  (from any state before completed)
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import telemetry
from services.common.problems import Conflict
from services.order.models import CoordinatorTask, Order, TimelineEntry

TRANSITIONS: dict[str, frozenset[str]] = {
    "placed": frozenset({"credit_hold", "confirmed", "backordered", "cancelled"}),
    "credit_hold": frozenset({"placed", "cancelled"}),
    "backordered": frozenset({"confirmed", "cancelled"}),
    "confirmed": frozenset({"backordered", "shipping", "cancelled"}),
    "shipping": frozenset({"completed", "cancelled"}),
    "completed": frozenset(),
    "cancelled": frozenset(),
}
OPEN = frozenset(TRANSITIONS) - {"completed", "cancelled"}


def transition(order: Order, to: str) -> bool:
    """Move `order` to `to`; False when it is already there; 409 when not allowed."""
    if order.status == to:
        return False
    if to not in TRANSITIONS[order.status]:
        raise Conflict(
            f"order {order.id} is {order.status}; it cannot become {to}",
            code="invalid_transition",
        )
    order.status = to
    order.updated_at = datetime.now(UTC)
    return True


def note(session: AsyncSession, order_id: str, kind: str, detail: str) -> None:
    """Append a timeline entry, stamped with the current trace id."""
    session.add(
        TimelineEntry(
            order_id=order_id,
            at=datetime.now(UTC),
            kind=kind,
            detail=detail,
            trace_id=telemetry.current_trace_id(),
        )
    )


def open_task(
    session: AsyncSession, order_id: str, kind: str, detail: str, key: str | None = None
) -> None:
    """Ask a coordinator to look at the order (and say so on its timeline)."""
    session.add(
        CoordinatorTask(
            id=str(uuid.uuid4()),
            order_id=order_id,
            key=key,
            kind=kind,
            detail=detail,
            status="open",
            created_at=datetime.now(UTC),
        )
    )
    note(session, order_id, "coordinator_task", f"{kind}: {detail}")


async def close_tasks(
    session: AsyncSession, order_id: str, by: str, resolution: str, kind: str | None = None
) -> None:
    """Resolve the order's open tasks (of one kind) that the order's progress settled."""
    query = sa.update(CoordinatorTask).where(
        CoordinatorTask.order_id == order_id, CoordinatorTask.status == "open"
    )
    if kind is not None:
        query = query.where(CoordinatorTask.kind == kind)
    await session.execute(
        query.values(
            status="resolved", resolved_at=datetime.now(UTC), resolved_by=by, resolution=resolution
        )
    )
