"""Supplier service API models: suppliers, supplier items, replenishment policies,
signals, proposals, the VMI inventory view and webhook deliveries.

Rules a JSON schema can state are in it (id and code shapes, bounds, a periodic
policy's review period as `if`/`then`); the cross-field ones (`max_qty >= min_qty`,
`effective_to >= effective_from`) are 422s with their own codes (`suppliers.py`).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from services.common.money import Money as BaseMoney
from services.common.numbers import NOT_BOOL
from services.common.patch import PatchBody

# A supplier id goes into a NATS subject (`supplier.<id>.signals`): no dots, no wildcards.
SUPPLIER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# The order service's catalogue and warehouse codes (its `stock_schemas.py`).
SKU_PATTERN = r"^[A-Z0-9][A-Z0-9._-]{1,63}$"
WAREHOUSE_PATTERN = r"^[A-Z0-9][A-Z0-9_-]{1,31}$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
WEBHOOK_URL_PATTERN = r"^https?://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?(/[!-~]*)?$"
# `\s` differs between pydantic's (Rust) regex and JSON Schema's (ECMAScript): U+0085 is
# whitespace only to the first, U+FEFF only to the second; both are excluded explicitly.
EMAIL_PATTERN = r"^[^@\s\x85\uFEFF]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$"
PHONE_PATTERN = r"^\+?[0-9][0-9 ()./-]{3,31}$"
MAX_QUANTITY = 1_000_000_000

SupplierId = Annotated[str, Field(pattern=SUPPLIER_ID_PATTERN, examples=["ACME-TEA"])]
SkuCode = Annotated[str, Field(pattern=SKU_PATTERN, examples=["CHAI-500G"])]
WarehouseId = Annotated[str, Field(pattern=WAREHOUSE_PATTERN, examples=["WH-NORTH"])]
Currency = Annotated[str, Field(pattern=CURRENCY_PATTERN, examples=["EUR"])]
Money = Annotated[BaseMoney, NOT_BOOL, Field(examples=["12.50"])]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(min_length=1, max_length=500)]
WebhookUrl = Annotated[
    str,
    Field(
        max_length=2000,
        pattern=WEBHOOK_URL_PATTERN,
        description="http or https; signals are POSTed here, signed (`Waybill-Signature`)",
        examples=["https://acme-tea.example/waybill/signals"],
    ),
]
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY), NOT_BOOL]
Days = Annotated[int, Field(ge=0, le=3650), NOT_BOOL]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- suppliers ------------------------------------------------------------------------


class ContactIn(Strict):
    name: Name
    email: Annotated[str, Field(max_length=254, pattern=EMAIL_PATTERN)] | None = None
    phone: Annotated[str, Field(max_length=32, pattern=PHONE_PATTERN)] | None = None
    role: Annotated[str, Field(min_length=1, max_length=64)] | None = None


Contacts = Annotated[list[ContactIn], Field(max_length=50)]


class SupplierCreate(Strict):
    id: SupplierId
    name: Name
    contacts: Contacts = []
    webhook_url: WebhookUrl | None = None
    active: StrictBool = True


class SupplierUpdate(PatchBody):
    """Only the fields sent change; `contacts` replaces the list, a null `webhook_url`
    stops webhook delivery."""

    clearable: ClassVar[frozenset[str]] = frozenset({"webhook_url"})

    name: Name | None = None
    contacts: Contacts | None = None
    webhook_url: WebhookUrl | None = None
    active: StrictBool | None = None


class ContactOut(BaseModel):
    name: str
    email: str | None = None
    phone: str | None = None
    role: str | None = None


class SupplierOut(BaseModel):
    id: str
    name: str
    contacts: list[ContactOut]
    webhook_url: str | None
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime

    model_config = ConfigDict(from_attributes=True)


class SupplierCreated(SupplierOut):
    """The new supplier, with its webhook secret: shown this once."""

    webhook_secret: str = Field(
        description="Signs webhook bodies (HMAC-SHA256); not shown again (rotate to replace)"
    )


class WebhookSecretOut(BaseModel):
    supplier_id: str
    webhook_secret: str = Field(description="The new secret; the old one no longer signs")
    rotated_at: datetime


class SupplierPage(BaseModel):
    items: list[SupplierOut]
    next_cursor: str | None


# --- supplier items ---------------------------------------------------------------------


class ItemCreate(Strict):
    sku: SkuCode
    supplier_part_number: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    unit_cost: Money
    currency: Currency = "EUR"
    lead_time_days: Annotated[int, Field(ge=0, le=365), NOT_BOOL]
    lead_time_sd_days: Annotated[float, Field(ge=0, le=365), NOT_BOOL] = 0.0
    moq: Quantity = 1
    pack_multiple: Annotated[int, Field(ge=1, le=1_000_000), NOT_BOOL] = 1
    effective_from: date | None = Field(default=None, description="Today when absent")
    effective_to: date | None = Field(default=None, description="Open-ended when absent")
    priority: Annotated[int, Field(ge=0, le=1000), NOT_BOOL] = Field(
        default=100, description="Lower wins when several suppliers sell the SKU"
    )


class ItemUpdate(PatchBody):
    clearable: ClassVar[frozenset[str]] = frozenset({"supplier_part_number", "effective_to"})

    supplier_part_number: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    unit_cost: Money | None = None
    currency: Currency | None = None
    lead_time_days: Annotated[int, Field(ge=0, le=365), NOT_BOOL] | None = None
    lead_time_sd_days: Annotated[float, Field(ge=0, le=365), NOT_BOOL] | None = None
    moq: Quantity | None = None
    pack_multiple: Annotated[int, Field(ge=1, le=1_000_000), NOT_BOOL] | None = None
    effective_from: date | None = None
    effective_to: date | None = None
    priority: Annotated[int, Field(ge=0, le=1000), NOT_BOOL] | None = None


class ItemOut(BaseModel):
    id: str
    supplier_id: str
    sku: str
    supplier_part_number: str | None
    unit_cost: Decimal
    currency: str
    lead_time_days: int
    lead_time_sd_days: float
    moq: int
    pack_multiple: int
    effective_from: date
    effective_to: date | None
    priority: int
    version: int
    created_at: datetime
    updated_at: datetime

    model_config = ConfigDict(from_attributes=True)


class ItemPage(BaseModel):
    items: list[ItemOut]
    next_cursor: str | None


# --- replenishment policies -------------------------------------------------------------


class ReviewMode(StrEnum):
    """Continuous: evaluated on every inventory change; periodic: on the review schedule."""

    CONTINUOUS = "continuous"
    PERIODIC = "periodic"


def _periodic_needs_period(schema: dict[str, Any]) -> None:
    """A periodic policy names its review period (the rule in the schema as well)."""
    schema["if"] = {
        "properties": {"review_mode": {"const": ReviewMode.PERIODIC.value}},
        "required": ["review_mode"],
    }
    schema["then"] = {
        "required": ["review_period_days"],
        "properties": {"review_period_days": {"type": "integer"}},
    }


class PolicyIn(Strict):
    """How one SKU is replenished in one warehouse."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_periodic_needs_period)

    review_mode: ReviewMode = ReviewMode.CONTINUOUS
    service_level: Annotated[float, Field(gt=0.5, le=0.9999), NOT_BOOL] = Field(
        default=0.95, description="Cycle service level: chance of no stock-out per cycle"
    )
    min_qty: Annotated[int, Field(ge=0, le=MAX_QUANTITY), NOT_BOOL] | None = Field(
        default=None, description="Overrides the computed reorder point"
    )
    max_qty: Annotated[int, Field(ge=0, le=MAX_QUANTITY), NOT_BOOL] | None = Field(
        default=None, description="Overrides the computed target; at least `min_qty`"
    )
    horizon_days: Annotated[int, Field(ge=7, le=1095), NOT_BOOL] = Field(
        default=365, description="Days of demand history the forecast uses"
    )
    review_period_days: Annotated[int, Field(ge=1, le=365), NOT_BOOL] | None = Field(
        default=None, description="Required for periodic review"
    )
    order_cost: Money = Field(default=Decimal("0"), description="Cost of one order (EOQ)")
    holding_rate: Annotated[float, Field(ge=0, le=10), NOT_BOOL] = Field(
        default=0.25, description="Annual holding cost as a share of the unit cost"
    )
    auto_approve_limit: Money = Field(
        default=Decimal("0"), description="A PO up to this value is approved automatically"
    )
    ack_timeout_hours: Annotated[int, Field(ge=1, le=720), NOT_BOOL] = 48

    @model_validator(mode="after")
    def _period(self) -> Self:
        if self.review_mode is ReviewMode.PERIODIC and self.review_period_days is None:
            raise ValueError("a periodic policy needs review_period_days")
        return self


