"""Shipments, lines with picked lots, packages, tracking events, simulated carrier plans.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from services.common.tables import BigId, UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ACTIVE = sa.text("status != 'cancelled'")


def upgrade() -> None:
    op.create_table(
        "shipments",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("warehouse_id", sa.String(64), nullable=False),
        sa.Column("carrier", sa.String(32), nullable=False),
        sa.Column("service_level", sa.String(16), nullable=False),
        sa.Column("tracking_number", sa.String(64), nullable=False, unique=True),
        sa.Column("label_url", sa.Text(), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("promised_date", sa.Date(), nullable=False),
        sa.Column("eta", UtcDateTime(), nullable=True),
        sa.Column("ship_to_name", sa.String(200), nullable=False),
        sa.Column("ship_to_line1", sa.String(200), nullable=False),
        sa.Column("ship_to_line2", sa.String(200), nullable=True),
        sa.Column("ship_to_city", sa.String(120), nullable=False),
        sa.Column("ship_to_region", sa.String(120), nullable=True),
        sa.Column("ship_to_postal_code", sa.String(20), nullable=True),
        sa.Column("ship_to_country", sa.String(2), nullable=False),
        sa.Column("simulation_scenario", sa.String(32), nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("dispatched_at", UtcDateTime(), nullable=True),
        sa.Column("delivered_at", UtcDateTime(), nullable=True),
        sa.Column("returned_at", UtcDateTime(), nullable=True),
        sa.Column("cancelled_at", UtcDateTime(), nullable=True),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
        sa.Column("last_event_at", UtcDateTime(), nullable=True),
        sa.Column("exception_notified", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("delivered_notified", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("returned_notified", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_shipments_order_id", "shipments", ["order_id"])
    op.create_index(
        "uq_shipments_order_warehouse_active",
        "shipments",
        ["order_id", "warehouse_id"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )
    op.create_index("ix_shipments_customer_created", "shipments", ["customer_id", "created_at"])
    op.create_index("ix_shipments_created", "shipments", ["created_at", "id"])
    op.create_index("ix_shipments_status", "shipments", ["status"])

    op.create_table(
        "shipment_lines",
        sa.Column(
            "shipment_id",
            sa.String(36),
            sa.ForeignKey("shipments.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("line_no", sa.Integer(), primary_key=True),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_weight_grams", sa.Integer(), nullable=False),
    )
    op.create_table(
        "shipment_line_lots",
        sa.Column("shipment_id", sa.String(36), primary_key=True),
        sa.Column("line_no", sa.Integer(), primary_key=True),
        sa.Column("lot", sa.String(64), primary_key=True),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["shipment_id", "line_no"],
            ["shipment_lines.shipment_id", "shipment_lines.line_no"],
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_shipment_line_lots_sku_lot", "shipment_line_lots", ["sku", "lot"])
    op.create_table(
        "shipment_packages",
        sa.Column(
            "shipment_id",
            sa.String(36),
            sa.ForeignKey("shipments.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("number", sa.Integer(), primary_key=True),
        sa.Column("weight_grams", sa.Integer(), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
    )
    op.create_table(
        "tracking_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "shipment_id",
            sa.String(36),
            sa.ForeignKey("shipments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("carrier_event_id", sa.String(128), nullable=True),
        sa.Column("dedupe_key", sa.String(255), nullable=False),
        sa.Column("raw_code", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("delayed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("city", sa.String(120), nullable=True),
        sa.Column("region", sa.String(120), nullable=True),
        sa.Column("postal_code", sa.String(20), nullable=True),
        sa.Column("country", sa.String(2), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("status_after", sa.String(32), nullable=False),
        sa.UniqueConstraint("shipment_id", "dedupe_key", name="uq_tracking_events_dedupe"),
    )
    op.create_index(
        "ix_tracking_events_shipment_occurred", "tracking_events", ["shipment_id", "occurred_at"]
    )
    op.create_table(
        "simulated_events",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column(
            "shipment_id",
            sa.String(36),
            sa.ForeignKey("shipments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("tracking_number", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("raw_code", sa.String(32), nullable=False),
        sa.Column("offset_hours", sa.Float(), nullable=False),
        sa.Column("due_at", UtcDateTime(), nullable=False),
        sa.Column("city", sa.String(120), nullable=False),
        sa.Column("region", sa.String(120), nullable=True),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("delivered", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("delivered_at", UtcDateTime(), nullable=True),
        sa.Column("cancelled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.UniqueConstraint("shipment_id", "seq", name="uq_simulated_events_seq"),
    )
    op.create_index(
        "ix_simulated_events_due", "simulated_events", ["delivered", "cancelled", "due_at"]
    )


def downgrade() -> None:
    op.drop_table("simulated_events")
    op.drop_table("tracking_events")
    op.drop_table("shipment_packages")
    op.drop_table("shipment_line_lots")
    op.drop_table("shipment_lines")
    op.drop_table("shipments")
