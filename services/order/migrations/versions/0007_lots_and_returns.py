"""Lot status and traceability, restock from returns, replacement orders, SKU categories.

`stock_lots` / `stock_lot_changes` hold a lot's status and its history; receipts record
the supplier and purchase reference; movements gain kind `return`; the forward trace of
a lot reads `stock_allocations` by lot; the shipment read model keeps the delivery time;
an order may be the replacement for one return.

Revision ID: 0007
Revises: 0006
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
KINDS = "'receipt', 'adjustment', 'hold', 'release_hold', 'reserve', 'unreserve', 'issue', "
OLD_KINDS = KINDS + "'unissue', 'restock'"
NEW_KINDS = KINDS + "'unissue', 'restock', 'return'"
LOT_STATUSES = "'released', 'on_hold', 'quarantined', 'recalled'"


def _ts(name: str, nullable: bool = False) -> "sa.Column[Any]":
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("skus") as batch:
        batch.add_column(sa.Column("category", sa.String(64), nullable=True))
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("replacement_for_return_id", sa.String(36), nullable=True))
        batch.create_unique_constraint(
            "uq_orders_replacement_for_return_id", ["replacement_for_return_id"]
        )
    with op.batch_alter_table("shipment_views") as batch:
        batch.add_column(sa.Column("delivered_at", sa.String(40), nullable=True))
    with op.batch_alter_table("stock_movements") as batch:
        batch.add_column(sa.Column("supplier_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("purchase_reference", sa.String(64), nullable=True))
        batch.drop_constraint("ck_stock_movements_kind", type_="check")
        batch.create_check_constraint("ck_stock_movements_kind", f"kind IN ({NEW_KINDS})")
    op.create_index("ix_stock_movements_lot", "stock_movements", ["lot", "kind"])
    op.create_index(
        "ix_stock_allocations_lot",
        "stock_allocations",
        ["lot", "status", "shipment_id", "line_no", "sku"],
    )
    op.create_table(
        "stock_lots",
        sa.Column("sku", sa.String(64), sa.ForeignKey("skus.code"), primary_key=True),
        sa.Column("lot", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("recall_id", sa.String(36), nullable=True),
        sa.Column("changed_by", sa.String(128), nullable=False),
        _ts("updated_at"),
        sa.CheckConstraint(f"status IN ({LOT_STATUSES})", name="ck_stock_lots_status"),
    )
    op.create_table(
        "stock_lot_changes",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("lot", sa.String(64), nullable=False),
        sa.Column("previous", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("recall_id", sa.String(36), nullable=True),
        sa.Column("changed_by", sa.String(128), nullable=False),
        _ts("changed_at"),
    )
    op.create_index("ix_stock_lot_changes_lot", "stock_lot_changes", ["sku", "lot", "id"])


def downgrade() -> None:
    op.drop_index("ix_stock_lot_changes_lot", table_name="stock_lot_changes")
    op.drop_table("stock_lot_changes")
    op.drop_table("stock_lots")
    op.drop_index("ix_stock_allocations_lot", table_name="stock_allocations")
    op.drop_index("ix_stock_movements_lot", table_name="stock_movements")
    with op.batch_alter_table("stock_movements") as batch:
        batch.drop_constraint("ck_stock_movements_kind", type_="check")
        batch.create_check_constraint("ck_stock_movements_kind", f"kind IN ({OLD_KINDS})")
        batch.drop_column("purchase_reference")
        batch.drop_column("supplier_id")
    with op.batch_alter_table("shipment_views") as batch:
        batch.drop_column("delivered_at")
    with op.batch_alter_table("orders") as batch:
        batch.drop_constraint("uq_orders_replacement_for_return_id", type_="unique")
        batch.drop_column("replacement_for_return_id")
    with op.batch_alter_table("skus") as batch:
        batch.drop_column("category")