class PolicyOut(BaseModel):
    sku: str
    warehouse_id: str
    review_mode: str
    service_level: float
    min_qty: int | None
    max_qty: int | None
    horizon_days: int
    review_period_days: int | None
    order_cost: Decimal
    holding_rate: float
    auto_approve_limit: Decimal
    ack_timeout_hours: int
    version: int
    created_at: datetime
    updated_at: datetime

    model_config = ConfigDict(from_attributes=True)


class PolicyPage(BaseModel):
    items: list[PolicyOut]
    next_cursor: str | None


# --- signals --------------------------------------------------------------------------


class SignalHistoryOut(BaseModel):
    status: str
    at: datetime
    by: str
    note: str | None


class SignalOut(BaseModel):
    """A replenishment signal and the numbers it was raised on."""

    id: str
    supplier_id: str
    supplier_item_id: str
    sku: str
    warehouse_id: str
    status: str
    origin: str
    review_mode: str
    on_hand: int
    reserved: int
    held: int
    backordered: int = Field(description="This pair's share of the SKU's open backorders")
    on_order: int
    position: int
    forecast_method: str
    forecast_daily_mean: float
    forecast_daily_sigma: float
    safety_stock: int
    reorder_point: int
    target: int
    eoq: int
    quantity: int
    need_by: date
    lead_time_days: int
    unit_cost: Decimal
    currency: str
    raised_by: str
    note: str | None
    history: list[SignalHistoryOut]
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class SignalPage(BaseModel):
    items: list[SignalOut]
    next_cursor: str | None


