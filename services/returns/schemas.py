"""Returns service API models (RMA): requests, the `Return` body, policies."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from services.common.money import Money
from services.common.numbers import NOT_BOOL
from services.common.statuses import Disposition, Resolution

Ref = Annotated[str, Field(min_length=1, max_length=64)]
Note = Annotated[str, Field(min_length=1, max_length=500)]
LineNo = Annotated[int, Field(ge=1, le=10_000), NOT_BOOL]
Quantity = Annotated[int, Field(ge=0, le=1_000_000), NOT_BOOL]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReturnLineIn(Strict):
    line_no: LineNo
    quantity: Annotated[int, Field(ge=1, le=1_000_000), NOT_BOOL]


class ReturnCreate(Strict):
    order_id: Ref
    customer_id: Ref | None = Field(
        default=None, description="Required for a coordinator; a customer's token implies it"
    )
    reason: Annotated[str, Field(min_length=1, max_length=32)]
    reason_detail: Annotated[str, Field(max_length=2000)] | None = None
    condition: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    requested_resolution: Literal["refund", "replacement"] = "refund"
    lines: Annotated[list[ReturnLineIn], Field(min_length=1, max_length=200)]


class NoteIn(Strict):
    note: Note | None = None


class ReasonIn(Strict):
    reason: Note


class ReceivedLotIn(Strict):
    line_no: LineNo
    lot: Ref
    good: Quantity
    damaged: Quantity


class ReceiptIn(Strict):
    lots: Annotated[list[ReceivedLotIn], Field(max_length=500)]


class InspectedLotIn(Strict):
    line_no: LineNo
    lot: Ref
    disposition: Disposition
    reason: Note | None = None


class InspectionIn(Strict):
    lots: Annotated[list[InspectedLotIn], Field(max_length=500)]
    resolution: Resolution | None = None


class LabelIn(Strict):
    return_shipment_id: Annotated[str, Field(min_length=1, max_length=36)]
    carrier: Annotated[str, Field(min_length=1, max_length=32)]
    tracking_number: Ref
    label_url: Annotated[str, Field(max_length=2000)] | None = None
    warehouse_id: Annotated[str, Field(min_length=1, max_length=32)]


class ArrivedIn(Strict):
    at: datetime


class ReplacementIn(Strict):
    order_id: Ref


class ResolveIn(Strict):
    resolution: Literal["repair", "returned_to_customer"]


class AttentionIn(Strict):
    reason: Annotated[str, Field(min_length=1, max_length=64)]
    detail: Annotated[str, Field(max_length=2000)] | None = None


class PolicyRef(BaseModel):
    id: str
    receipt_timeout_days: int
    auto_authorize: bool


class ReturnLineOut(BaseModel):
    line_no: int
    sku: str
    quantity: int
    unit_price: Decimal
    received_good: int
    received_damaged: int
    refund_amount: Decimal


class ReturnLotOut(BaseModel):
    line_no: int
    lot: str
    sku: str
    warehouse_id: str
    expected: int
    good: int
    damaged: int
    disposition: str | None
    disposition_reason: str | None


class HistoryOut(BaseModel):
    status: str
    at: datetime
    by: str
    note: str | None


class ReturnOut(BaseModel):
    """One return (RMA) with its lines, lots and history."""

    id: str
    order_id: str
    customer_id: str
    kind: str
    recall_id: str | None
    status: str
    reason: str
    reason_detail: str | None
    condition: str | None
    requested_resolution: str | None
    resolution: str | None
    keep_it: bool
    currency: str
    refund_total: Decimal
    restocking_fee: Decimal
    warehouse_id: str | None
    return_shipment_id: str | None
    carrier: str | None
    tracking_number: str | None
    label_url: str | None
    receipt_deadline: datetime | None
    arrived_at: datetime | None
    replacement_order_id: str | None
    attention: str | None = Field(default=None, description="Staff only: a step failed for good")
    attention_detail: str | None = Field(default=None, description="Staff only: what failed")
    policy: PolicyRef | None
    lines: list[ReturnLineOut]
    lots: list[ReturnLotOut]
    history: list[HistoryOut]
    revision: int
    created_at: datetime
    updated_at: datetime


class ReturnPage(BaseModel):
    items: list[ReturnOut]
    next_cursor: str | None


class PolicyCheckOut(BaseModel):
    decision: Literal["authorize", "reject", "review"]
    reason: str | None
    keep_it: bool
    return_: ReturnOut = Field(alias="return", serialization_alias="return")

    model_config = ConfigDict(populate_by_name=True)


ReasonCode = Literal["damaged", "defective", "wrong_item", "not_as_described", "no_longer_needed"]


class PolicyIn(Strict):
    """A return policy (for `category`; None only for the seeded default)."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    category: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    window_days: Annotated[int, Field(ge=0, le=3650), NOT_BOOL]
    allowed_reasons: Annotated[list[ReasonCode], Field(max_length=10)]
    required_condition: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    restocking_fee_kind: Literal["none", "fixed", "percent"] = "none"
    restocking_fee_value: Money = Decimal("0")
    return_shipping_paid_by: Literal["merchant", "customer"] = "merchant"
    keep_it_threshold: Money = Decimal("0")
    receipt_timeout_days: Annotated[int, Field(ge=1, le=365), NOT_BOOL] = 14
    auto_authorize: StrictBool = True


class PolicyCreate(PolicyIn):
    """A new policy, always for a category (the default is seeded)."""

    category: Annotated[str, Field(min_length=1, max_length=64)]
    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class PolicyOut(BaseModel):
    id: str
    name: str
    category: str | None
    window_days: int
    allowed_reasons: list[str]
    required_condition: str | None
    restocking_fee_kind: str
    restocking_fee_value: Decimal
    return_shipping_paid_by: str
    keep_it_threshold: Decimal
    receipt_timeout_days: int
    auto_authorize: bool
    version: int
    created_at: datetime
    updated_at: datetime

    model_config = ConfigDict(from_attributes=True)


class PolicyPage(BaseModel):
    items: list[PolicyOut]
