"""Inputs and outputs of the Recall workflow (side-effect free: imported by the sandbox)."""

from __future__ import annotations

from pydantic import BaseModel


class RecallInput(BaseModel):
    """The workflow's argument; `phase`, `lot_index` and `cursor` carry the progress
    across continue-as-new."""

    recall_id: str
    sku: str
    lots: list[str]
    reason: str
    report_interval_seconds: float = 3600.0
    page_size: int = 500
    history_limit: int = 5000  # events before continuing as new (Temporal's limit: 51,200)
    phase: str = "quarantine"  # quarantine | trace | follow
    lot_index: int = 0
    cursor: str | None = None
    traced: int = 0  # consignees created so far
    seen: list[str] = []  # signal event ids already applied (the last few)


class LotStatusIn(BaseModel):
    recall_id: str
    sku: str
    lot: str
    reason: str


class TracePageIn(BaseModel):
    recall_id: str
    sku: str
    lot: str
    cursor: str | None
    limit: int


class TracePageOut(BaseModel):
    next_cursor: str | None
    lines: int
    consignees_created: int
    shipments_cancelled: int
    lot_unknown: bool = False


class RecallStep(BaseModel):
    recall_id: str


class AttentionIn(BaseModel):
    recall_id: str
    reason: str


class CloseIn(BaseModel):
    recall_id: str
    reason: str


class ReportOut(BaseModel):
    status: str
    effectiveness: str
    target_met: bool


class RecallSignal(BaseModel):
    event_id: str
