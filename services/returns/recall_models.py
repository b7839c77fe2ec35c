"""Recall tables: campaigns, their consignees and the shipped lines traced to them.

A consignee is one customer's order that received a recalled lot: the unit a recall
return (a `returns` row of kind `recall`) covers. `recall_shipments` keeps every traced
shipment line and lot once (its primary key), which makes a re-run trace page harmless.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.common.tables import UtcDateTime
from services.returns.models import Base


class Recall(Base):
    """One recall campaign of lots of one SKU."""

    __tablename__ = "recalls"
    __table_args__ = (sa.Index("ix_recalls_created", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    lots: Mapped[list[str]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text)
    instructions: Mapped[str] = mapped_column(Text)
    hazard_class: Mapped[str] = mapped_column(String(3))
    depth: Mapped[str] = mapped_column(String(1))
    effectiveness_target: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    status: Mapped[str] = mapped_column(String(16))  # statuses.RecallStatus
    opened_by: Mapped[str] = mapped_column(String(128))
    attention: Mapped[str | None] = mapped_column(Text)  # why the workflow stopped, if it did
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the last stored report
    report_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    fanned_out_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    closed_by: Mapped[str | None] = mapped_column(String(128))
    close_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class RecallConsignee(Base):
    """One customer's order that received recalled goods, and how it answered."""

    __tablename__ = "recall_consignees"
    __table_args__ = (
        sa.Index("ix_recall_consignees_notice_event", "notice_event_id"),
        sa.UniqueConstraint("return_id", name="uq_recall_consignees_return"),
    )

    recall_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    return_id: Mapped[str] = mapped_column(String(36))
    shipment_id: Mapped[str] = mapped_column(String(36))  # the first one traced
    quantity_shipped: Mapped[int] = mapped_column(Integer)
    notice_event_id: Mapped[str | None] = mapped_column(String(36))
    notice_issued_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    notified_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # from NoticeSent
    notice_method: Mapped[str | None] = mapped_column(String(32))
    responded_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    responded_by: Mapped[str | None] = mapped_column(String(128))
    action: Mapped[str | None] = mapped_column(String(16))  # recalls.Action
    quantity_on_hand: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class RecallShipment(Base):
    """A shipped quantity of one order line from one recalled lot, traced once."""

    __tablename__ = "recall_shipments"

    recall_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    shipment_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    lot: Mapped[str] = mapped_column(String(64), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[str] = mapped_column(String(64))
    warehouse_id: Mapped[str] = mapped_column(String(32))
    quantity: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
