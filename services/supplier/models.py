"""Supplier service tables (migrations 0002 and 0003).

Master data (`suppliers`, `supplier_items`, `replenishment_policies`), the read models
kept from ORDER events (`stock_positions`, `demand_daily`), what the service decides
(`replenishment_signals` with their history, `purchase_orders` with their history and
receipts, `vendor_returns`) and the webhook queue (`webhook_deliveries`).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, Boolean, Date, Float, Integer, Numeric, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.tables import UtcDateTime

# The one open signal per SKU x warehouse x supplier (`signals.py`).
OPEN_SIGNAL = text("status = 'open'")


class Base(DeclarativeBase):
    pass


class Supplier(Base):
    """A supplier; its id goes into NATS subjects (`supplier.<id>.signals`)."""

    __tablename__ = "suppliers"
    __table_args__ = (sa.Index("ix_suppliers_created", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    contacts: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    # Signs webhook bodies (HMAC-SHA256); shown once, when made or rotated.
    webhook_secret: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SupplierItem(Base):
    """What one supplier sells of one SKU, on what terms, from when to when."""

    __tablename__ = "supplier_items"
    __table_args__ = (
        sa.UniqueConstraint("supplier_id", "sku", "effective_from", name="uq_supplier_items_term"),
        sa.Index("ix_supplier_items_sku", "sku", "priority"),
        sa.Index("ix_supplier_items_supplier", "supplier_id", "created_at", "id"),
        sa.CheckConstraint("moq >= 1", name="ck_supplier_items_moq"),
        sa.CheckConstraint("pack_multiple >= 1", name="ck_supplier_items_pack"),
        sa.CheckConstraint("lead_time_days >= 0", name="ck_supplier_items_lead"),
        sa.CheckConstraint(
            "effective_to IS NULL OR effective_to >= effective_from",
            name="ck_supplier_items_dates",
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    supplier_id: Mapped[str] = mapped_column(
        String(64), sa.ForeignKey("suppliers.id", ondelete="CASCADE")
    )
    sku: Mapped[str] = mapped_column(String(64))
    supplier_part_number: Mapped[str | None] = mapped_column(String(64))
    unit_cost: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    lead_time_days: Mapped[int] = mapped_column(Integer)
    # Observed variability of the lead time; starts from the declared value.
    lead_time_sd_days: Mapped[float] = mapped_column(Float)
    moq: Mapped[int] = mapped_column(Integer)
    pack_multiple: Mapped[int] = mapped_column(Integer)
    effective_from: Mapped[date] = mapped_column(Date)
    effective_to: Mapped[date | None] = mapped_column(Date)
    priority: Mapped[int] = mapped_column(Integer)  # lower wins
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ReplenishmentPolicy(Base):
    """How one SKU is replenished in one warehouse."""

    __tablename__ = "replenishment_policies"
    __table_args__ = (
        sa.Index("ix_replenishment_policies_mode", "review_mode"),
        sa.CheckConstraint(
            "max_qty IS NULL OR min_qty IS NULL OR max_qty >= min_qty",
            name="ck_replenishment_policies_bounds",
        ),
    )

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    warehouse_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    review_mode: Mapped[str] = mapped_column(String(16))  # policies.ReviewMode
    service_level: Mapped[float] = mapped_column(Float)
    min_qty: Mapped[int | None] = mapped_column(Integer)
    max_qty: Mapped[int | None] = mapped_column(Integer)
    horizon_days: Mapped[int] = mapped_column(Integer)
    review_period_days: Mapped[int | None] = mapped_column(Integer)
    order_cost: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    holding_rate: Mapped[float] = mapped_column(Float)
    auto_approve_limit: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    ack_timeout_hours: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class StockPosition(Base):
    """The latest `InventoryChanged` of one SKU x warehouse. `backordered` is the SKU's
    open backorders in every warehouse as that event said; `observed_at` (the event's
    time) tells which of the SKU's rows said it last."""

    __tablename__ = "stock_positions"

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    warehouse_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    on_hand: Mapped[int] = mapped_column(Integer)
    reserved: Mapped[int] = mapped_column(Integer)
    held: Mapped[int] = mapped_column(Integer)
    available: Mapped[int] = mapped_column(Integer)
    backordered: Mapped[int] = mapped_column(Integer)
    observed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class DemandDaily(Base):
    """Units confirmed (reserved for orders) per SKU x warehouse and UTC day."""

    __tablename__ = "demand_daily"

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    warehouse_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)


