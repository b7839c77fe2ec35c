"""Return activities: idempotent HTTP calls to the returns, shipment and order services.

Each answers the return as the returns service holds it after the step, so the workflow
decides its next step from the service's state, never from its own copy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.returns.models import (
    ArrivedIn,
    AttentionIn,
    LineState,
    LotState,
    PolicyDecision,
    ResolveIn,
    ReturnState,
    ReturnStep,
    VoidIn,
)
from workflows.services import ServiceClients


def state_of(body: dict[str, Any]) -> ReturnState:
    """The workflow's slice of a `Return` body."""
    return ReturnState(
        id=body["id"],
        order_id=body["order_id"],
        customer_id=body["customer_id"],
        kind=body["kind"],
        status=body["status"],
        keep_it=body["keep_it"],
        resolution=body.get("resolution"),
        requested_resolution=body.get("requested_resolution"),
        attention=body.get("attention"),
        warehouse_id=body.get("warehouse_id"),
        return_shipment_id=body.get("return_shipment_id"),
        receipt_deadline=body.get("receipt_deadline"),
        arrived_at=body.get("arrived_at"),
        replacement_order_id=body.get("replacement_order_id"),
        lines=[
            LineState(
                line_no=line["line_no"],
                sku=line["sku"],
                quantity=line["quantity"],
                received=line["received_good"] + line["received_damaged"],
            )
            for line in body["lines"]
        ],
        lots=[
            LotState(
                line_no=lot["line_no"],
                sku=lot["sku"],
                warehouse_id=lot["warehouse_id"],
                expected=lot["expected"],
            )
            for lot in body["lots"]
        ],
    )


def label_lines(ret: ReturnState) -> list[dict[str, Any]]:
    """What the return label carries: each line's quantity from the return's warehouse.
    Goods go back only where they left from, so a return whose lots left from several
    warehouses cannot travel on one label (non-retryable: a coordinator decides)."""
    if ret.warehouse_id is None:
        raise ApplicationError(
            f"return {ret.id} names no warehouse", type="no_warehouse", non_retryable=True
        )
    elsewhere = sorted({lot.warehouse_id for lot in ret.lots} - {ret.warehouse_id})
    if elsewhere:
        raise ApplicationError(
            f"return {ret.id}: goods left from {ret.warehouse_id} and {', '.join(elsewhere)}; "
            "one label goes to one warehouse: receive them by hand or cancel",
            type="several_warehouses",
            non_retryable=True,
        )
    quantities: dict[int, int] = {}
    for lot in ret.lots:
        quantities[lot.line_no] = quantities.get(lot.line_no, 0) + lot.expected
    if not ret.lots:
        quantities = {line.line_no: line.quantity for line in ret.lines}
    skus = {line.line_no: line.sku for line in ret.lines}
    return [
        {"line_no": n, "sku": skus[n], "quantity": q}
        for n, q in sorted(quantities.items())
        if q > 0 and n in skus
    ]


def replacement_lines(ret: ReturnState) -> list[dict[str, Any]]:
    """What a replacement order ships: the requested quantity of a keep-it return, else
    what came back (good or damaged), one line per SKU."""
    per_sku: dict[str, int] = {}
    for line in ret.lines:
        quantity = line.quantity if ret.keep_it else line.received
        if quantity > 0:
            per_sku[line.sku] = per_sku.get(line.sku, 0) + quantity
    if not per_sku:
        raise ApplicationError(
            f"return {ret.id}: nothing came back to replace",
            type="nothing_to_replace",
            non_retryable=True,
        )
    return [{"sku": sku, "quantity": q} for sku, q in sorted(per_sku.items())]


