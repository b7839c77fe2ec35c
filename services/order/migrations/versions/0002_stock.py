"""Catalogue, warehouses and the lot-aware stock ledger with reservations.

Revision ID: 0002
Revises: 0001
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MOVEMENT_KINDS = (
    "'receipt', 'adjustment', 'hold', 'release_hold', 'reserve', 'unreserve', "
    "'issue', 'unissue', 'restock'"
)


def _ts(name: str, nullable: bool = False) -> "sa.Column[Any]":
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "skus",
        sa.Column("code", sa.String(64), primary_key=True),
        sa.Column("gtin", sa.String(14), nullable=True),
        sa.Column("gtin14", sa.String(14), nullable=True, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("unit_price", sa.Numeric(14, 2), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("weight_grams", sa.Integer(), nullable=False),
        sa.Column("shelf_life", sa.Boolean(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.CheckConstraint("unit_price >= 0", name="ck_skus_unit_price"),
        sa.CheckConstraint("weight_grams > 0", name="ck_skus_weight"),
    )
    op.create_table(
        "warehouses",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
    )
    op.create_table(
        "stock_balances",
        sa.Column("sku", sa.String(64), sa.ForeignKey("skus.code"), primary_key=True),
        sa.Column("warehouse_id", sa.String(32), sa.ForeignKey("warehouses.id"), primary_key=True),
        sa.Column("lot", sa.String(64), primary_key=True),
        sa.Column("expiry", sa.Date(), nullable=True),
        sa.Column("on_hand", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("on_hold", sa.Boolean(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.CheckConstraint("on_hand >= 0", name="ck_stock_balances_on_hand"),
        sa.CheckConstraint("reserved >= 0", name="ck_stock_balances_reserved"),
        sa.CheckConstraint("held >= 0", name="ck_stock_balances_held"),
        sa.CheckConstraint("reserved + held <= on_hand", name="ck_stock_balances_covered"),
    )
    op.create_index("ix_stock_balances_warehouse", "stock_balances", ["warehouse_id", "sku"])
    op.create_table(
        "stock_movements",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("sku", sa.String(64), sa.ForeignKey("skus.code"), nullable=False),
        sa.Column("warehouse_id", sa.String(32), sa.ForeignKey("warehouses.id"), nullable=False),
        sa.Column("lot", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("on_hand_delta", sa.Integer(), nullable=False),
        sa.Column("reserved_delta", sa.Integer(), nullable=False),
        sa.Column("held_delta", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("reference", sa.String(128), nullable=True),
        sa.Column("order_id", sa.String(64), nullable=True),
        sa.Column("shipment_id", sa.String(128), nullable=True),
        sa.Column("actor", sa.String(128), nullable=False),
        _ts("created_at"),
        sa.CheckConstraint(f"kind IN ({MOVEMENT_KINDS})", name="ck_stock_movements_kind"),
        sa.CheckConstraint("quantity <> 0", name="ck_stock_movements_quantity"),
    )
    op.create_index("ix_stock_movements_sku", "stock_movements", ["sku", "id"])
    op.create_index("ix_stock_movements_warehouse", "stock_movements", ["warehouse_id", "id"])
    op.create_index("ix_stock_movements_order", "stock_movements", ["order_id", "id"])
    op.create_index("ix_stock_movements_shipment", "stock_movements", ["shipment_id"])
    op.create_table(
        "stock_holds",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("sku", sa.String(64), sa.ForeignKey("skus.code"), nullable=False),
        sa.Column("lot", sa.String(64), nullable=False),
        sa.Column("warehouse_id", sa.String(32), sa.ForeignKey("warehouses.id"), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("held_by", sa.String(128), nullable=False),
        _ts("created_at"),
        _ts("released_at", nullable=True),
        sa.Column("released_by", sa.String(128), nullable=True),
    )
    op.create_index("ix_stock_holds_lot", "stock_holds", ["sku", "lot"])
    op.create_table(
        "stock_backorders",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(64), sa.ForeignKey("skus.code"), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("created_at"),
        _ts("closed_at", nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'filled', 'cancelled')", name="ck_stock_backorders_status"
        ),
        sa.CheckConstraint("quantity >= 0", name="ck_stock_backorders_quantity"),
    )
    op.create_index(
        "ix_stock_backorders_queue", "stock_backorders", ["sku", "status", "created_at", "id"]
    )
    op.create_index("ix_stock_backorders_order", "stock_backorders", ["order_id", "line_no"])
    op.create_table(
        "stock_allocations",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(64), sa.ForeignKey("skus.code"), nullable=False),
        sa.Column("warehouse_id", sa.String(32), sa.ForeignKey("warehouses.id"), nullable=False),
        sa.Column("lot", sa.String(64), nullable=False),
        sa.Column("expiry", sa.Date(), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("shipment_id", sa.String(128), nullable=True),
        sa.Column("backorder_id", BigId, sa.ForeignKey("stock_backorders.id"), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.CheckConstraint(
            "status IN ('reserved', 'issued', 'released', 'unissued', 'restocked')",
            name="ck_stock_allocations_status",
        ),
        sa.CheckConstraint("quantity > 0", name="ck_stock_allocations_quantity"),
    )
    op.create_index("ix_stock_allocations_order", "stock_allocations", ["order_id", "status"])
    op.create_index("ix_stock_allocations_shipment", "stock_allocations", ["shipment_id"])


def downgrade() -> None:
    for table in (
        "stock_allocations",
        "stock_backorders",
        "stock_holds",
        "stock_movements",
        "stock_balances",
        "warehouses",
        "skus",
    ):
        op.drop_table(table)
