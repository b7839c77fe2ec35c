"""Catalogue, warehouse and stock models: reservation types the order code passes in and
gets back, and the HTTP API's request and response bodies."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)

from services.common.events import LotQuantity
from services.common.money import Money as BaseMoney
from services.common.patch import PatchBody
from services.common.statuses import LotStatus
from services.order.gtin import validate_gtin

SKU_PATTERN = r"^[A-Z0-9][A-Z0-9._-]{1,63}$"
WAREHOUSE_PATTERN = r"^[A-Z0-9][A-Z0-9_-]{1,31}$"
LOT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$"
MAX_QUANTITY = 1_000_000_000
CENT = Decimal("0.01")

SkuCode = Annotated[str, Field(pattern=SKU_PATTERN, examples=["CHAI-500G"])]
WarehouseId = Annotated[str, Field(pattern=WAREHOUSE_PATTERN, examples=["WH-NORTH"])]
LotCode = Annotated[str, Field(pattern=LOT_PATTERN, examples=["L2025-031"])]
Quantity = Annotated[int, Field(gt=0, le=MAX_QUANTITY)]
Money = Annotated[BaseMoney, Field(examples=["12.50"])]
Category = Annotated[
    str | None,
    Field(
        default=None,
        min_length=1,
        max_length=64,
        description="product category (return policies are per category)",
        examples=["beverages"],
    ),
]


# --- reservations: what the order code and workflows exchange with stock.py ---------


class LineRequest(BaseModel):
    """One order line to reserve stock for."""

    model_config = ConfigDict(frozen=True)

    line_no: int = Field(ge=1)
    sku: str
    quantity: int = Field(gt=0, le=MAX_QUANTITY)


class Allocation(BaseModel):
    """A quantity of one lot in one warehouse, held for (or issued to) one order line."""

    model_config = ConfigDict(frozen=True)

    line_no: int
    sku: str
    warehouse_id: str
    lot: str
    expiry: date | None
    quantity: int

    def lot_quantity(self) -> LotQuantity:
        """The event form (`LotQuantity`) of this allocation."""
        return LotQuantity(
            line_no=self.line_no,
            sku=self.sku,
            warehouse_id=self.warehouse_id,
            lot=self.lot,
            quantity=self.quantity,
        )


class PickedLot(Allocation):
    """An allocation issued to a shipment, with the SKU's catalogue weight for packing."""

    unit_weight_grams: int


class Missing(BaseModel):
    """Quantity of an order line that is backordered."""

    model_config = ConfigDict(frozen=True)

    line_no: int
    sku: str
    quantity: int


class ReservationResult(BaseModel):
    """Where an order's lines stand after `reserve`: everything reserved, some, or none."""

    status: Literal["reserved", "partial", "backordered"]
    allocations: list[Allocation]
    missing: list[Missing]


class LotAvailability(BaseModel):
    """One lot's quantities in one warehouse."""

    lot: str
    expiry: date | None
    on_hand: int
    reserved: int
    held: int
    available: int = Field(description="on_hand - reserved - held")
    on_hold: bool = Field(
        description="the lot is blocked (a hold, or a lot status other than released): "
        "nothing of it is reserved, and new stock of it is held too"
    )
    expired: bool = Field(description="at or past its expiry date: never reserved")


class WarehouseAvailability(BaseModel):
    """One SKU's quantities in one warehouse, with the per-lot breakdown (FEFO order)."""

    sku: str
    warehouse_id: str
    warehouse_active: bool
    on_hand: int
    reserved: int
    held: int
    available: int = Field(description="on_hand - reserved - held")
    reservable: int = Field(
        description="available in lots that may be reserved (not expired, warehouse active)"
    )
    lots: list[LotAvailability]


class AvailabilityList(BaseModel):
    items: list[WarehouseAvailability]


# --- catalogue -----------------------------------------------------------------------


class SkuCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: SkuCode
    gtin: str | None = Field(
        default=None,
        pattern=r"^[0-9]{13,14}$",
        description="GTIN-13 or GTIN-14 with a valid GS1 check digit",
    )
    name: str = Field(min_length=1, max_length=200)
    unit_price: Money
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    weight_grams: int = Field(gt=0, le=MAX_QUANTITY)
    shelf_life: StrictBool = Field(default=False, description="receipts need an expiry date")
    category: Category = None

    @field_validator("gtin")
    @classmethod
    def _gtin(cls, value: str | None) -> str | None:
        return None if value is None else validate_gtin(value)

    @field_validator("unit_price")
    @classmethod
    def _cents(cls, value: Decimal) -> Decimal:
        return value.quantize(CENT)


