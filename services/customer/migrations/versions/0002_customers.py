"""Customers, addresses, contacts, search trigrams, credit checks, open order exposure.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(14, 2)
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("name_key", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("phone", sa.String(16), nullable=True),
        sa.Column("phone_digits", sa.String(15), nullable=True),
        sa.Column("credit_limit", MONEY, nullable=True),
        sa.Column("credit_hold", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("kind IN ('b2b', 'b2c')", name="ck_customers_kind"),
        sa.CheckConstraint(
            "credit_limit IS NULL OR credit_limit >= 0", name="ck_customers_credit_limit"
        ),
        sa.CheckConstraint("version >= 1", name="ck_customers_version"),
    )
    op.create_index("ix_customers_name_key_id", "customers", ["name_key", "id"])
    op.create_index("ix_customers_created_at_id", "customers", ["created_at", "id"])
    # Pattern ops so that prefix searches (`LIKE 'abc%'`) use the index on PostgreSQL.
    op.create_index(
        "ix_customers_email",
        "customers",
        ["email"],
        postgresql_ops={"email": "varchar_pattern_ops"},
    )
    op.create_index(
        "ix_customers_phone_digits",
        "customers",
        ["phone_digits"],
        postgresql_ops={"phone_digits": "varchar_pattern_ops"},
    )
    op.create_index("ix_customers_kind_name_key", "customers", ["kind", "name_key", "id"])

    op.create_table(
        "customer_addresses",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "customer_id",
            sa.String(36),
            sa.ForeignKey("customers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("line1", sa.String(200), nullable=False),
        sa.Column("line2", sa.String(200), nullable=True),
        sa.Column("city", sa.String(100), nullable=False),
        sa.Column("region", sa.String(100), nullable=True),
        sa.Column("postal_code", sa.String(20), nullable=True),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.CheckConstraint("kind IN ('shipping', 'billing')", name="ck_customer_addresses_kind"),
        sa.CheckConstraint("length(country) = 2", name="ck_customer_addresses_country"),
    )
    op.create_index(
        "ix_customer_addresses_customer", "customer_addresses", ["customer_id", "position"]
    )
    op.create_index(
        "uq_customer_addresses_default",
        "customer_addresses",
        ["customer_id", "kind"],
        unique=True,
        sqlite_where=sa.text("is_default"),
        postgresql_where=sa.text("is_default"),
    )

    op.create_table(
        "customer_contacts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "customer_id",
            sa.String(36),
            sa.ForeignKey("customers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("phone", sa.String(16), nullable=True),
        sa.Column("role", sa.String(100), nullable=True),
    )
    op.create_index(
        "ix_customer_contacts_customer", "customer_contacts", ["customer_id", "position"]
    )

    op.create_table(
        "customer_search_grams",
        sa.Column(
            "customer_id",
            sa.String(36),
            sa.ForeignKey("customers.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("gram", sa.String(8), primary_key=True),
    )
    op.create_index(
        "ix_customer_search_grams_gram", "customer_search_grams", ["gram", "customer_id"]
    )

    op.create_table(
        "credit_checks",
        sa.Column("order_id", sa.String(64), primary_key=True),
        sa.Column(
            "customer_id",
            sa.String(36),
            sa.ForeignKey("customers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("reason_code", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("credit_limit", MONEY, nullable=True),
        sa.Column("credit_hold", sa.Boolean(), nullable=False),
        sa.Column("open_order_value", MONEY, nullable=False),
        sa.Column("available", MONEY, nullable=True),
        sa.Column("checked_by", sa.String(128), nullable=False),
        sa.Column("checked_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("decision IN ('approved', 'hold')", name="ck_credit_checks_decision"),
        sa.CheckConstraint("amount > 0", name="ck_credit_checks_amount"),
    )
    op.create_index("ix_credit_checks_customer", "credit_checks", ["customer_id", "checked_at"])

    op.create_table(
        "customer_open_orders",
        sa.Column("order_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("placed_at", TIMESTAMP, nullable=True),
        sa.Column("closed_at", TIMESTAMP, nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'cancelled', 'completed')", name="ck_customer_open_orders_status"
        ),
        sa.CheckConstraint("amount >= 0", name="ck_customer_open_orders_amount"),
    )
    op.create_index(
        "ix_customer_open_orders_customer", "customer_open_orders", ["customer_id", "status"]
    )


def downgrade() -> None:
    op.drop_table("customer_open_orders")
    op.drop_table("credit_checks")
    op.drop_table("customer_search_grams")
    op.drop_table("customer_contacts")
    op.drop_table("customer_addresses")
    op.drop_table("customers")
