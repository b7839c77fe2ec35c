"""Order service API models."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.common.statuses import OrderStatus


class PingCreate(BaseModel):
    message: str = Field(min_length=1, max_length=500, examples=["hello spine"])


class PingAnswer(BaseModel):
    workflow_id: str = Field(min_length=1, max_length=128)


class PingPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    message: str
    status: str
    trace_id: str | None
    workflow_id: str | None
    created_at: datetime
    answered_at: datetime | None


# --- orders -----------------------------------------------------------------------


class Address(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    line1: str = Field(min_length=1, max_length=200)
    line2: str | None = Field(default=None, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    region: str | None = Field(default=None, max_length=100)
    postal_code: str = Field(min_length=1, max_length=20)
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")


class OrderLineIn(BaseModel):
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0, le=100_000)


class OrderCreate(BaseModel):
    customer_id: str = Field(min_length=1, max_length=64)
    lines: list[OrderLineIn] = Field(min_length=1, max_length=200)
    ship_to: Address


class ReplacementCreate(BaseModel):
    """A free replacement order for a return's goods (the returns service asks)."""

    model_config = ConfigDict(extra="forbid")

    return_id: str = Field(min_length=1, max_length=36)
    original_order_id: str = Field(min_length=1, max_length=64)
    customer_id: str = Field(min_length=1, max_length=64)
    lines: list[OrderLineIn] = Field(min_length=1, max_length=200)


class OrderLinePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    line_no: int
    sku: str
    quantity: int
    unit_price: Decimal


class OrderPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    customer_id: str
    status: OrderStatus
    currency: str
    total: Decimal
    ship_to: dict[str, Any]
    cancel_reason: str | None
    outcome: str | None
    created_at: datetime
    updated_at: datetime
    lines: list[OrderLinePublic]
    replacement_for_return_id: str | None = Field(
        default=None, description="the return whose goods this free order replaces"
    )


class OrderPage(BaseModel):
    items: list[OrderPublic]
    next_cursor: str | None


class CancelRequest(BaseModel):
    reason: str = Field(default="cancelled by request", min_length=1, max_length=500)


class TimelineItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    kind: str
    detail: str
    trace_id: str | None


class TrackingItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    status: str
    occurred_at: str
    location: str | None
    description: str | None


class ShipmentStatusView(BaseModel):
    shipment_id: str
    warehouse_id: str
    carrier: str
    service_level: str
    tracking_number: str
    status: str
    promised_date: str
    eta: str | None
    lots: list[dict[str, Any]]
    events: list[TrackingItem]


class OrderStatusView(BaseModel):
    """The answer to "where is my order?"."""

    order_id: str
    customer_id: str
    status: str
    outcome: str | None
    lines: list[OrderLinePublic]
    shipments: list[ShipmentStatusView]
    timeline: list[TimelineItem]
    workflow: dict[str, Any] | None = None


# --- internal (workflow) requests ---------------------------------------------------


class NoteIn(BaseModel):
    kind: str = Field(min_length=1, max_length=48)
    detail: str = Field(min_length=1, max_length=2000)
    key: str | None = Field(
        default=None, max_length=200, description="makes a repeated request a no-op"
    )


class TaskIn(BaseModel):
    kind: str = Field(min_length=1, max_length=32)
    detail: str = Field(min_length=1, max_length=2000)
    key: str | None = Field(
        default=None, max_length=200, description="opens the task once per order and key"
    )


class AttentionIn(BaseModel):
    reason: str = Field(
        min_length=1, max_length=64, pattern=r"^[a-z0-9_.-]+$", description="a stable code"
    )
    detail: str = Field(min_length=1, max_length=2000)
    key: str = Field(min_length=1, max_length=200, description="makes a repeat a no-op")


class WarehouseRef(BaseModel):
    warehouse_id: str = Field(min_length=1, max_length=32)


class CompleteIn(BaseModel):
    outcome: str = Field(pattern=r"^(delivered|partially_delivered|returned|partially_cancelled)$")
    shipments: dict[str, str] = Field(
        default_factory=dict,
        description="final status per shipment id, as the workflow saw it (informational: the "
        "status page follows the shipment service)",
    )


class TaskPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    order_id: str
    kind: str
    detail: str
    status: str
    created_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None


class TaskPage(BaseModel):
    items: list[TaskPublic]
    next_cursor: str | None


class TaskResolve(BaseModel):
    resolution: str = Field(min_length=1, max_length=2000)