class CancelIn(Strict):
    reason: Text


class PairIn(Strict):
    sku: SkuCode
    warehouse_id: WarehouseId


class ReviewIn(Strict):
    pairs: Annotated[list[PairIn], Field(max_length=1000)] | None = Field(
        default=None,
        description="Only these pairs (any review mode); every periodic one when absent",
    )


class ReviewOut(BaseModel):
    evaluated: int
    skipped: list[PairIn] = Field(description="Pairs without a policy or an effective item")
    raised: list[SignalOut]


class ProposalIn(Strict):
    """A supplier's own replenishment proposal for one of its SKU x warehouse pairs."""

    sku: SkuCode
    warehouse_id: WarehouseId
    quantity: Quantity
    note: Text | None = None


# --- VMI --------------------------------------------------------------------------------


class InventoryRow(BaseModel):
    """One SKU x warehouse of the supplier's items: stock, position, forecast, demand."""

    sku: str
    warehouse_id: str
    on_hand: int
    reserved: int
    held: int
    available: int
    backordered: int = Field(description="This pair's share of the SKU's open backorders")
    on_order: int
    position: int
    has_policy: bool
    forecast_method: str | None
    forecast_daily_mean: float | None
    reorder_point: int | None
    target: int | None
    demand_30d: int
    demand_90d: int
    open_signal_id: str | None
    updated_at: datetime | None


class InventoryOut(BaseModel):
    supplier_id: str
    as_of: date
    items: list[InventoryRow]


# --- webhook deliveries ---------------------------------------------------------------


class DeliveryOut(BaseModel):
    id: str
    signal_id: str
    supplier_id: str
    event_id: str
    url: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
    updated_at: datetime

    model_config = ConfigDict(from_attributes=True)


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None


# --- purchase orders --------------------------------------------------------------------

LOT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$"
LotCode = Annotated[str, Field(pattern=LOT_PATTERN, examples=["L-2024-07"])]


