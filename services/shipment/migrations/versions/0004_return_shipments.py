"""Return shipments: rows of `shipments` with direction "return" and their return id.

The one-live-shipment-per-(order, warehouse) rule now holds for outbound shipments
only; a return has at most one live return shipment.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ACTIVE = sa.text("status != 'cancelled'")
ACTIVE_OUTBOUND = sa.text("status != 'cancelled' AND direction = 'outbound'")
ACTIVE_RETURN = sa.text("status != 'cancelled' AND direction = 'return'")


def upgrade() -> None:
    with op.batch_alter_table("shipments") as batch:
        batch.add_column(
            sa.Column(
                "direction", sa.String(16), nullable=False, server_default=sa.text("'outbound'")
            )
        )
        batch.add_column(sa.Column("return_id", sa.String(36), nullable=True))
    op.drop_index("uq_shipments_order_warehouse_active", table_name="shipments")
    op.create_index(
        "uq_shipments_order_warehouse_active",
        "shipments",
        ["order_id", "warehouse_id"],
        unique=True,
        sqlite_where=ACTIVE_OUTBOUND,
        postgresql_where=ACTIVE_OUTBOUND,
    )
    op.create_index(
        "uq_shipments_return_active",
        "shipments",
        ["return_id"],
        unique=True,
        sqlite_where=ACTIVE_RETURN,
        postgresql_where=ACTIVE_RETURN,
    )


def downgrade() -> None:
    op.drop_index("uq_shipments_return_active", table_name="shipments")
    op.drop_index("uq_shipments_order_warehouse_active", table_name="shipments")
    op.execute("DELETE FROM shipments WHERE direction = 'return'")
    op.create_index(
        "uq_shipments_order_warehouse_active",
        "shipments",
        ["order_id", "warehouse_id"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )
    with op.batch_alter_table("shipments") as batch:
        batch.drop_column("return_id")
        batch.drop_column("direction")
