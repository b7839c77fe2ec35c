"""The order lifecycle keeps its facts in columns: when a credit hold was released.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from services.common.tables import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("credit_released_at", UtcDateTime(), nullable=True))
    # Orders released before this column existed: their timeline says so.
    op.execute(
        "UPDATE orders SET credit_released_at = (SELECT MIN(t.at) FROM order_timeline t "
        "WHERE t.order_id = orders.id AND t.kind = 'credit_released')"
    )


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("credit_released_at")