class DemandOrder(Base):
    """What one order's events have counted as demand per SKU x warehouse: an order's
    `OrderBackorderFilled` carries what was filled and its later `OrderConfirmed` every
    reservation, so only the growth over this is new demand."""

    __tablename__ = "demand_orders"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    warehouse_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)


class PurchaseOrder(Base):
    """A purchase order to a supplier (lifecycle: `purchase_orders.py`); what open ones
    still lack is on order in the inventory position. `revision` counts its events."""

    __tablename__ = "purchase_orders"
    __table_args__ = (
        sa.Index("ix_purchase_orders_pair", "sku", "warehouse_id", "status"),
        sa.Index("ix_purchase_orders_supplier", "supplier_id", "created_at", "id"),
        sa.Index("ix_purchase_orders_created", "created_at", "id"),
        sa.CheckConstraint("quantity > 0", name="ck_purchase_orders_quantity"),
        sa.CheckConstraint("quantity_received >= 0", name="ck_purchase_orders_received"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    supplier_id: Mapped[str] = mapped_column(String(64))
    signal_id: Mapped[str | None] = mapped_column(String(36))
    sku: Mapped[str] = mapped_column(String(64))
    warehouse_id: Mapped[str] = mapped_column(String(32))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_cost: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(24))  # statuses.PurchaseOrderStatus
    quantity_received: Mapped[int] = mapped_column(Integer)
    need_by: Mapped[date | None] = mapped_column(Date, default=None)
    ordered_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    approved_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    approved_by: Mapped[str | None] = mapped_column(String(128), default=None)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    quantity_acknowledged: Mapped[int | None] = mapped_column(Integer, default=None)
    promised_date: Mapped[date | None] = mapped_column(Date, default=None)
    ack_note: Mapped[str | None] = mapped_column(Text, default=None)
    shipped_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    expected_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    asn_lots: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
    received_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    shortfall: Mapped[int | None] = mapped_column(Integer, default=None)
    # At close: received by the promised date (or need-by when never acknowledged).
    on_time: Mapped[bool | None] = mapped_column(Boolean, default=None)
    cancel_reason: Mapped[str | None] = mapped_column(Text, default=None)
    attention: Mapped[str | None] = mapped_column(String(64), default=None)
    attention_detail: Mapped[str | None] = mapped_column(Text, default=None)
    ack_timeout_hours: Mapped[int] = mapped_column(Integer, default=48)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    # Units the order service reported booked into stock (InventoryChanged.receipts).
    quantity_booked: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class PurchaseOrderHistory(Base):
    """One entry of a purchase order's timeline."""

    __tablename__ = "po_history"
    __table_args__ = (sa.Index("ix_po_history_po", "po_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    po_id: Mapped[str] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(24))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    by: Mapped[str] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)


class PurchaseOrderReceipt(Base):
    """One lot of one receipt against a PO (`receipt_id` groups a receipt's lots); it
    tells which supplier delivered a lot when its goods go back (vendor returns)."""

    __tablename__ = "po_receipts"
    __table_args__ = (
        sa.Index("ix_po_receipts_po", "po_id", "id"),
        sa.Index("ix_po_receipts_lot", "sku", "lot"),
        sa.CheckConstraint("quantity > 0", name="ck_po_receipts_quantity"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    receipt_id: Mapped[str] = mapped_column(String(36))
    po_id: Mapped[str] = mapped_column(String(36))
    supplier_id: Mapped[str] = mapped_column(String(64))
    sku: Mapped[str] = mapped_column(String(64))
    warehouse_id: Mapped[str] = mapped_column(String(32))
    lot: Mapped[str] = mapped_column(String(64))
    expiry: Mapped[date | None] = mapped_column(Date)
    quantity: Mapped[int] = mapped_column(Integer)
    complete: Mapped[bool] = mapped_column(Boolean)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    received_by: Mapped[str] = mapped_column(String(128))


class VendorReturn(Base):
    """Returned goods of one lot going back to the supplier that delivered it (None: no
    receipt knows the lot), with the credit claimed."""

    __tablename__ = "vendor_returns"
    __table_args__ = (sa.Index("ix_vendor_returns_supplier", "supplier_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    supplier_id: Mapped[str | None] = mapped_column(String(64))
    po_id: Mapped[str | None] = mapped_column(String(36))
    return_id: Mapped[str] = mapped_column(String(64))
    sku: Mapped[str] = mapped_column(String(64))
    warehouse_id: Mapped[str] = mapped_column(String(32))
    lot: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_cost: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    credit_amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ReplenishmentSignal(Base):
    """A proposal to replenish one SKU x warehouse from one supplier, with the numbers it
    was decided on. At most one is open per SKU x warehouse x supplier (partial unique
    index), so concurrent evaluations can never raise two."""

    __tablename__ = "replenishment_signals"
    __table_args__ = (
        sa.Index(
            "uq_replenishment_signals_open",
            "sku",
            "warehouse_id",
            "supplier_id",
            unique=True,
            sqlite_where=OPEN_SIGNAL,
            postgresql_where=OPEN_SIGNAL,
        ),
        sa.Index("ix_replenishment_signals_supplier", "supplier_id", "created_at", "id"),
        sa.Index("ix_replenishment_signals_created", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    supplier_id: Mapped[str] = mapped_column(String(64))
    supplier_item_id: Mapped[str] = mapped_column(String(36))
    sku: Mapped[str] = mapped_column(String(64))
    warehouse_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # statuses.SignalStatus
    origin: Mapped[str] = mapped_column(String(16))  # statuses.SignalOrigin
    review_mode: Mapped[str] = mapped_column(String(16))
    on_hand: Mapped[int] = mapped_column(Integer)
    reserved: Mapped[int] = mapped_column(Integer)
    held: Mapped[int] = mapped_column(Integer)
    backordered: Mapped[int] = mapped_column(Integer)  # this pair's share
    on_order: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)
    forecast_method: Mapped[str] = mapped_column(String(32))
    forecast_daily_mean: Mapped[float] = mapped_column(Float)
    forecast_daily_sigma: Mapped[float] = mapped_column(Float)
    safety_stock: Mapped[int] = mapped_column(Integer)
    reorder_point: Mapped[int] = mapped_column(Integer)
    target: Mapped[int] = mapped_column(Integer)
    eoq: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(Integer)
    need_by: Mapped[date] = mapped_column(Date)
    lead_time_days: Mapped[int] = mapped_column(Integer)
    unit_cost: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    raised_by: Mapped[str] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class SignalHistory(Base):
    """One entry of a signal's timeline."""

    __tablename__ = "signal_history"
    __table_args__ = (sa.Index("ix_signal_history_signal", "signal_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    signal_id: Mapped[str] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    by: Mapped[str] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)


class WebhookDelivery(Base):
    """One signal to post to its supplier's webhook, and how that went."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        sa.Index("ix_webhook_deliveries_supplier", "supplier_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    signal_id: Mapped[str] = mapped_column(String(36))
    supplier_id: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(36))  # `Waybill-Event-Id`
    url: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # webhooks.DeliveryStatus
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
