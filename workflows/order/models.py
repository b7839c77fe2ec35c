"""Inputs, outputs, signals and updates of the order-to-delivery workflow (sandbox-safe)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

DISPATCHED_NOT = frozenset({"pending", "info_received", "cancelled"})
TERMINAL = frozenset({"delivered", "returned_to_sender", "expired", "cancelled"})


class Policy(BaseModel):
    """How long the order waits, and what it does when waiting runs out."""

    credit_hold_timeout_seconds: float = 3 * 24 * 3600
    backorder_timeout_seconds: float = 7 * 24 * 3600
    ship_partial_on_backorder_timeout: bool = True


class OrderInput(BaseModel):
    order_id: str
    customer_id: str
    total: str
    policy: Policy = Field(default_factory=Policy)


class OrderSnapshot(BaseModel):
    id: str
    customer_id: str
    status: str
    total: str
    currency: str
    ship_to: dict[str, Any]


class CreditCheckIn(BaseModel):
    order_id: str
    customer_id: str
    amount: str


class CreditDecision(BaseModel):
    decision: str
    reason: str = ""


class NoteIn(BaseModel):
    order_id: str
    kind: str
    detail: str
    key: str | None = None


class Alloc(BaseModel):
    line_no: int | None = None
    sku: str
    warehouse_id: str
    lot: str
    quantity: int


class Reservation(BaseModel):
    status: str
    allocations: list[Alloc]
    missing: list[dict[str, Any]] = []


class WarehouseStep(BaseModel):
    order_id: str
    warehouse_id: str


class ShipmentIn(BaseModel):
    order_id: str
    customer_id: str
    warehouse_id: str
    ship_to: dict[str, Any]
    lots: list[Alloc]


class ShipmentRef(BaseModel):
    shipment_id: str
    warehouse_id: str
    tracking_number: str
    status: str
    latest_at: str = ""


class CancelOrderIn(BaseModel):
    order_id: str
    reason: str


class CompleteIn(BaseModel):
    order_id: str
    outcome: str
    shipments: dict[str, str] = {}


class Signal(BaseModel):
    """A signal forwarded by the bridge; `event_id` lets the workflow drop repeats."""

    event_id: str


class ShipmentSignal(Signal):
    shipment_id: str
    status: str
    occurred_at: str
    description: str | None = None


class CancelIn(BaseModel):
    reason: str = "cancelled by request"


class CancelOut(BaseModel):
    status: str
    cancelled_shipments: list[str] = []
    dispatched_shipments: list[str] = []


class OrderOutcome(BaseModel):
    order_id: str
    status: str
    outcome: str | None = None


class LiveStatus(BaseModel):
    """What the `status` query answers."""

    order_id: str
    step: str
    shipments: list[ShipmentRef]
    exceptions: list[str]
    cancel_reason: str | None
