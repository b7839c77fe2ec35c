"""RMA tables (migration 0003): return policies, the delivered-lines read model, refunds
and each return's history. The shared `returns` tables are in `models.py`."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, Boolean, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.common.tables import UtcDateTime
from services.returns.models import Base


class ReturnPolicy(Base):
    """The return rules of one product category (`category` None: the default policy)."""

    __tablename__ = "return_policies"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(64), unique=True)
    window_days: Mapped[int] = mapped_column(Integer)
    allowed_reasons: Mapped[list[str]] = mapped_column(JSON)
    required_condition: Mapped[str | None] = mapped_column(String(32))
    restocking_fee_kind: Mapped[str] = mapped_column(String(8))  # none, fixed, percent
    restocking_fee_value: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    return_shipping_paid_by: Mapped[str] = mapped_column(String(16))  # merchant, customer
    keep_it_threshold: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    receipt_timeout_days: Mapped[int] = mapped_column(Integer)
    auto_authorize: Mapped[bool] = mapped_column(Boolean)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class DeliveredOrder(Base):
    """An order as `OrderPlaced` told it (a row without `placed` exists when a shipment
    event came first)."""

    __tablename__ = "delivered_orders"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str | None] = mapped_column(String(64))
    currency: Mapped[str | None] = mapped_column(String(3))
    placed: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class DeliveredLine(Base):
    """One order line: what was ordered and paid, and its category."""

    __tablename__ = "delivered_lines"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    category: Mapped[str | None] = mapped_column(String(64))


class DeliveredShipment(Base):
    """One outbound shipment of an order: its lots per line, whether it was delivered,
    and whether it never reached the customer (returned to sender, cancelled)."""

    __tablename__ = "delivered_shipments"
    __table_args__ = (sa.Index("ix_delivered_shipments_order", "order_id"),)

    shipment_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64))
    warehouse_id: Mapped[str | None] = mapped_column(String(32))
    lots: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)  # None: not created yet
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    undelivered: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Refund(Base):
    """The credit record of one return (one per return), for billing."""

    __tablename__ = "refunds"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    return_id: Mapped[str] = mapped_column(String(36), unique=True)
    order_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    restocking_fee: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ReturnHistory(Base):
    """One entry of a return's timeline; `internal` notes are hidden from customers."""

    __tablename__ = "return_history"
    __table_args__ = (sa.Index("ix_return_history_return", "return_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    return_id: Mapped[str] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(24))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    by: Mapped[str] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
