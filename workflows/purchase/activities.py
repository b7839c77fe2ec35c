"""PurchaseOrder activities: idempotent HTTP calls to the supplier service.

Each answers the PO as the supplier service holds it after the step, so the workflow
decides its next step from the service's state, never from its own copy. The internal
routes are repeat-safe: attention sets the same fields again, close answers a closed PO.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from workflows.purchase.models import AttentionIn, PurchaseOrderState, PurchaseOrderStep
from workflows.services import ServiceClients


def state_of(body: dict[str, Any]) -> PurchaseOrderState:
    """The workflow's slice of a `PurchaseOrderOut` body."""
    return PurchaseOrderState(
        id=str(body["id"]),
        supplier_id=body["supplier_id"],
        status=body["status"],
        ordered_at=body.get("ordered_at"),
        approved_at=body.get("approved_at"),
        acknowledged_at=body.get("acknowledged_at"),
        promised_date=body.get("promised_date"),
        shipped_at=body.get("shipped_at"),
        attention=body.get("attention"),
        ack_timeout_hours=body.get("ack_timeout_hours"),
        revision=body.get("revision") or 0,
    )


class PurchaseOrderActivities:
    def __init__(self, clients: ServiceClients) -> None:
        self.clients = clients

    def all(self) -> list[Callable[..., Any]]:
        return [self.get, self.attention, self.close]

    @activity.defn(name="purchase.get")
    async def get(self, req: PurchaseOrderStep) -> PurchaseOrderState:
        body = await self.clients.call("supplier", "GET", f"/purchase-orders/{req.po_id}")
        return state_of(body)

    @activity.defn(name="purchase.attention")
    async def attention(self, req: AttentionIn) -> PurchaseOrderState:
        """Put the reason on the PO, where a coordinator finds it
        (`GET /purchase-orders?attention=true`)."""
        body = await self.clients.call(
            "supplier",
            "POST",
            f"/internal/purchase-orders/{req.po_id}/attention",
            json={"reason": req.reason[:64], "detail": req.detail[:2000]},
        )
        return state_of(body)

    @activity.defn(name="purchase.close")
    async def close(self, req: PurchaseOrderStep) -> PurchaseOrderState:
        """Close a received PO (promised vs actual, shortfall; the supplier service then
        evaluates the pair again, so a shortfall still needed is signalled anew)."""
        body = await self.clients.call(
            "supplier", "POST", f"/internal/purchase-orders/{req.po_id}/close"
        )
        return state_of(body)