class ReturnActivities:
    def __init__(self, clients: ServiceClients) -> None:
        self.clients = clients

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.get,
            self.policy_check,
            self.label,
            self.arrived,
            self.expire,
            self.dispose,
            self.refund,
            self.replace,
            self.resolve,
            self.close,
            self.attention,
            self.void_label,
        ]

    async def _returns(self, return_id: str, step: str, body: Any = None) -> ReturnState:
        out = await self.clients.call(
            "returns", "POST", f"/internal/returns/{return_id}/{step}", json=body
        )
        return state_of(out)

    @activity.defn(name="returns.get")
    async def get(self, req: ReturnStep) -> ReturnState:
        return state_of(await self.clients.call("returns", "GET", f"/returns/{req.return_id}"))

    @activity.defn(name="returns.policy_check")
    async def policy_check(self, req: ReturnStep) -> PolicyDecision:
        """The policy's decision, applied once by the returns service (a repeat answers
        the first decision)."""
        out = await self.clients.call(
            "returns", "POST", f"/internal/returns/{req.return_id}/policy-check"
        )
        return PolicyDecision(decision=out["decision"], reason=out.get("reason"))

    @activity.defn(name="returns.label")
    async def label(self, ret: ReturnState) -> ReturnState:
        """Buy the return label at the shipment service (one live return shipment per
        return: a repeat answers the same one) and record it on the return."""
        shipment = await self.clients.call(
            "shipment",
            "POST",
            "/return-shipments",
            json={
                "return_id": ret.id,
                "order_id": ret.order_id,
                "customer_id": ret.customer_id,
                "warehouse_id": ret.warehouse_id,
                "lines": label_lines(ret),
            },
            headers={"Idempotency-Key": f"return-label-{ret.id}"},
        )
        return await self._returns(
            ret.id,
            "label",
            {
                "return_shipment_id": shipment["id"],
                "carrier": shipment["carrier"],
                "tracking_number": shipment["tracking_number"],
                "label_url": shipment.get("label_url"),
                "warehouse_id": shipment["warehouse_id"],
            },
        )

    @activity.defn(name="returns.arrived")
    async def arrived(self, req: ArrivedIn) -> ReturnState:
        return await self._returns(req.return_id, "arrived", {"at": req.at})

    @activity.defn(name="returns.expire")
    async def expire(self, req: ReturnStep) -> ReturnState:
        return await self._returns(req.return_id, "expire")

    @activity.defn(name="returns.dispose")
    async def dispose(self, req: ReturnStep) -> ReturnState:
        return await self._returns(req.return_id, "dispose")

    @activity.defn(name="returns.refund")
    async def refund(self, req: ReturnStep) -> ReturnState:
        return await self._returns(req.return_id, "refund")

    @activity.defn(name="returns.replace")
    async def replace(self, ret: ReturnState) -> ReturnState:
        """Place the free replacement order (one per return at the order service, which
        runs it through order-to-delivery) and link it to the return."""
        order_id = ret.replacement_order_id
        if order_id is None:
            order = await self.clients.call(
                "order",
                "POST",
                "/internal/replacements",
                json={
                    "return_id": ret.id,
                    "original_order_id": ret.order_id,
                    "customer_id": ret.customer_id,
                    "lines": replacement_lines(ret),
                },
                headers={"Idempotency-Key": f"replacement-{ret.id}"},
            )
            order_id = str(order["id"])
        return await self._returns(ret.id, "replacement", {"order_id": order_id})

    @activity.defn(name="returns.resolve")
    async def resolve(self, req: ResolveIn) -> ReturnState:
        return await self._returns(req.return_id, "resolve", {"resolution": req.resolution})

    @activity.defn(name="returns.close")
    async def close(self, req: ReturnStep) -> ReturnState:
        return await self._returns(req.return_id, "close")

    @activity.defn(name="returns.attention")
    async def attention(self, req: AttentionIn) -> ReturnState:
        return await self._returns(
            req.return_id, "attention", {"reason": req.reason[:64], "detail": req.detail[:2000]}
        )

    @activity.defn(name="returns.void_label")
    async def void_label(self, req: VoidIn) -> bool:
        """Void the label of a return that ended before its parcel left; False when the
        carrier has the parcel already (it still arrives, and is received by hand)."""
        try:
            await self.clients.call(
                "shipment",
                "POST",
                f"/return-shipments/{req.shipment_id}/cancel",
                json={"reason": req.reason[:500]},
            )
        except ApplicationError as exc:
            if exc.type in ("already_dispatched", "invalid_transition"):
                return False
            raise
        return True
