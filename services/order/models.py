"""Order service tables."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, Numeric, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from services.common.tables import BigId, UtcDateTime


class Base(DeclarativeBase):
    pass


class Ping(Base):
    """A diagnostics round trip: HTTP -> outbox -> NATS -> bridge -> Temporal -> HTTP."""

    __tablename__ = "pings"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    message: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(128))
    trace_id: Mapped[str | None] = mapped_column(String(32))
    workflow_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Order(Base):
    """A customer's order; its lifecycle is driven by the order-to-delivery workflow."""

    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(24), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    ship_to: Mapped[dict[str, Any]] = mapped_column(JSON)
    placed_by: Mapped[str] = mapped_column(String(128))
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(String(32))
    # When a coordinator released a credit hold: the order is not held for credit again.
    credit_released_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # A free replacement for a return's goods (one per return).
    replacement_for_return_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())

    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", order_by="OrderLine.line_no", lazy="selectin"
    )


class OrderLine(Base):
    __tablename__ = "order_lines"

    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Numeric(14, 2))

    order: Mapped[Order] = relationship(back_populates="lines")


class TimelineEntry(Base):
    """What happened to an order, in order: the story `GET /orders/{id}/status` tells."""

    __tablename__ = "order_timeline"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(36), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    kind: Mapped[str] = mapped_column(String(48))
    detail: Mapped[str] = mapped_column(Text)
    trace_id: Mapped[str | None] = mapped_column(String(32))


class ShipmentView(Base):
    """The order service's copy of a shipment, following the shipment service's status."""

    __tablename__ = "shipment_views"

    shipment_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(36), index=True)
    warehouse_id: Mapped[str] = mapped_column(String(64))
    carrier: Mapped[str] = mapped_column(String(64))
    service_level: Mapped[str] = mapped_column(String(32))
    tracking_number: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    # The shipment service's revision of `status`: only a higher one replaces it.
    revision: Mapped[int] = mapped_column(Integer)
    promised_date: Mapped[str] = mapped_column(String(32))
    eta: Mapped[str | None] = mapped_column(String(40))
    lots: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # The carrier's time of the delivery scan, once the status is `delivered`.
    delivered_at: Mapped[str | None] = mapped_column(String(40))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ShipmentViewEvent(Base):
    __tablename__ = "shipment_view_events"

    shipment_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    status: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[str] = mapped_column(String(40))
    location: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)


class CoordinatorTask(Base):
    """Something a coordinator must look at: a credit hold, a carrier exception."""

    __tablename__ = "coordinator_tasks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(36), index=True)
    key: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    resolution: Mapped[str | None] = mapped_column(Text)
