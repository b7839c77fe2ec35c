"""Recall API models: opening a campaign, consignees, responses, the status report, and
the trace pages the Recall workflow hands in (`/internal/recalls/...`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from services.common.numbers import NOT_BOOL
from services.common.statuses import RecallStatus

# The order service's codes (services/order/stock_schemas.py), restated: the returns
# service does not import another service's modules.
SKU_PATTERN = r"^[A-Z0-9][A-Z0-9._-]{1,63}$"
LOT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$"
MAX_QUANTITY = 1_000_000_000

SkuCode = Annotated[str, Field(pattern=SKU_PATTERN, examples=["CHAI-500G"])]
LotCode = Annotated[str, Field(pattern=LOT_PATTERN, examples=["L2025-031"])]
Id64 = Annotated[str, Field(min_length=1, max_length=64)]


class HazardClass(StrEnum):
    """The health hazard: I (serious harm likely) to III (harm unlikely)."""

    I = "I"  # noqa: E741 - the regulator's name for the class
    II = "II"
    III = "III"


class Depth(StrEnum):
    """Effectiveness-check depth: A every consignee is checked ... E none."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"
    E = "E"


class Action(StrEnum):
    """What a consignee answers it does with the recalled goods it has."""

    RETURNING = "returning"
    DESTROYED = "destroyed"
    NONE_ON_HAND = "none_on_hand"


class RecallCreate(BaseModel):
    sku: SkuCode
    lots: list[LotCode] = Field(
        min_length=1, max_length=50, json_schema_extra={"uniqueItems": True}
    )
    reason: str = Field(min_length=1, max_length=500)
    instructions: str = Field(min_length=1, max_length=2000)
    hazard_class: HazardClass
    depth: Depth
    effectiveness_target: float | None = Field(
        default=None,
        strict=True,
        gt=0,
        le=100,
        description="Percent of the shipped quantity accounted for at which the recall "
        "closes itself; default by depth (A 100, B 50, C 10, D 2, E none: only a "
        "coordinator closes it)",
    )

    @field_validator("lots")
    @classmethod
    def _distinct(cls, lots: list[str]) -> list[str]:
        if len(set(lots)) != len(lots):
            raise ValueError("lots must be distinct")
        return lots


class RecallPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    sku: str
    lots: list[str]
    reason: str
    instructions: str
    hazard_class: str
    depth: str
    effectiveness_target: Decimal | None
    status: RecallStatus
    opened_by: str
    attention: str | None
    fanned_out_at: datetime | None
    report_at: datetime | None
    closed_by: str | None
    close_reason: str | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class RecallPage(BaseModel):
    items: list[RecallPublic]
    next_cursor: str | None


class ConsigneePublic(BaseModel):
    """One row of the consignees table."""

    customer_id: str
    order_id: str
    shipment_id: str
    return_id: str
    quantity_shipped: int
    notice_issued_at: datetime | None
    notified_at: datetime | None
    notice_method: str | None
    responded_at: datetime | None
    action: Action | None
    quantity_on_hand: int | None
    returned: int
    corrected_or_destroyed: int
    outstanding: int


class ConsigneePage(BaseModel):
    items: list[ConsigneePublic]
    next_cursor: str | None


class ResponseIn(BaseModel):
    action: Action
    quantity_on_hand: Annotated[int, NOT_BOOL] = Field(ge=0, le=MAX_QUANTITY)
    order_id: Id64 | None = Field(
        default=None, description="Which of the customer's orders; needed when it has several"
    )


class CloseIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class Quantities(BaseModel):
    shipped: int
    on_hand_at_response: int
    returned: int
    corrected_or_destroyed: int
    outstanding: int


class Report(BaseModel):
    """A recall status report: what a regulator asks for."""

    recall_id: str
    status: RecallStatus
    generated_at: datetime
    consignees: int
    customers: int
    noticed: int  # notices issued
    notified: int  # notices the customer service reports sent
    notified_first_at: datetime | None
    notified_last_at: datetime | None
    notified_by_method: dict[str, int]
    responded: int
    not_responded: int
    responses: dict[str, int]
    quantities: Quantities
    effectiveness: Decimal
    effectiveness_target: Decimal | None
    target_met: bool


# --- internal: the Recall workflow's steps ------------------------------------------


class TracedLine(BaseModel):
    """One consignee line of the order service's forward trace (`forward.consignees`)."""

    model_config = ConfigDict(extra="ignore")

    customer_id: Id64
    order_id: Id64
    shipment_id: str = Field(min_length=1, max_length=36)
    warehouse_id: str = Field(min_length=1, max_length=32)
    sku: SkuCode
    line_no: Annotated[int, NOT_BOOL] = Field(ge=1, le=2_147_483_647)
    quantity: Annotated[int, NOT_BOOL] = Field(ge=0, le=MAX_QUANTITY)
    issued_at: datetime | None = None
    shipment_status: str | None = Field(default=None, max_length=32)
    dispatched: StrictBool = True

    @field_validator("issued_at", mode="before")
    @classmethod
    def _iso_text(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str | datetime):
            raise ValueError("issued_at is an ISO 8601 date-time string")
        return value


class TracePageIn(BaseModel):
    lot: LotCode
    consignees: list[TracedLine] = Field(max_length=1000)


class TracePageOut(BaseModel):
    lines_new: int
    consignees_created: int
    notices_issued: int


class AttentionIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


def recall_public(recall: Any) -> dict[str, Any]:
    return RecallPublic.model_validate(recall).model_dump(mode="json")
