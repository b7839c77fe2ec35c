"""Recall campaigns, their consignees and the shipment lines traced to them.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from services.common.tables import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recalls",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("lots", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("instructions", sa.Text(), nullable=False),
        sa.Column("hazard_class", sa.String(3), nullable=False),
        sa.Column("depth", sa.String(1), nullable=False),
        sa.Column("effectiveness_target", sa.Numeric(5, 2), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("opened_by", sa.String(128), nullable=False),
        sa.Column("attention", sa.Text(), nullable=True),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.Column("report_at", UtcDateTime(), nullable=True),
        sa.Column("fanned_out_at", UtcDateTime(), nullable=True),
        sa.Column("closed_by", sa.String(128), nullable=True),
        sa.Column("close_reason", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_recalls_created", "recalls", ["created_at", "id"])
    op.create_table(
        "recall_consignees",
        sa.Column("recall_id", sa.String(36), primary_key=True),
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("order_id", sa.String(64), primary_key=True),
        sa.Column("return_id", sa.String(36), nullable=False),
        sa.Column("shipment_id", sa.String(36), nullable=False),
        sa.Column("quantity_shipped", sa.Integer(), nullable=False),
        sa.Column("notice_event_id", sa.String(36), nullable=True),
        sa.Column("notice_issued_at", UtcDateTime(), nullable=True),
        sa.Column("notified_at", UtcDateTime(), nullable=True),
        sa.Column("notice_method", sa.String(32), nullable=True),
        sa.Column("responded_at", UtcDateTime(), nullable=True),
        sa.Column("responded_by", sa.String(128), nullable=True),
        sa.Column("action", sa.String(16), nullable=True),
        sa.Column("quantity_on_hand", sa.Integer(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("return_id", name="uq_recall_consignees_return"),
    )
    op.create_index("ix_recall_consignees_notice_event", "recall_consignees", ["notice_event_id"])
    op.create_table(
        "recall_shipments",
        sa.Column("recall_id", sa.String(36), primary_key=True),
        sa.Column("shipment_id", sa.String(36), primary_key=True),
        sa.Column("line_no", sa.Integer(), primary_key=True),
        sa.Column("lot", sa.String(64), primary_key=True),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("warehouse_id", sa.String(32), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("issued_at", UtcDateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("recall_shipments")
    op.drop_table("recall_consignees")
    op.drop_table("recalls")
