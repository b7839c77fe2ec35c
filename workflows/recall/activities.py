"""Recall activities: idempotent HTTP calls to the order, shipment and returns services.

`trace_page` is the fan-out's unit: it reads one page of a lot's forward trace, stops the
page's shipments that are not dispatched yet, and hands the page to the returns service,
which records it in one transaction (a page handed in twice creates nothing twice). Only
the next cursor and counts go back into the workflow's history.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from services.common.statuses import LotStatus, ShipmentStatus
from workflows.recall.models import (
    AttentionIn,
    CloseIn,
    LotStatusIn,
    RecallStep,
    ReportOut,
    TracePageIn,
    TracePageOut,
)
from workflows.services import ServiceClients

CANCEL_CONCURRENCY = 16


class RecallActivities:
    def __init__(self, clients: ServiceClients) -> None:
        self.clients = clients

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.quarantine_lot,
            self.trace_page,
            self.fanned_out,
            self.publish_report,
            self.close,
            self.attention,
        ]

    @activity.defn(name="recall.quarantine_lot")
    async def quarantine_lot(self, req: LotStatusIn) -> bool:
        """Mark the lot `recalled` in the ledger (same status again changes nothing);
        False when no SKU has that lot."""
        try:
            await self.clients.call(
                "order",
                "POST",
                f"/stock/lots/{req.sku}/{req.lot}/status",
                json={
                    "status": LotStatus.RECALLED.value,
                    "reason": f"recall {req.recall_id}: {req.reason}"[:500],
                    "recall_id": req.recall_id,
                },
            )
        except ApplicationError as exc:
            if exc.type == "not_found":
                return False
            raise
        return True

    async def _cancel(self, shipment_id: str, recall_id: str) -> bool:
        """Stop an undispatched shipment; False when the carrier has it already."""
        try:
            body = await self.clients.call(
                "shipment",
                "POST",
                f"/shipments/{shipment_id}/cancel",
                json={"reason": f"recall {recall_id}"},
            )
        except ApplicationError as exc:
            if exc.type == "already_dispatched":
                return False
            raise
        return bool(body and body.get("status") == ShipmentStatus.CANCELLED)

    @activity.defn(name="recall.trace_page")
    async def trace_page(self, req: TracePageIn) -> TracePageOut:
        params: dict[str, Any] = {"sku": req.sku, "limit": req.limit}
        if req.cursor:
            params["cursor"] = req.cursor
        try:
            page = await self.clients.call(
                "order", "GET", f"/traceability/lots/{req.lot}", params=params
            )
        except ApplicationError as exc:
            if exc.type == "not_found":
                return TracePageOut(
                    next_cursor=None,
                    lines=0,
                    consignees_created=0,
                    shipments_cancelled=0,
                    lot_unknown=True,
                )
            raise
        forward = page["forward"]
        lines: list[dict[str, Any]] = [dict(c) for c in forward["consignees"]]
        undispatched = sorted({c["shipment_id"] for c in lines if not c.get("dispatched", True)})
        limit = asyncio.Semaphore(CANCEL_CONCURRENCY)

        async def cancel(shipment_id: str) -> tuple[str, bool]:
            async with limit:
                return shipment_id, await self._cancel(shipment_id, req.recall_id)

        cancelled = {s for s, ok in await asyncio.gather(*map(cancel, undispatched)) if ok}
        for line in lines:
            if line["shipment_id"] in cancelled:
                line["shipment_status"] = ShipmentStatus.CANCELLED.value
            elif line["shipment_id"] in undispatched:
                line["dispatched"] = True  # the carrier took it meanwhile: a consignee
        out = await self.clients.call(
            "returns",
            "POST",
            f"/internal/recalls/{req.recall_id}/trace-pages",
            json={"lot": req.lot, "consignees": lines},
        )
        return TracePageOut(
            next_cursor=forward.get("next_cursor"),
            lines=len(lines),
            consignees_created=out["consignees_created"],
            shipments_cancelled=len(cancelled),
        )

    @activity.defn(name="recall.fanned_out")
    async def fanned_out(self, req: RecallStep) -> None:
        await self.clients.call("returns", "POST", f"/internal/recalls/{req.recall_id}/fanned-out")

    @activity.defn(name="recall.publish_report")
    async def publish_report(self, req: RecallStep) -> ReportOut:
        body = await self.clients.call(
            "returns", "POST", f"/internal/recalls/{req.recall_id}/report"
        )
        return ReportOut(
            status=body["status"],
            effectiveness=str(body["effectiveness"]),
            target_met=body["target_met"],
        )

    @activity.defn(name="recall.close")
    async def close(self, req: CloseIn) -> None:
        await self.clients.call(
            "returns", "POST", f"/recalls/{req.recall_id}/close", json={"reason": req.reason}
        )

    @activity.defn(name="recall.attention")
    async def attention(self, req: AttentionIn) -> None:
        await self.clients.call(
            "returns",
            "POST",
            f"/internal/recalls/{req.recall_id}/attention",
            json={"reason": req.reason[:2000]},
        )
