"""Inputs, outputs, signals and updates of the order-to-delivery workflow (sandbox-safe)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


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


class AttentionIn(BaseModel):
    """The order needs a coordinator: `reason` is a stable code, `detail` says why, and
    `key` makes a re-run of the step open no second task."""

    order_id: str
    reason: str
    detail: str
    key: str


class Alloc(BaseModel):
    line_no: int | None = None
    sku: str
    warehouse_id: str
    lot: str
    quantity: int
    unit_weight_grams: int | None = None


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
    # 0 for the first try; each retry after a needs-attention stop ships under a new key.
    attempt: int = 0


class ShipmentRef(BaseModel):
    shipment_id: str
    warehouse_id: str
    tracking_number: str
    status: str
    latest_at: str = ""  # followed only by runs from before revisions
    revision: int = 0  # the highest shipment-service revision applied


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
    """The shipment service's status of one shipment; `revision` grows with every change
    it publishes (0: published before revisions)."""

    shipment_id: str
    status: str
    occurred_at: str = ""
    description: str | None = None
    revision: int = 0


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
    attention: AttentionIn | None = None
