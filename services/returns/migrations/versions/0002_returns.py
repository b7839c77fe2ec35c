"""Returns, their lines and lots (shared by the RMA and the recall).

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


def upgrade() -> None:
    op.create_table(
        "returns",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("recall_id", sa.String(36), nullable=True),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("reason_detail", sa.Text(), nullable=True),
        sa.Column("condition", sa.String(32), nullable=True),
        sa.Column("requested_resolution", sa.String(24), nullable=True),
        sa.Column("resolution", sa.String(24), nullable=True),
        sa.Column("keep_it", sa.Boolean(), nullable=False),
        sa.Column("policy_id", sa.String(64), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("refund_total", sa.Numeric(14, 2), nullable=False),
        sa.Column("restocking_fee", sa.Numeric(14, 2), nullable=False),
        sa.Column("warehouse_id", sa.String(32), nullable=True),
        sa.Column("return_shipment_id", sa.String(36), nullable=True),
        sa.Column("carrier", sa.String(32), nullable=True),
        sa.Column("tracking_number", sa.String(64), nullable=True),
        sa.Column("label_url", sa.Text(), nullable=True),
        sa.Column("receipt_deadline", UtcDateTime(), nullable=True),
        sa.Column("replacement_order_id", sa.String(64), nullable=True),
        sa.Column("decided_by", sa.String(128), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_returns_customer_created", "returns", ["customer_id", "created_at", "id"])
    op.create_index("ix_returns_order", "returns", ["order_id"])
    op.create_index("ix_returns_status", "returns", ["status"])
    op.create_index("ix_returns_recall", "returns", ["recall_id"])
    op.create_index("ix_returns_created", "returns", ["created_at", "id"])
    op.create_table(
        "return_lines",
        sa.Column(
            "return_id",
            sa.String(36),
            sa.ForeignKey("returns.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("line_no", sa.Integer(), primary_key=True),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.Numeric(14, 2), nullable=False),
        sa.Column("received_good", sa.Integer(), nullable=False),
        sa.Column("received_damaged", sa.Integer(), nullable=False),
        sa.Column("refund_amount", sa.Numeric(14, 2), nullable=False),
    )
    op.create_table(
        "return_lots",
        sa.Column(
            "return_id",
            sa.String(36),
            sa.ForeignKey("returns.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("line_no", sa.Integer(), primary_key=True),
        sa.Column("lot", sa.String(64), primary_key=True),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("warehouse_id", sa.String(32), nullable=False),
        sa.Column("expected", sa.Integer(), nullable=False),
        sa.Column("good", sa.Integer(), nullable=False),
        sa.Column("damaged", sa.Integer(), nullable=False),
        sa.Column("disposition", sa.String(24), nullable=True),
        sa.Column("disposition_reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_return_lots_sku_lot", "return_lots", ["sku", "lot"])


def downgrade() -> None:
    op.drop_table("return_lots")
    op.drop_table("return_lines")
    op.drop_table("returns")
