"""Shipment service tables: shipments, their lines, picked lots, packages and tracking."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, Boolean, Date, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from services.common.tables import BigId, UtcDateTime

ACTIVE_OUTBOUND = sa.text("status != 'cancelled' AND direction = 'outbound'")
ACTIVE_RETURN = sa.text("status != 'cancelled' AND direction = 'return'")

OUTBOUND = "outbound"
RETURN = "return"


class Base(DeclarativeBase):
    pass


class Shipment(Base):
    """What one warehouse sends for one order, with one carrier and tracking number.

    A return shipment (`direction` "return", `return_id` set) is a row of the same
    table, so scans, the webhook, the simulator and revisions serve both: it carries
    goods of one return from the customer back to `warehouse_id`, and its `ship_to_*`
    columns hold the address the parcel is collected from (the outbound ship-to).
    """

    __tablename__ = "shipments"
    __table_args__ = (
        # At most one live outbound shipment per (order, warehouse); cancelled ones may
        # be replaced. Return shipments: at most one live one per return.
        sa.Index(
            "uq_shipments_order_warehouse_active",
            "order_id",
            "warehouse_id",
            unique=True,
            sqlite_where=ACTIVE_OUTBOUND,
            postgresql_where=ACTIVE_OUTBOUND,
        ),
        sa.Index(
            "uq_shipments_return_active",
            "return_id",
            unique=True,
            sqlite_where=ACTIVE_RETURN,
            postgresql_where=ACTIVE_RETURN,
        ),
        sa.Index("ix_shipments_customer_created", "customer_id", "created_at"),
        sa.Index("ix_shipments_created", "created_at", "id"),
        sa.Index("ix_shipments_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64), index=True)
    direction: Mapped[str] = mapped_column(String(16), default=OUTBOUND)
    return_id: Mapped[str | None] = mapped_column(String(36))
    customer_id: Mapped[str] = mapped_column(String(64))
    warehouse_id: Mapped[str] = mapped_column(String(64))
    carrier: Mapped[str] = mapped_column(String(32))
    service_level: Mapped[str] = mapped_column(String(16))
    tracking_number: Mapped[str] = mapped_column(String(64), unique=True)
    label_url: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32))
    promised_date: Mapped[date] = mapped_column(Date())
    eta: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ship_to_name: Mapped[str] = mapped_column(String(200))
    ship_to_line1: Mapped[str] = mapped_column(String(200))
    ship_to_line2: Mapped[str | None] = mapped_column(String(200))
    ship_to_city: Mapped[str] = mapped_column(String(120))
    ship_to_region: Mapped[str | None] = mapped_column(String(120))
    ship_to_postal_code: Mapped[str | None] = mapped_column(String(20))
    ship_to_country: Mapped[str] = mapped_column(String(2))
    simulation_scenario: Mapped[str | None] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    dispatched_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    returned_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    last_event_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # How many events stating this shipment's status it has published (see domain.py).
    revision: Mapped[int] = mapped_column(Integer, default=0)
    # Each milestone event is published at most once per shipment.
    exception_notified: Mapped[bool] = mapped_column(Boolean, default=False)
    delivered_notified: Mapped[bool] = mapped_column(Boolean, default=False)
    returned_notified: Mapped[bool] = mapped_column(Boolean, default=False)

    lines: Mapped[list[ShipmentLine]] = relationship(
        lazy="selectin", order_by="ShipmentLine.line_no", cascade="all, delete-orphan"
    )
    packages: Mapped[list[ShipmentPackage]] = relationship(
        lazy="selectin", order_by="ShipmentPackage.number", cascade="all, delete-orphan"
    )


class ShipmentLine(Base):
    """An order line (or the part of it) this shipment carries."""

    __tablename__ = "shipment_lines"

    shipment_id: Mapped[str] = mapped_column(
        ForeignKey("shipments.id", ondelete="CASCADE"), primary_key=True
    )
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_weight_grams: Mapped[int] = mapped_column(Integer)

    lots: Mapped[list[ShipmentLineLot]] = relationship(
        lazy="selectin", order_by="ShipmentLineLot.lot", cascade="all, delete-orphan"
    )


class ShipmentLineLot(Base):
    """The quantity of a line picked from one lot (what a recall traces)."""

    __tablename__ = "shipment_line_lots"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["shipment_id", "line_no"],
            ["shipment_lines.shipment_id", "shipment_lines.line_no"],
            ondelete="CASCADE",
        ),
        sa.Index("ix_shipment_line_lots_sku_lot", "sku", "lot"),
    )

    shipment_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    lot: Mapped[str] = mapped_column(String(64), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)


class ShipmentPackage(Base):
    """One parcel: its weight and which line quantities it holds."""

    __tablename__ = "shipment_packages"

    shipment_id: Mapped[str] = mapped_column(
        ForeignKey("shipments.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    weight_grams: Mapped[int] = mapped_column(Integer)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


class TrackingEvent(Base):
    """Every accepted carrier scan, in arrival order (`id`); history sorts by occurred_at."""

    __tablename__ = "tracking_events"
    __table_args__ = (
        sa.UniqueConstraint("shipment_id", "dedupe_key", name="uq_tracking_events_dedupe"),
        sa.Index("ix_tracking_events_shipment_occurred", "shipment_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    shipment_id: Mapped[str] = mapped_column(ForeignKey("shipments.id", ondelete="CASCADE"))
    carrier_event_id: Mapped[str | None] = mapped_column(String(128))
    dedupe_key: Mapped[str] = mapped_column(String(255))
    raw_code: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    delayed: Mapped[bool] = mapped_column(Boolean, default=False)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    city: Mapped[str | None] = mapped_column(String(120))
    region: Mapped[str | None] = mapped_column(String(120))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    country: Mapped[str | None] = mapped_column(String(2))
    description: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(16))
    status_after: Mapped[str] = mapped_column(String(32))


class SimulatedEvent(Base):
    """A scan the simulated carrier has planned; the feeder pushes it once it is due."""

    __tablename__ = "simulated_events"
    __table_args__ = (
        sa.UniqueConstraint("shipment_id", "seq", name="uq_simulated_events_seq"),
        sa.Index("ix_simulated_events_due", "delivered", "cancelled", "due_at"),
    )

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    shipment_id: Mapped[str] = mapped_column(ForeignKey("shipments.id", ondelete="CASCADE"))
    tracking_number: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    raw_code: Mapped[str] = mapped_column(String(32))
    offset_hours: Mapped[float] = mapped_column(Float)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    city: Mapped[str] = mapped_column(String(120))
    region: Mapped[str | None] = mapped_column(String(120))
    country: Mapped[str] = mapped_column(String(2))
    description: Mapped[str] = mapped_column(Text)
    delivered: Mapped[bool] = mapped_column(Boolean, default=False)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
