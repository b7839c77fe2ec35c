"""A free order (amount 0) is credit-checked too: it is approved.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _amount_check(condition: str) -> None:
    with op.batch_alter_table("credit_checks") as batch:
        batch.drop_constraint("ck_credit_checks_amount", type_="check")
        batch.create_check_constraint("ck_credit_checks_amount", condition)


def upgrade() -> None:
    _amount_check("amount >= 0")


def downgrade() -> None:
    _amount_check("amount > 0")
