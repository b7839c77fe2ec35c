"""Catalogue, warehouse and stock ledger tables (migration 0002).

A `StockBalance` row per (sku, warehouse, lot) holds the current quantities; every
change to one is also an append-only `StockMovement` whose bucket deltas sum to the
balance. `StockAllocation` rows say which order holds which lot, `StockBackorder` rows
what could not be reserved, `StockHold` rows which lots are quarantined; `StockLot` a
lot's status (released, on hold, quarantined, recalled) across warehouses, with
`StockLotChange` its history.

One rule blocks a balance (`StockBalance.on_hold`: nothing of it reserved or picked, its
free stock held): an active hold covers its warehouse, or its lot's status is not
`released`.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.common.statuses import LotStatus
from services.common.tables import UtcDateTime
from services.order.models import Base

BigId = BigInteger().with_variant(Integer(), "sqlite")

MOVEMENT_KINDS = (
    "receipt",
    "adjustment",
    "hold",
    "release_hold",
    "reserve",
    "unreserve",
    "issue",
    "unissue",
    "restock",
    "return",
)
ALLOCATION_STATUSES = ("reserved", "issued", "released", "unissued", "restocked")
BACKORDER_STATUSES = ("open", "filled", "cancelled")
LOT_STATUSES = tuple(s.value for s in LotStatus)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Sku(Base):
    """A stock-keeping unit of the catalogue."""

    __tablename__ = "skus"
    __table_args__ = (
        CheckConstraint("unit_price >= 0", name="ck_skus_unit_price"),
        CheckConstraint("weight_grams > 0", name="ck_skus_weight"),
    )

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    gtin: Mapped[str | None] = mapped_column(String(14))
    # The 14-digit form: a GTIN-13 and its zero-padded GTIN-14 are the same item.
    gtin14: Mapped[str | None] = mapped_column(String(14), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    unit_price: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    weight_grams: Mapped[int] = mapped_column(Integer)
    shelf_life: Mapped[bool] = mapped_column(Boolean)
    # The product category return policies are chosen by; None: the default policy.
    category: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Warehouse(Base):
    """A stocking location; inactive ones take no receipts and give no reservations."""

    __tablename__ = "warehouses"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class StockBalance(Base):
    """Current quantities of one lot of one SKU in one warehouse."""

    __tablename__ = "stock_balances"
    __table_args__ = (
        CheckConstraint("on_hand >= 0", name="ck_stock_balances_on_hand"),
        CheckConstraint("reserved >= 0", name="ck_stock_balances_reserved"),
        CheckConstraint("held >= 0", name="ck_stock_balances_held"),
        CheckConstraint("reserved + held <= on_hand", name="ck_stock_balances_covered"),
        Index("ix_stock_balances_warehouse", "warehouse_id", "sku"),
    )

    sku: Mapped[str] = mapped_column(String(64), ForeignKey("skus.code"), primary_key=True)
    warehouse_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("warehouses.id"), primary_key=True
    )
    lot: Mapped[str] = mapped_column(String(64), primary_key=True)
    expiry: Mapped[date | None] = mapped_column(Date)
    on_hand: Mapped[int] = mapped_column(Integer)
    reserved: Mapped[int] = mapped_column(Integer)
    held: Mapped[int] = mapped_column(Integer)
    # Quarantined: every unreserved unit is held, and stock arriving later is held too.
    on_hold: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved - self.held


class StockMovement(Base):
    """One append-only ledger entry; `quantity` is the change in the kind's own terms."""

    __tablename__ = "stock_movements"
    __table_args__ = (
        CheckConstraint(_in("kind", MOVEMENT_KINDS), name="ck_stock_movements_kind"),
        CheckConstraint("quantity <> 0", name="ck_stock_movements_quantity"),
        Index("ix_stock_movements_sku", "sku", "id"),
        Index("ix_stock_movements_warehouse", "warehouse_id", "id"),
        Index("ix_stock_movements_order", "order_id", "id"),
        Index("ix_stock_movements_shipment", "shipment_id"),
        Index("ix_stock_movements_lot", "lot", "kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    sku: Mapped[str] = mapped_column(String(64), ForeignKey("skus.code"))
    warehouse_id: Mapped[str] = mapped_column(String(32), ForeignKey("warehouses.id"))
    lot: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    on_hand_delta: Mapped[int] = mapped_column(Integer)
    reserved_delta: Mapped[int] = mapped_column(Integer)
    held_delta: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(String(128))
    # Receipts: where the goods came from (the backward trace of a lot).
    supplier_id: Mapped[str | None] = mapped_column(String(64))
    purchase_reference: Mapped[str | None] = mapped_column(String(64))
    order_id: Mapped[str | None] = mapped_column(String(64))
    shipment_id: Mapped[str | None] = mapped_column(String(128))
    actor: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class StockHold(Base):
    """A quarantine of one lot, in one warehouse or (warehouse_id NULL) in all of them."""

    __tablename__ = "stock_holds"
    __table_args__ = (Index("ix_stock_holds_lot", "sku", "lot"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sku: Mapped[str] = mapped_column(String(64), ForeignKey("skus.code"))
    lot: Mapped[str] = mapped_column(String(64))
    warehouse_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("warehouses.id"))
    reason: Mapped[str] = mapped_column(Text)
    held_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    released_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    released_by: Mapped[str | None] = mapped_column(String(128))


class StockBackorder(Base):
    """Quantity of an order line that could not be reserved; filled first in, first out."""

    __tablename__ = "stock_backorders"
    __table_args__ = (
        CheckConstraint(_in("status", BACKORDER_STATUSES), name="ck_stock_backorders_status"),
        CheckConstraint("quantity >= 0", name="ck_stock_backorders_quantity"),
        Index("ix_stock_backorders_queue", "sku", "status", "created_at", "id"),
        Index("ix_stock_backorders_order", "order_id", "line_no"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(64))
    line_no: Mapped[int] = mapped_column(Integer)
    sku: Mapped[str] = mapped_column(String(64), ForeignKey("skus.code"))
    quantity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class StockAllocation(Base):
    """A quantity of one lot held for one order line: reserved, then issued to a shipment."""

    __tablename__ = "stock_allocations"
    __table_args__ = (
        CheckConstraint(_in("status", ALLOCATION_STATUSES), name="ck_stock_allocations_status"),
        CheckConstraint("quantity > 0", name="ck_stock_allocations_quantity"),
        Index("ix_stock_allocations_order", "order_id", "status"),
        Index("ix_stock_allocations_shipment", "shipment_id"),
        # The forward trace of a lot: its issued rows in keyset order.
        Index("ix_stock_allocations_lot", "lot", "status", "shipment_id", "line_no", "sku"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(64))
    line_no: Mapped[int] = mapped_column(Integer)
    sku: Mapped[str] = mapped_column(String(64), ForeignKey("skus.code"))
    warehouse_id: Mapped[str] = mapped_column(String(32), ForeignKey("warehouses.id"))
    lot: Mapped[str] = mapped_column(String(64))
    expiry: Mapped[date | None] = mapped_column(Date)
    quantity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    shipment_id: Mapped[str | None] = mapped_column(String(128))
    backorder_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("stock_backorders.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class StockLot(Base):
    """A lot's status across every warehouse (`statuses.LotStatus`); a lot without a row
    is `released`."""

    __tablename__ = "stock_lots"
    __table_args__ = (CheckConstraint(_in("status", LOT_STATUSES), name="ck_stock_lots_status"),)

    sku: Mapped[str] = mapped_column(String(64), ForeignKey("skus.code"), primary_key=True)
    lot: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    recall_id: Mapped[str | None] = mapped_column(String(36))
    changed_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class StockLotChange(Base):
    """One change of a lot's status: the append-only history of `StockLot`."""

    __tablename__ = "stock_lot_changes"
    __table_args__ = (Index("ix_stock_lot_changes_lot", "sku", "lot", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sku: Mapped[str] = mapped_column(String(64))
    lot: Mapped[str] = mapped_column(String(64))
    previous: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    recall_id: Mapped[str | None] = mapped_column(String(36))
    changed_by: Mapped[str] = mapped_column(String(128))
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime())