class SkuUpdate(PatchBody):
    """The fields a coordinator may change; the code, GTIN and shelf-life flag are fixed."""

    clearable: ClassVar[frozenset[str]] = frozenset({"category"})

    name: str | None = Field(default=None, min_length=1, max_length=200)
    unit_price: Money | None = None
    weight_grams: int | None = Field(default=None, gt=0, le=MAX_QUANTITY)
    category: Category = None

    @field_validator("unit_price")
    @classmethod
    def _cents(cls, value: Decimal | None) -> Decimal | None:
        return None if value is None else value.quantize(CENT)


class SkuPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    gtin: str | None
    name: str
    unit_price: Decimal = Field(examples=["12.50"])
    currency: str
    weight_grams: int
    shelf_life: bool
    category: str | None = None
    created_at: datetime
    updated_at: datetime


class SkuPage(BaseModel):
    items: list[SkuPublic]
    next_cursor: str | None


# --- warehouses ----------------------------------------------------------------------


class WarehouseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: WarehouseId
    name: str = Field(min_length=1, max_length=200)
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")
    active: StrictBool = True


class WarehouseUpdate(PatchBody):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    active: StrictBool | None = None


class WarehousePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    country: str
    active: bool
    created_at: datetime
    updated_at: datetime


# --- stock ledger --------------------------------------------------------------------


class AdjustmentReason(StrEnum):
    COUNT_CORRECTION = "count_correction"
    DAMAGE = "damage"
    LOSS = "loss"
    FOUND = "found"
    OTHER = "other"


class ReceiptCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    warehouse_id: str
    sku: str
    lot: LotCode
    expiry: date | None = None
    quantity: Quantity
    reference: str | None = Field(default=None, max_length=128, examples=["PO-1042"])
    supplier_id: str | None = Field(default=None, min_length=1, max_length=64)
    purchase_reference: str | None = Field(
        default=None, min_length=1, max_length=64, examples=["PO-1042"]
    )


def _sign_rules(schema: dict[str, Any]) -> None:
    """`_sign`'s rule in the schema: damage and loss remove stock, found adds it."""

    def when(reasons: list[str], delta: dict[str, int]) -> dict[str, Any]:
        return {
            "if": {"properties": {"reason": {"enum": reasons}}, "required": ["reason"]},
            "then": {"properties": {"quantity_delta": delta}},
        }

    schema["allOf"] = [
        when([AdjustmentReason.DAMAGE, AdjustmentReason.LOSS], {"maximum": -1}),
        when([AdjustmentReason.FOUND], {"minimum": 1}),
    ]


class AdjustmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_sign_rules)

    warehouse_id: str
    sku: str
    lot: LotCode
    quantity_delta: int = Field(
        ge=-MAX_QUANTITY, le=MAX_QUANTITY, json_schema_extra={"not": {"const": 0}}
    )
    reason: AdjustmentReason
    note: str | None = Field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _sign(self) -> Self:
        if self.quantity_delta == 0:
            raise ValueError("quantity_delta must not be 0")
        if self.reason in (AdjustmentReason.DAMAGE, AdjustmentReason.LOSS) and (
            self.quantity_delta > 0
        ):
            raise ValueError(f"a {self.reason.value} adjustment removes stock (delta < 0)")
        if self.reason is AdjustmentReason.FOUND and self.quantity_delta < 0:
            raise ValueError("a found adjustment adds stock (delta > 0)")
        return self


class HoldCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str
    lot: LotCode
    warehouse_id: str | None = Field(default=None, description="all warehouses when absent")
    reason: str = Field(min_length=1, max_length=500)


