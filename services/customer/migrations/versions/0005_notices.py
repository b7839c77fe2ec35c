"""Customer notices: preferred language, notices, the interaction log, shipment owners.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(
            sa.Column("preferred_language", sa.String(8), nullable=False, server_default="en")
        )
        batch.create_check_constraint(
            "ck_customers_preferred_language", "preferred_language IN ('en', 'zh-Hans')"
        )
    op.create_table(
        "notices",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("source_event_id", sa.String(64), nullable=False),
        sa.Column("source_type", sa.String(128), nullable=False),
        sa.Column("reference", sa.String(64), nullable=True),
        sa.Column("dedupe_key", sa.String(200), nullable=True),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("to_address", sa.String(254), nullable=True),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("next_attempt_at", TIMESTAMP, nullable=True),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("sent_at", TIMESTAMP, nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("status IN ('pending', 'sent', 'failed')", name="ck_notices_status"),
        sa.CheckConstraint("attempts >= 0", name="ck_notices_attempts"),
    )
    op.create_index("uq_notices_source", "notices", ["source_event_id", "customer_id"], unique=True)
    op.create_index("ix_notices_due", "notices", ["status", "next_attempt_at"])
    op.create_index("ix_notices_customer", "notices", ["customer_id", "created_at", "id"])
    op.create_index("ix_notices_status_created", "notices", ["status", "created_at", "id"])
    op.create_index("ix_notices_created", "notices", ["created_at", "id"])
    op.create_index("uq_notices_dedupe", "notices", ["customer_id", "dedupe_key"], unique=True)
    op.create_table(
        "interactions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("summary", sa.String(1000), nullable=False),
        sa.Column("reference", sa.String(64), nullable=True),
        sa.Column("reference_kind", sa.String(32), nullable=True),
        sa.Column("notice_id", sa.String(36), nullable=True),
        sa.Column("recorded_by", sa.String(128), nullable=False),
        sa.Column("occurred_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "direction IN ('inbound', 'outbound')", name="ck_interactions_direction"
        ),
    )
    op.create_index(
        "ix_interactions_customer", "interactions", ["customer_id", "occurred_at", "id"]
    )
    op.create_index("uq_interactions_notice", "interactions", ["notice_id"], unique=True)
    op.create_table(
        "customer_shipments",
        sa.Column("shipment_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("tracking_number", sa.String(64), nullable=True),
        sa.Column("recorded_at", TIMESTAMP, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("customer_shipments")
    op.drop_table("interactions")
    op.drop_table("notices")
    with op.batch_alter_table("customers") as batch:
        batch.drop_constraint("ck_customers_preferred_language", type_="check")
        batch.drop_column("preferred_language")
