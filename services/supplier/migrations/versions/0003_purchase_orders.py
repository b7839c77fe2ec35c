"""The purchase-order lifecycle: its columns on `purchase_orders`, `po_history`,
`po_receipts` (one row per lot received), `vendor_returns`.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from services.common.tables import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _po_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("need_by", sa.Date(), nullable=True),
        sa.Column("ordered_at", UtcDateTime(), nullable=True),
        sa.Column("approved_at", UtcDateTime(), nullable=True),
        sa.Column("approved_by", sa.String(128), nullable=True),
        sa.Column("acknowledged_at", UtcDateTime(), nullable=True),
        sa.Column("quantity_acknowledged", sa.Integer(), nullable=True),
        sa.Column("promised_date", sa.Date(), nullable=True),
        sa.Column("ack_note", sa.Text(), nullable=True),
        sa.Column("shipped_at", UtcDateTime(), nullable=True),
        sa.Column("expected_at", UtcDateTime(), nullable=True),
        sa.Column("asn_lots", sa.JSON(), nullable=True),
        sa.Column("received_at", UtcDateTime(), nullable=True),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
        sa.Column("shortfall", sa.Integer(), nullable=True),
        sa.Column("on_time", sa.Boolean(), nullable=True),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
        sa.Column("attention", sa.String(64), nullable=True),
        sa.Column("attention_detail", sa.Text(), nullable=True),
        sa.Column("ack_timeout_hours", sa.Integer(), nullable=False, server_default="48"),
        sa.Column("revision", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("quantity_booked", sa.Integer(), nullable=False, server_default="0"),
    ]


def upgrade() -> None:
    with op.batch_alter_table("purchase_orders") as batch:
        for column in _po_columns():
            batch.add_column(column)
    op.create_index("ix_purchase_orders_created", "purchase_orders", ["created_at", "id"])

    op.create_table(
        "po_history",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("po_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("by", sa.String(128), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
    )
    op.create_index("ix_po_history_po", "po_history", ["po_id", "id"])

    op.create_table(
        "po_receipts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("receipt_id", sa.String(36), nullable=False),
        sa.Column("po_id", sa.String(36), nullable=False),
        sa.Column("supplier_id", sa.String(64), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("warehouse_id", sa.String(32), nullable=False),
        sa.Column("lot", sa.String(64), nullable=False),
        sa.Column("expiry", sa.Date(), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("received_by", sa.String(128), nullable=False),
        sa.CheckConstraint("quantity > 0", name="ck_po_receipts_quantity"),
    )
    op.create_index("ix_po_receipts_po", "po_receipts", ["po_id", "id"])
    op.create_index("ix_po_receipts_lot", "po_receipts", ["sku", "lot"])

    op.create_table(
        "vendor_returns",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("supplier_id", sa.String(64), nullable=True),
        sa.Column("po_id", sa.String(36), nullable=True),
        sa.Column("return_id", sa.String(64), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("warehouse_id", sa.String(32), nullable=False),
        sa.Column("lot", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_cost", sa.Numeric(14, 2), nullable=True),
        sa.Column("credit_amount", sa.Numeric(14, 2), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )
    op.create_index(
        "ix_vendor_returns_supplier", "vendor_returns", ["supplier_id", "created_at", "id"]
    )


def downgrade() -> None:
    op.drop_table("vendor_returns")
    op.drop_table("po_receipts")
    op.drop_table("po_history")
    op.drop_index("ix_purchase_orders_created", table_name="purchase_orders")
    with op.batch_alter_table("purchase_orders") as batch:
        for column in reversed(_po_columns()):
            batch.drop_column(column.name)