class HoldRelease(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str
    lot: LotCode
    warehouse_id: str | None = Field(
        default=None, description="absent: release every hold on the lot"
    )


class HoldPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sku: str
    lot: str
    warehouse_id: str | None
    reason: str
    held_by: str
    created_at: datetime
    released_at: datetime | None
    released_by: str | None


class LotBalance(BaseModel):
    """One stock balance row."""

    model_config = ConfigDict(from_attributes=True)

    warehouse_id: str
    sku: str
    lot: str
    expiry: date | None
    on_hand: int
    reserved: int
    held: int
    available: int
    on_hold: bool


class MovementPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    sku: str
    warehouse_id: str
    lot: str
    quantity: int
    on_hand_delta: int
    reserved_delta: int
    held_delta: int
    reason: str | None
    note: str | None
    reference: str | None
    supplier_id: str | None = None
    purchase_reference: str | None = None
    order_id: str | None
    shipment_id: str | None
    actor: str
    created_at: datetime


class MovementPage(BaseModel):
    items: list[MovementPublic]
    next_cursor: str | None


class StockChangeResult(BaseModel):
    """A receipt or adjustment: its ledger entry, the lot after it, the orders it filled."""

    movement: MovementPublic
    balance: LotBalance
    backorders_filled: list[str] = Field(description="orders whose backorders are now filled")


class DisplacedPublic(BaseModel):
    """An order line whose reservation a hold moved off the quarantined lot."""

    model_config = ConfigDict(from_attributes=True)

    order_id: str
    line_no: int
    quantity: int = Field(description="units that were reserved from the held lot")
    short: int = Field(description="of those, units no other lot could cover (backordered)")


class HoldResult(BaseModel):
    """The lot's active holds and balances after placing or releasing a hold."""

    sku: str
    lot: str
    holds: list[HoldPublic] = Field(description="holds still active on the lot")
    balances: list[LotBalance]
    backorders_filled: list[str]
    reservations_moved: list[DisplacedPublic] = Field(
        default_factory=list,
        description="reservations taken off the lot by this hold, re-reserved elsewhere "
        "or backordered",
    )


class BackorderPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    order_id: str
    line_no: int
    sku: str
    quantity: int
    status: str
    created_at: datetime
    closed_at: datetime | None


class BackorderPage(BaseModel):
    items: list[BackorderPublic]
    next_cursor: str | None


def dump(model: BaseModel) -> dict[str, Any]:
    """A response body (JSON types: decimals as strings, dates as ISO text)."""
    return model.model_dump(mode="json")


# --- lot status ------------------------------------------------------------------------


class LotStatusChange(BaseModel):
    """Give a lot a status in every warehouse."""

    model_config = ConfigDict(extra="forbid")

    status: LotStatus
    reason: str = Field(min_length=1, max_length=500)
    recall_id: str | None = Field(default=None, min_length=1, max_length=36)


class LotWarehouse(BaseModel):
    """A lot's quantities in one warehouse."""

    model_config = ConfigDict(from_attributes=True)

    warehouse_id: str
    on_hand: int
    reserved: int
    held: int


class LotStatusResult(BaseModel):
    """A lot's status and balances after a status change."""

    sku: str
    lot: str
    status: LotStatus
    warehouses: list[LotWarehouse]
    reservations_moved: list[DisplacedPublic] = Field(
        default_factory=list,
        description="reservations this change took off the lot, re-reserved elsewhere or "
        "backordered",
    )


class LotStatusHistoryItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    previous: LotStatus
    status: LotStatus
    reason: str
    recall_id: str | None
    changed_by: str
    changed_at: datetime


class LotDetail(LotStatusResult):
    """A lot: status, expiry, balances per warehouse and the history of its status."""

    expiry: date | None
    history: list[LotStatusHistoryItem]


# --- traceability ----------------------------------------------------------------------


class TraceReceipt(BaseModel):
    sku: str
    warehouse_id: str
    quantity: int
    received_at: datetime
    supplier_id: str | None
    purchase_reference: str | None
    reference: str | None


class TraceBackward(BaseModel):
    receipts: list[TraceReceipt]


class TraceOnHand(LotWarehouse):
    sku: str


class TraceConsignee(BaseModel):
    """One order line's quantity of the lot issued to one shipment."""

    customer_id: str
    order_id: str
    shipment_id: str = Field(
        description="the shipment service's id (the ledger's pick reference until the "
        "shipment is known here)"
    )
    warehouse_id: str
    sku: str
    line_no: int
    quantity: int
    issued_at: datetime
    shipment_status: str
    dispatched: bool = Field(description="false while the shipment may still be cancelled")
    delivered_at: str | None


class TraceForward(BaseModel):
    consignees: list[TraceConsignee]
    total_quantity: int = Field(description="units of the lot issued to shipments, all pages")
    customers: int = Field(description="distinct customers who were issued the lot")
    next_cursor: str | None


class LotTrace(BaseModel):
    """Where a lot came from (receipts) and went (shipments, orders, customers)."""

    lot: str
    skus: list[str]
    status: dict[str, LotStatus]
    backward: TraceBackward
    on_hand: list[TraceOnHand]
    forward: TraceForward
