"""Plumbing tables (outbox, inbox, idempotency keys).

Revision ID: 0001
Revises:
"""

from alembic import op

from services.common.tables import create_plumbing_tables, drop_plumbing_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_plumbing_tables(op)


def downgrade() -> None:
    drop_plumbing_tables(op)
