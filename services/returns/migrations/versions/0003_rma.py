"""RMA: return policies (the default seeded), the delivered-lines read model, refunds,
return history, and the RMA's columns on `returns` (all nullable).

Revision ID: 0003
Revises: 0002
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from services.common.tables import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

RETURN_COLUMNS = [
    sa.Column("arrived_at", UtcDateTime(), nullable=True),
    sa.Column("disposed_at", UtcDateTime(), nullable=True),
    sa.Column("policy_decision", sa.String(16), nullable=True),
    sa.Column("policy_reason", sa.Text(), nullable=True),
    sa.Column("attention", sa.String(64), nullable=True),
    sa.Column("attention_detail", sa.Text(), nullable=True),
]


def upgrade() -> None:
    for column in RETURN_COLUMNS:
        op.add_column("returns", column)
    op.create_index("ix_returns_attention", "returns", ["attention"])
    policies = op.create_table(
        "return_policies",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("category", sa.String(64), nullable=True, unique=True),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("allowed_reasons", sa.JSON(), nullable=False),
        sa.Column("required_condition", sa.String(32), nullable=True),
        sa.Column("restocking_fee_kind", sa.String(8), nullable=False),
        sa.Column("restocking_fee_value", sa.Numeric(14, 2), nullable=False),
        sa.Column("return_shipping_paid_by", sa.String(16), nullable=False),
        sa.Column("keep_it_threshold", sa.Numeric(14, 2), nullable=False),
        sa.Column("receipt_timeout_days", sa.Integer(), nullable=False),
        sa.Column("auto_authorize", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        policies,
        [
            {
                "id": "default",
                "name": "Default return policy",
                "category": None,
                "window_days": 30,
                "allowed_reasons": [
                    "damaged",
                    "defective",
                    "wrong_item",
                    "not_as_described",
                    "no_longer_needed",
                ],
                "required_condition": None,
                "restocking_fee_kind": "percent",
                "restocking_fee_value": 10,
                "return_shipping_paid_by": "merchant",
                "keep_it_threshold": 0,
                "receipt_timeout_days": 14,
                "auto_authorize": True,
                "version": 1,
                "created_at": now,
                "updated_at": now,
            }
        ],
    )
    op.create_table(
        "delivered_orders",
        sa.Column("order_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("placed", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "delivered_lines",
        sa.Column("order_id", sa.String(64), primary_key=True),
        sa.Column("line_no", sa.Integer(), primary_key=True),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.Numeric(14, 2), nullable=False),
        sa.Column("category", sa.String(64), nullable=True),
    )
    op.create_table(
        "delivered_shipments",
        sa.Column("shipment_id", sa.String(36), primary_key=True),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("warehouse_id", sa.String(32), nullable=True),
        sa.Column("lots", sa.JSON(), nullable=True),
        sa.Column("delivered_at", UtcDateTime(), nullable=True),
        sa.Column("undelivered", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_delivered_shipments_order", "delivered_shipments", ["order_id"])
    op.create_table(
        "refunds",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("return_id", sa.String(36), nullable=False, unique=True),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.Column("restocking_fee", sa.Numeric(14, 2), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "return_history",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("return_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("by", sa.String(128), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("internal", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_return_history_return", "return_history", ["return_id", "id"])


def downgrade() -> None:
    op.drop_table("return_history")
    op.drop_table("refunds")
    op.drop_table("delivered_shipments")
    op.drop_table("delivered_lines")
    op.drop_table("delivered_orders")
    op.drop_table("return_policies")
    op.drop_index("ix_returns_attention", "returns")
    with op.batch_alter_table("returns") as batch:
        for column in RETURN_COLUMNS:
            batch.drop_column(column.name)
