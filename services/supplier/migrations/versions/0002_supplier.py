"""Suppliers, supplier items, replenishment policies, the stock and demand read models,
replenishment signals (one open per SKU x warehouse x supplier) and their history,
purchase orders, webhook deliveries.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from services.common.tables import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OPEN_SIGNAL = sa.text("status = 'open'")
TABLES = (
    "webhook_deliveries",
    "signal_history",
    "replenishment_signals",
    "purchase_orders",
    "demand_orders",
    "demand_daily",
    "stock_positions",
    "replenishment_policies",
    "supplier_items",
    "suppliers",
)


def _stamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "suppliers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("contacts", sa.JSON(), nullable=False),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("webhook_secret", sa.String(64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        *_stamps(),
    )
    op.create_index("ix_suppliers_created", "suppliers", ["created_at", "id"])

    op.create_table(
        "supplier_items",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "supplier_id",
            sa.String(64),
            sa.ForeignKey("suppliers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("supplier_part_number", sa.String(64), nullable=True),
        sa.Column("unit_cost", sa.Numeric(14, 2), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("lead_time_days", sa.Integer(), nullable=False),
        sa.Column("lead_time_sd_days", sa.Float(), nullable=False),
        sa.Column("moq", sa.Integer(), nullable=False),
        sa.Column("pack_multiple", sa.Integer(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("effective_to", sa.Date(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        *_stamps(),
        sa.UniqueConstraint("supplier_id", "sku", "effective_from", name="uq_supplier_items_term"),
        sa.CheckConstraint("moq >= 1", name="ck_supplier_items_moq"),
        sa.CheckConstraint("pack_multiple >= 1", name="ck_supplier_items_pack"),
        sa.CheckConstraint("lead_time_days >= 0", name="ck_supplier_items_lead"),
        sa.CheckConstraint(
            "effective_to IS NULL OR effective_to >= effective_from",
            name="ck_supplier_items_dates",
        ),
    )
    op.create_index("ix_supplier_items_sku", "supplier_items", ["sku", "priority"])
    op.create_index(
        "ix_supplier_items_supplier", "supplier_items", ["supplier_id", "created_at", "id"]
    )

    op.create_table(
        "replenishment_policies",
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column("warehouse_id", sa.String(32), primary_key=True),
        sa.Column("review_mode", sa.String(16), nullable=False),
        sa.Column("service_level", sa.Float(), nullable=False),
        sa.Column("min_qty", sa.Integer(), nullable=True),
        sa.Column("max_qty", sa.Integer(), nullable=True),
        sa.Column("horizon_days", sa.Integer(), nullable=False),
        sa.Column("review_period_days", sa.Integer(), nullable=True),
        sa.Column("order_cost", sa.Numeric(14, 2), nullable=False),
        sa.Column("holding_rate", sa.Float(), nullable=False),
        sa.Column("auto_approve_limit", sa.Numeric(14, 2), nullable=False),
        sa.Column("ack_timeout_hours", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        *_stamps(),
        sa.CheckConstraint(
            "max_qty IS NULL OR min_qty IS NULL OR max_qty >= min_qty",
            name="ck_replenishment_policies_bounds",
        ),
    )
    op.create_index("ix_replenishment_policies_mode", "replenishment_policies", ["review_mode"])

    op.create_table(
        "stock_positions",
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column("warehouse_id", sa.String(32), primary_key=True),
        sa.Column("on_hand", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("available", sa.Integer(), nullable=False),
        sa.Column("backordered", sa.Integer(), nullable=False),
        sa.Column("observed_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )

    op.create_table(
        "demand_daily",
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column("warehouse_id", sa.String(32), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
    )

    op.create_table(
        "demand_orders",
        sa.Column("order_id", sa.String(64), primary_key=True),
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column("warehouse_id", sa.String(32), primary_key=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
    )

    op.create_table(
        "purchase_orders",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("supplier_id", sa.String(64), nullable=False),
        sa.Column("signal_id", sa.String(36), nullable=True),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("warehouse_id", sa.String(32), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_cost", sa.Numeric(14, 2), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("quantity_received", sa.Integer(), nullable=False),
        *_stamps(),
        sa.CheckConstraint("quantity > 0", name="ck_purchase_orders_quantity"),
        sa.CheckConstraint("quantity_received >= 0", name="ck_purchase_orders_received"),
    )
    op.create_index("ix_purchase_orders_pair", "purchase_orders", ["sku", "warehouse_id", "status"])
    op.create_index(
        "ix_purchase_orders_supplier", "purchase_orders", ["supplier_id", "created_at", "id"]
    )

    op.create_table(
        "replenishment_signals",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("supplier_id", sa.String(64), nullable=False),
        sa.Column("supplier_item_id", sa.String(36), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("warehouse_id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("review_mode", sa.String(16), nullable=False),
        sa.Column("on_hand", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("backordered", sa.Integer(), nullable=False),
        sa.Column("on_order", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("forecast_method", sa.String(32), nullable=False),
        sa.Column("forecast_daily_mean", sa.Float(), nullable=False),
        sa.Column("forecast_daily_sigma", sa.Float(), nullable=False),
        sa.Column("safety_stock", sa.Integer(), nullable=False),
        sa.Column("reorder_point", sa.Integer(), nullable=False),
        sa.Column("target", sa.Integer(), nullable=False),
        sa.Column("eoq", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("need_by", sa.Date(), nullable=False),
        sa.Column("lead_time_days", sa.Integer(), nullable=False),
        sa.Column("unit_cost", sa.Numeric(14, 2), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("raised_by", sa.String(128), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        *_stamps(),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
    )
    op.create_index(
        "uq_replenishment_signals_open",
        "replenishment_signals",
        ["sku", "warehouse_id", "supplier_id"],
        unique=True,
        sqlite_where=OPEN_SIGNAL,
        postgresql_where=OPEN_SIGNAL,
    )
    op.create_index(
        "ix_replenishment_signals_supplier",
        "replenishment_signals",
        ["supplier_id", "created_at", "id"],
    )
    op.create_index(
        "ix_replenishment_signals_created", "replenishment_signals", ["created_at", "id"]
    )

    op.create_table(
        "signal_history",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("signal_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("by", sa.String(128), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
    )
    op.create_index("ix_signal_history_signal", "signal_history", ["signal_id", "id"])

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("signal_id", sa.String(36), nullable=False),
        sa.Column("supplier_id", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", UtcDateTime(), nullable=True),
        *_stamps(),
    )
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"]
    )
    op.create_index(
        "ix_webhook_deliveries_supplier",
        "webhook_deliveries",
        ["supplier_id", "created_at", "id"],
    )


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
