"""The shipment read model follows the owner's revision, not its own ordering rule.

`revision` replaces `latest_event_at` (the newest occurred_at seen) and `final_status`
(the workflow's statuses, recorded at completion because the view could disagree).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shipment_views") as batch:
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="0"))
        batch.drop_column("latest_event_at")
        batch.drop_column("final_status")


def downgrade() -> None:
    with op.batch_alter_table("shipment_views") as batch:
        batch.add_column(sa.Column("final_status", sa.String(32), nullable=True))
        batch.add_column(sa.Column("latest_event_at", sa.String(40), nullable=True))
        batch.drop_column("revision")
