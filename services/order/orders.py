"""Order rules: the guarded lifecycle and the timeline that explains it.

placed ──► credit_hold ──► placed (released)
  │
  ├──► confirmed ──► shipping ──► completed
  ├──► backordered ──► confirmed
  └──► cancelled  (from any state before completed)
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.common import telemetry
from services.common.problems import Conflict, Unprocessable
from services.order.models import Order, TimelineEntry

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


def encode_cursor(created_at: datetime, order_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{order_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode()).decode()
        at, order_id = raw.split("|", 1)
        return datetime.fromisoformat(at), order_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unprocessable("cursor is not one this API returned", code="invalid_cursor") from exc
