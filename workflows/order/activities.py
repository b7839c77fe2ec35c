"""Order-to-delivery activities: short, idempotent HTTP calls to the services.

Each is keyed by the order (and warehouse) so a retry or replay changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from services.common.workflow_names import OrderWorkflow
from workflows.order.models import (
    Alloc,
    AttentionIn,
    CancelOrderIn,
    CompleteIn,
    CreditCheckIn,
    CreditDecision,
    NoteIn,
    OrderSnapshot,
    Reservation,
    ShipmentIn,
    ShipmentRef,
    WarehouseStep,
)
from workflows.services import ServiceClients


class OrderActivities:
    def __init__(self, clients: ServiceClients) -> None:
        self.clients = clients

    @activity.defn(name="order.get")
    async def get_order(self, order_id: str) -> OrderSnapshot:
        return OrderSnapshot.model_validate(
            await self.clients.call("order", "GET", f"/orders/{order_id}")
        )

    @activity.defn(name="customer.credit_check")
    async def credit_check(self, req: CreditCheckIn) -> CreditDecision:
        body = await self.clients.call(
            "customer",
            "POST",
            f"/customers/{req.customer_id}/credit-checks",
            json={"order_id": req.order_id, "amount": req.amount},
        )
        return CreditDecision.model_validate(body)

    @activity.defn(name="order.credit_hold")
    async def credit_hold(self, req: NoteIn) -> None:
        await self.clients.call(
            "order",
            "POST",
            f"/internal/orders/{req.order_id}/credit-hold",
            json={"kind": req.kind, "detail": req.detail},
        )

    @activity.defn(name="order.reserve")
    async def reserve(self, order_id: str) -> Reservation:
        return Reservation.model_validate(
            await self.clients.call("order", "POST", f"/internal/orders/{order_id}/reserve")
        )

    @activity.defn(name="order.drop_backorders")
    async def drop_backorders(self, order_id: str) -> Reservation:
        return Reservation.model_validate(
            await self.clients.call("order", "POST", f"/internal/orders/{order_id}/drop-backorders")
        )

    @activity.defn(name="order.issue")
    async def issue(self, req: WarehouseStep) -> list[Alloc]:
        body = await self.clients.call(
            "order",
            "POST",
            f"/internal/orders/{req.order_id}/issue",
            json={"warehouse_id": req.warehouse_id},
        )
        return [Alloc.model_validate(a) for a in body]

    @activity.defn(name="order.unissue")
    async def unissue(self, req: WarehouseStep) -> None:
        await self.clients.call(
            "order",
            "POST",
            f"/internal/orders/{req.order_id}/unissue",
            json={"warehouse_id": req.warehouse_id},
        )

    @activity.defn(name="order.restock")
    async def restock(self, req: WarehouseStep) -> None:
        await self.clients.call(
            "order",
            "POST",
            f"/internal/orders/{req.order_id}/restock",
            json={"warehouse_id": req.warehouse_id},
        )

    @activity.defn(name="shipment.create")
    async def create_shipment(self, req: ShipmentIn) -> ShipmentRef:
        key = f"{OrderWorkflow.id(req.order_id)}-{req.warehouse_id}"
        if req.attempt:
            key += f"-{req.attempt}"  # the first try's shipment was cancelled
        body = await self.clients.call(
            "shipment",
            "POST",
            "/shipments",
            json={
                "order_id": req.order_id,
                "customer_id": req.customer_id,
                "warehouse_id": req.warehouse_id,
                "ship_to": req.ship_to,
                "lines": shipment_lines(req.lots),
            },
            headers={"Idempotency-Key": key},
        )
        return ShipmentRef(
            shipment_id=body["id"],
            warehouse_id=req.warehouse_id,
            tracking_number=body["tracking_number"],
            status=body["status"],
        )

    @activity.defn(name="shipment.cancel")
    async def cancel_shipment(self, shipment_id: str) -> bool:
        """True when cancelled; False when the carrier already has it."""
        try:
            await self.clients.call("shipment", "POST", f"/shipments/{shipment_id}/cancel")
        except ApplicationError as exc:
            if exc.type == "already_dispatched":
                return False
            raise
        return True

    @activity.defn(name="order.cancel")
    async def cancel_order(self, req: CancelOrderIn) -> None:
        await self.clients.call(
            "order", "POST", f"/internal/orders/{req.order_id}/cancel", json={"reason": req.reason}
        )

    @activity.defn(name="order.complete")
    async def complete_order(self, req: CompleteIn) -> None:
        await self.clients.call(
            "order",
            "POST",
            f"/internal/orders/{req.order_id}/complete",
            json={"outcome": req.outcome, "shipments": req.shipments},
        )

    @activity.defn(name="order.note")
    async def note(self, req: NoteIn) -> None:
        await self.clients.call(
            "order",
            "POST",
            f"/internal/orders/{req.order_id}/notes",
            json={"kind": req.kind, "detail": req.detail},
        )

    @activity.defn(name="order.open_task")
    async def open_task(self, req: NoteIn) -> None:
        await self.clients.call(
            "order",
            "POST",
            f"/internal/orders/{req.order_id}/tasks",
            json={"kind": req.kind, "detail": req.detail, "key": req.key},
        )

    @activity.defn(name="order.needs_attention")
    async def needs_attention(self, req: AttentionIn) -> None:
        """Release what the order still holds, mark it, open the coordinator's task."""
        await self.clients.call(
            "order",
            "POST",
            f"/internal/orders/{req.order_id}/attention",
            json={"reason": req.reason, "detail": req.detail, "key": req.key},
        )

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.get_order,
            self.credit_check,
            self.credit_hold,
            self.reserve,
            self.drop_backorders,
            self.issue,
            self.unissue,
            self.restock,
            self.create_shipment,
            self.cancel_shipment,
            self.cancel_order,
            self.complete_order,
            self.note,
            self.open_task,
            self.needs_attention,
        ]


def shipment_lines(lots: list[Alloc]) -> list[dict[str, Any]]:
    """The picked lots as shipment lines: one per order line, with the SKU's unit weight
    (from the catalogue, via the pick) so packing and labels use it."""
    lines: dict[int, dict[str, Any]] = {}
    for lot in lots:
        line_no = lot.line_no or 0
        line = lines.setdefault(
            line_no, {"line_no": line_no, "sku": lot.sku, "quantity": 0, "lots": []}
        )
        line["quantity"] += lot.quantity
        line["lots"].append({"lot": lot.lot, "quantity": lot.quantity})
        if lot.unit_weight_grams is not None:
            line["unit_weight_grams"] = lot.unit_weight_grams
    return [lines[k] for k in sorted(lines)]
