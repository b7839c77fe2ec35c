"""Statuses that cross process boundaries, each with its sets defined once beside it.

The shipment service alone decides a shipment's status (from its scans) and publishes
it with a `revision` that grows with every change; the order service's read model and
the order workflow apply the status of the highest revision they have seen and never
re-derive it. The order service alone decides an order's status.
"""

from __future__ import annotations

from enum import StrEnum


class ShipmentStatus(StrEnum):
    """A shipment's status: the normalized tracking scale plus `cancelled` (before dispatch)."""

    PENDING = "pending"
    INFO_RECEIVED = "info_received"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    ATTEMPT_FAILED = "attempt_failed"
    AVAILABLE_FOR_PICKUP = "available_for_pickup"
    DELIVERED = "delivered"
    EXCEPTION = "exception"
    RETURNED_TO_SENDER = "returned_to_sender"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


# A shipment in one of these never changes status again.
SHIPMENT_FINAL: frozenset[ShipmentStatus] = frozenset(
    {
        ShipmentStatus.DELIVERED,
        ShipmentStatus.RETURNED_TO_SENDER,
        ShipmentStatus.EXPIRED,
        ShipmentStatus.CANCELLED,
    }
)
# The carrier does not have the parcel yet: the shipment may still be cancelled.
SHIPMENT_NOT_DISPATCHED: frozenset[ShipmentStatus] = frozenset(
    {ShipmentStatus.PENDING, ShipmentStatus.INFO_RECEIVED}
)
# Final statuses whose goods never reached the customer and are back on the shelf.
SHIPMENT_GOODS_BACK: frozenset[ShipmentStatus] = frozenset(
    {ShipmentStatus.RETURNED_TO_SENDER, ShipmentStatus.EXPIRED, ShipmentStatus.CANCELLED}
)


class OrderStatus(StrEnum):
    """An order's lifecycle (rules and transitions: `services/order/orders.py`)."""

    PLACED = "placed"
    CREDIT_HOLD = "credit_hold"
    CONFIRMED = "confirmed"
    BACKORDERED = "backordered"
    SHIPPING = "shipping"
    NEEDS_ATTENTION = "needs_attention"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


ORDER_FINAL: frozenset[OrderStatus] = frozenset({OrderStatus.COMPLETED, OrderStatus.CANCELLED})
ORDER_OPEN: frozenset[OrderStatus] = frozenset(OrderStatus) - ORDER_FINAL


class ReturnStatus(StrEnum):
    """A return's (RMA's) lifecycle; the returns service alone decides it."""

    REQUESTED = "requested"
    AUTHORIZED = "authorized"
    REJECTED = "rejected"
    AWAITING_RECEIPT = "awaiting_receipt"
    RECEIVED = "received"
    INSPECTED = "inspected"
    RESOLVED = "resolved"
    CLOSED = "closed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


RETURN_FINAL: frozenset[ReturnStatus] = frozenset(
    {ReturnStatus.REJECTED, ReturnStatus.CLOSED, ReturnStatus.EXPIRED, ReturnStatus.CANCELLED}
)
RETURN_OPEN: frozenset[ReturnStatus] = frozenset(ReturnStatus) - RETURN_FINAL


class ReturnKind(StrEnum):
    """A customer's own return, or one opened for a recall (no window, no fee)."""

    CUSTOMER = "customer"
    RECALL = "recall"


class Disposition(StrEnum):
    """What happens to a received quantity of one lot."""

    RESTOCK = "restock"
    REFURBISH = "refurbish"
    SCRAP = "scrap"
    RETURN_TO_VENDOR = "return_to_vendor"


class Resolution(StrEnum):
    """How a return is settled with the customer."""

    REFUND = "refund"
    REPLACEMENT = "replacement"
    REPAIR = "repair"
    RETURNED_TO_CUSTOMER = "returned_to_customer"


class LotStatus(StrEnum):
    """A lot's status in the order service's ledger: only `released` stock is reserved
    or picked."""

    RELEASED = "released"
    ON_HOLD = "on_hold"
    QUARANTINED = "quarantined"
    RECALLED = "recalled"


class RecallStatus(StrEnum):
    """A recall campaign's lifecycle."""

    OPEN = "open"  # opened, fan-out (quarantine, trace, notices) under way
    IN_PROGRESS = "in_progress"  # every consignee noticed; following responses and returns
    CLOSED = "closed"


class SignalStatus(StrEnum):
    """A replenishment signal's lifecycle; the supplier service alone decides it."""

    OPEN = "open"  # raised, waiting for a purchase order
    ORDERED = "ordered"  # a purchase order was made from it
    CANCELLED = "cancelled"  # dismissed by a coordinator
    SUPERSEDED = "superseded"  # replaced by a newer signal for the same pair


SIGNAL_FINAL: frozenset[SignalStatus] = frozenset(SignalStatus) - {SignalStatus.OPEN}


class SignalOrigin(StrEnum):
    """Who raised a signal: the replenishment policy, or the supplier's own proposal (VMI)."""

    POLICY = "policy"
    SUPPLIER = "supplier"


class PurchaseOrderStatus(StrEnum):
    """A purchase order's lifecycle at the supplier service."""

    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    ACKNOWLEDGED = "acknowledged"
    SHIPPED = "shipped"
    RECEIVED = "received"
    CLOSED = "closed"
    CANCELLED = "cancelled"


S_PO = PurchaseOrderStatus
# The guarded moves (`services/supplier/purchase_orders.py` applies them). Receipts may
# come before an acknowledgement or an ASN (the goods arrive unannounced); a PO is
# `received` by a complete receipt, or once the quantity expected has come.
PO_TRANSITIONS: dict[PurchaseOrderStatus, frozenset[PurchaseOrderStatus]] = {
    S_PO.PENDING_APPROVAL: frozenset({S_PO.APPROVED, S_PO.CANCELLED}),
    S_PO.APPROVED: frozenset({S_PO.ACKNOWLEDGED, S_PO.RECEIVED, S_PO.CANCELLED}),
    S_PO.ACKNOWLEDGED: frozenset({S_PO.SHIPPED, S_PO.RECEIVED, S_PO.CANCELLED}),
    S_PO.SHIPPED: frozenset({S_PO.RECEIVED}),
    S_PO.RECEIVED: frozenset({S_PO.CLOSED}),
}
# Ordered and not yet received (waiting for approval included): what these still lack
# counts as on order in the inventory position, so neither a PO waiting for approval nor
# one confirmed late ever triggers a second order.
PO_ON_ORDER: frozenset[PurchaseOrderStatus] = frozenset(
    {S_PO.PENDING_APPROVAL, S_PO.APPROVED, S_PO.ACKNOWLEDGED, S_PO.SHIPPED}
)
# Goods may be received against these (partial receipts keep the status).
PO_RECEIVABLE: frozenset[PurchaseOrderStatus] = frozenset(
    {S_PO.APPROVED, S_PO.ACKNOWLEDGED, S_PO.SHIPPED}
)
# A PO in one of these never changes again (its workflow ends). `received` is not final:
# it waits for the close, which records the shortfall.
PO_FINAL: frozenset[PurchaseOrderStatus] = frozenset({S_PO.CLOSED, S_PO.CANCELLED})
