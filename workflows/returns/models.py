"""Inputs and outputs of the Return workflow (side-effect free: imported by the sandbox)."""

from __future__ import annotations

from pydantic import BaseModel


class ReturnInput(BaseModel):
    """The workflow's argument; the rest carries its state across continue-as-new."""

    return_id: str
    shipment_id: str | None = None  # the return parcel's last status, by revision
    shipment_status: str | None = None
    shipment_revision: int = -1
    shipment_at: str | None = None  # when that status was scanned


class LineState(BaseModel):
    line_no: int
    sku: str
    quantity: int
    received: int  # good + damaged


class LotState(BaseModel):
    line_no: int
    sku: str
    warehouse_id: str
    expected: int


class ReturnState(BaseModel):
    """What the workflow needs of the return as the returns service answers it."""

    id: str
    order_id: str
    customer_id: str
    kind: str
    status: str
    keep_it: bool
    resolution: str | None
    requested_resolution: str | None
    attention: str | None
    warehouse_id: str | None
    return_shipment_id: str | None
    receipt_deadline: str | None
    arrived_at: str | None
    replacement_order_id: str | None
    lines: list[LineState]
    lots: list[LotState]


class ReturnStep(BaseModel):
    return_id: str


class PolicyDecision(BaseModel):
    decision: str  # authorize | reject | review
    reason: str | None


class ArrivedIn(BaseModel):
    return_id: str
    at: str


class ResolveIn(BaseModel):
    return_id: str
    resolution: str


class AttentionIn(BaseModel):
    return_id: str
    reason: str
    detail: str


class VoidIn(BaseModel):
    return_id: str
    shipment_id: str
    reason: str


class ReturnShipmentSignal(BaseModel):
    """The return parcel's status after a scan (or its cancel), with its revision."""

    event_id: str
    shipment_id: str
    status: str
    revision: int
    occurred_at: str | None = None


class ChangedSignal(BaseModel):
    """The return changed at the returns service (`event_type` says how)."""

    event_id: str
    event_type: str