class PoLotIn(Strict):
    """A lot of an ASN or a receipt."""

    lot: LotCode
    expiry: date | None = Field(default=None, description="Not in the past (422 `expiry_in_past`)")
    quantity: Quantity


PoLots = Annotated[list[PoLotIn], Field(min_length=1, max_length=100)]


class PoLotOut(BaseModel):
    lot: str
    expiry: date | None
    quantity: int


class AcknowledgeIn(Strict):
    """The supplier confirms a quantity (at most the ordered one) and a date."""

    quantity: Quantity = Field(
        description="At most the ordered quantity (422 `quantity_exceeds_ordered`)"
    )
    promised_date: date = Field(description="Not in the past (422 `promised_date_in_past`)")
    note: Text | None = None


class AsnIn(Strict):
    """The advance shipping notice: lots adding up to at most the acknowledged quantity
    (422 `asn_exceeds_acknowledged`), each lot once (422 `duplicate_lot`)."""

    lots: PoLots
    shipped_at: datetime | None = Field(default=None, description="Now when absent")
    expected_at: datetime


class ReceiptIn(Strict):
    """Goods received against a PO: at most what is still to come of the ordered quantity
    (422 `quantity_exceeds_ordered`); `complete` says nothing more will come."""

    lots: PoLots
    complete: StrictBool = False


class ReasonIn(Strict):
    reason: Text


class AttentionIn(Strict):
    reason: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")]
    detail: Text | None = None


class PoHistoryOut(BaseModel):
    status: str
    at: datetime
    by: str
    note: str | None


class ReceiptOut(BaseModel):
    receipt_id: str
    lots: list[PoLotOut]
    complete: bool
    received_at: datetime
    received_by: str


class PurchaseOrderOut(BaseModel):
    """A purchase order, its supplier's answers and what was received."""

    id: str
    supplier_id: str
    signal_id: str | None
    sku: str
    warehouse_id: str
    quantity: int
    unit_cost: Decimal
    currency: str
    status: str
    need_by: date | None
    ordered_at: datetime | None
    approved_at: datetime | None
    approved_by: str | None
    acknowledged_at: datetime | None
    quantity_acknowledged: int | None
    promised_date: date | None
    ack_note: str | None
    shipped_at: datetime | None
    expected_at: datetime | None
    asn_lots: list[PoLotOut] | None
    quantity_received: int
    received_at: datetime | None
    closed_at: datetime | None
    shortfall: int | None
    on_time: bool | None
    cancel_reason: str | None
    attention: str | None
    attention_detail: str | None
    ack_timeout_hours: int
    revision: int
    receipts: list[ReceiptOut]
    history: list[PoHistoryOut]
    created_at: datetime
    updated_at: datetime


class PurchaseOrderPage(BaseModel):
    items: list[PurchaseOrderOut]
    next_cursor: str | None


# --- scorecard and vendor returns -----------------------------------------------------


class ScorecardOut(BaseModel):
    """How a supplier performs, over its closed POs (rates None without any)."""

    supplier_id: str
    pos_closed: int
    pos_open: int
    on_time_rate: float | None = Field(
        description="Share received by the promised date (need-by when never acknowledged)"
    )
    fill_rate: float | None = Field(description="Units received / units ordered")
    mean_ack_hours: float | None = Field(description="Ordered to acknowledged, mean hours")
    lead_time_mean_days: float | None = Field(description="Ordered to received, mean days")
    lead_time_sd_days: float | None = Field(description="Sample standard deviation (>= 2 POs)")
    vendor_returns: int
    vendor_returned_units: int


class VendorReturnOut(BaseModel):
    id: str
    supplier_id: str | None
    po_id: str | None
    return_id: str
    sku: str
    warehouse_id: str
    lot: str
    quantity: int
    unit_cost: Decimal | None
    credit_amount: Decimal | None
    currency: str | None
    note: str | None
    created_at: datetime

    model_config = ConfigDict(from_attributes=True)


class VendorReturnPage(BaseModel):
    items: list[VendorReturnOut]
    next_cursor: str | None
