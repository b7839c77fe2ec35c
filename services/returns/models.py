"""Returns service tables.

`returns`, `return_lines` and `return_lots` are shared by the RMA (`returns.py`) and the
recall (`recalls.py`) modules: a recall return is a return of kind `recall`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy import Boolean, ForeignKey, Integer, Numeric, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.tables import UtcDateTime


class Base(DeclarativeBase):
    pass


class Return(Base):
    """One return authorization (RMA) for lines of one order."""

    __tablename__ = "returns"
    __table_args__ = (
        sa.Index("ix_returns_customer_created", "customer_id", "created_at", "id"),
        sa.Index("ix_returns_order", "order_id"),
        sa.Index("ix_returns_status", "status"),
        sa.Index("ix_returns_recall", "recall_id"),
        sa.Index("ix_returns_created", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # statuses.ReturnKind
    recall_id: Mapped[str | None] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(24))  # statuses.ReturnStatus
    reason: Mapped[str] = mapped_column(String(32))  # a code of the reason hierarchy
    reason_detail: Mapped[str | None] = mapped_column(Text)
    condition: Mapped[str | None] = mapped_column(String(32))  # as the customer declared it
    requested_resolution: Mapped[str | None] = mapped_column(String(24))  # statuses.Resolution
    resolution: Mapped[str | None] = mapped_column(String(24))
    keep_it: Mapped[bool] = mapped_column(Boolean, default=False)  # no physical return
    policy_id: Mapped[str | None] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    refund_total: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    restocking_fee: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    warehouse_id: Mapped[str | None] = mapped_column(String(32))  # where the goods come back
    return_shipment_id: Mapped[str | None] = mapped_column(String(36))
    carrier: Mapped[str | None] = mapped_column(String(32))
    tracking_number: Mapped[str | None] = mapped_column(String(64))
    label_url: Mapped[str | None] = mapped_column(Text)
    receipt_deadline: Mapped[datetime | None] = mapped_column(UtcDateTime())
    replacement_order_id: Mapped[str | None] = mapped_column(String(64))
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decision_note: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(128))
    # Counts the events stating the return's status, as the shipment service's revision.
    revision: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Added by the RMA (migration 0003); nullable, so recall inserts need not name them.
    arrived_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # parcel at warehouse
    disposed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # ReturnDisposed staged
    policy_decision: Mapped[str | None] = mapped_column(String(16))  # authorize/reject/review
    policy_reason: Mapped[str | None] = mapped_column(Text)
    attention: Mapped[str | None] = mapped_column(String(64))  # a step failed for good
    attention_detail: Mapped[str | None] = mapped_column(Text)


class ReturnLine(Base):
    """A quantity of one order line in a return, and what is refunded for it."""

    __tablename__ = "return_lines"

    return_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("returns.id", ondelete="CASCADE"), primary_key=True
    )
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)  # the order's line
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    received_good: Mapped[int] = mapped_column(Integer, default=0)
    received_damaged: Mapped[int] = mapped_column(Integer, default=0)
    refund_amount: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))


class ReturnLot(Base):
    """What is expected, received and disposed of one return line from one lot."""

    __tablename__ = "return_lots"
    __table_args__ = (sa.Index("ix_return_lots_sku_lot", "sku", "lot"),)

    return_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("returns.id", ondelete="CASCADE"), primary_key=True
    )
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    lot: Mapped[str] = mapped_column(String(64), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    warehouse_id: Mapped[str] = mapped_column(String(32))  # it was shipped from
    expected: Mapped[int] = mapped_column(Integer)
    good: Mapped[int] = mapped_column(Integer, default=0)
    damaged: Mapped[int] = mapped_column(Integer, default=0)
    disposition: Mapped[str | None] = mapped_column(String(24))  # statuses.Disposition
    disposition_reason: Mapped[str | None] = mapped_column(Text)
