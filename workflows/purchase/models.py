"""Inputs and outputs of the PurchaseOrder workflow (side-effect free: imported by the
sandbox)."""

from __future__ import annotations

from pydantic import BaseModel


class PurchaseOrderInput(BaseModel):
    """The workflow's argument; the flags carry what was escalated across continue-as-new."""

    po_id: str
    ack_timeout_hours: float = 48.0
    ack_escalated: bool = False
    asn_escalated: bool = False


class PurchaseOrderState(BaseModel):
    """What the workflow needs of a PO as the supplier service answers it."""

    id: str
    supplier_id: str
    status: str
    ordered_at: str | None = None
    approved_at: str | None = None
    acknowledged_at: str | None = None
    promised_date: str | None = None  # ISO date
    shipped_at: str | None = None
    attention: str | None = None
    ack_timeout_hours: float | None = None
    revision: int = 0


class PurchaseOrderStep(BaseModel):
    po_id: str


class AttentionIn(BaseModel):
    po_id: str
    reason: str
    detail: str


class ChangedSignal(BaseModel):
    """The PO changed at the supplier service (the event's id; `event_type` says how)."""

    event_id: str
    event_type: str = ""
