"""Credit checks count as exposure until their order's event is seen.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UNCOUNTED = sa.text("counted_at IS NULL")


def upgrade() -> None:
    op.add_column(
        "credit_checks", sa.Column("counted_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.execute(
        "UPDATE credit_checks SET counted_at = checked_at WHERE order_id IN "
        "(SELECT order_id FROM customer_open_orders)"
    )
    op.create_index(
        "ix_credit_checks_uncounted",
        "credit_checks",
        ["customer_id"],
        postgresql_where=UNCOUNTED,
        sqlite_where=UNCOUNTED,
    )


def downgrade() -> None:
    op.drop_index("ix_credit_checks_uncounted", "credit_checks")
    op.drop_column("credit_checks", "counted_at")
