"""The typed catalogue of every event Waybill publishes: one place, versioned types.

Subjects are `<domain>.<entity>.<past_tense>`; the CloudEvents `type` adds a version
suffix (`order.ping.requested.v1`) that changes only when a payload changes
incompatibly. Payloads ignore unknown fields, so adding a field is compatible.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from services.common.envelope import Envelope, subject_of

DOMAINS = ("customer", "order", "shipment", "returns", "supplier")
DEADLETTER_STREAM = "DEADLETTER"
DEADLETTER_PREFIX = "deadletter"


def stream_name(domain: str) -> str:
    return domain.upper()


class Event(BaseModel):
    """Base of every event payload; subclasses set TYPE (with version suffix)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    TYPE: ClassVar[str]

    @classmethod
    def subject(cls) -> str:
        return subject_of(cls.TYPE)

    @classmethod
    def domain(cls) -> str:
        return cls.TYPE.split(".", 1)[0]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        event_type = cls.__dict__.get("TYPE")
        if event_type:
            if event_type in CATALOGUE:
                raise TypeError(f"event type {event_type} registered twice")
            if event_type.split(".", 1)[0] not in DOMAINS:
                raise TypeError(f"event type {event_type} has no known domain")
            CATALOGUE[event_type] = cls


CATALOGUE: dict[str, type[Event]] = {}


def parse(envelope: Envelope) -> Event:
    """The typed payload of an envelope; KeyError for a type not in the catalogue."""
    return CATALOGUE[envelope.type].model_validate(envelope.data)


# --- order: diagnostics ---------------------------------------------------------


class PingRequested(Event):
    """An operator asked for a round trip through NATS, the bridge and Temporal."""

    TYPE = "order.ping.requested.v1"
    ping_id: str
    message: str


class PingAnswered(Event):
    """The ping workflow called back: the whole spine works."""

    TYPE = "order.ping.answered.v1"
    ping_id: str
    workflow_id: str


# --- shared payload parts ---------------------------------------------------------


class OrderLineRef(BaseModel):
    """One order line as events carry it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    line_no: int
    sku: str
    quantity: int
    unit_price: str = "0"
    # The SKU's product category (return policies are per category); None: the default.
    category: str | None = None


class LotQuantity(BaseModel):
    """A quantity of one SKU from one lot in one warehouse (what recalls trace)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    line_no: int | None = None
    sku: str
    warehouse_id: str
    lot: str
    quantity: int


# --- customer -------------------------------------------------------------------


class CustomerCreated(Event):
    TYPE = "customer.customer.created.v1"
    customer_id: str
    name: str
    kind: str
    credit_limit: str | None
    credit_hold: bool


class CustomerUpdated(Event):
    TYPE = "customer.customer.updated.v1"
    customer_id: str
    changed: list[str]


class CustomerCreditChanged(Event):
    """Credit limit, hold flag or open order exposure changed."""

    TYPE = "customer.credit.changed.v1"
    customer_id: str
    credit_limit: str | None
    credit_hold: bool
    open_order_value: str


# --- order ----------------------------------------------------------------------


class OrderPlaced(Event):
    TYPE = "order.order.placed.v1"
    order_id: str
    customer_id: str
    lines: list[OrderLineRef]
    total: str
    currency: str


class OrderCreditHeld(Event):
    TYPE = "order.order.credit_held.v1"
    order_id: str
    customer_id: str
    reason: str


class OrderCreditReleased(Event):
    """A coordinator released the order's credit hold; its workflow goes on."""

    TYPE = "order.order.credit_released.v1"
    order_id: str
    released_by: str


class OrderConfirmed(Event):
    """Credit passed and stock is reserved (fully or partly)."""

    TYPE = "order.order.confirmed.v1"
    order_id: str
    customer_id: str
    allocations: list[LotQuantity]


class OrderBackordered(Event):
    TYPE = "order.order.backordered.v1"
    order_id: str
    missing: list[OrderLineRef]


class OrderBackorderFilled(Event):
    """Stock arrived and the order's backordered lines are now reserved."""

    TYPE = "order.order.backorder_filled.v1"
    order_id: str
    allocations: list[LotQuantity]


class OrderCancelled(Event):
    TYPE = "order.order.cancelled.v1"
    order_id: str
    customer_id: str
    total: str
    reason: str


class OrderAttentionNeeded(Event):
    """A step failed for good: the order's stock was put back and it waits for a
    coordinator (retry or cancel); `reason` is a stable code, `detail` says why."""

    TYPE = "order.order.attention_needed.v1"
    order_id: str
    customer_id: str
    reason: str
    detail: str


class OrderRetryRequested(Event):
    """A coordinator asked an order that needs attention to try again."""

    TYPE = "order.order.retry_requested.v1"
    order_id: str
    requested_by: str


class OrderCompleted(Event):
    TYPE = "order.order.completed.v1"
    order_id: str
    customer_id: str
    total: str
    outcome: str


class BookedReceipt(BaseModel):
    """Goods of a purchase order booked into the ledger by the change that reports them."""

    purchase_reference: str  # the purchase order (the supplier service's PO id)
    quantity: int


class InventoryChanged(Event):
    """Availability of one SKU in one warehouse changed."""

    TYPE = "order.inventory.changed.v1"
    sku: str
    warehouse_id: str
    on_hand: int
    reserved: int
    held: int
    available: int
    reason: str
    # Open backorder units of the SKU in every warehouse (backorders are per SKU, not
    # per warehouse); a change of backorders alone emits for the SKU's warehouses too.
    backordered: int = 0
    # Purchase-order goods this change booked (in `on_hand` from this event on): the
    # supplier service stops counting them as on order in the same step, so its position
    # never misses them between a PO's receipt and the stock it becomes.
    receipts: list[BookedReceipt] = []


# --- shipment -------------------------------------------------------------------


class ShipmentCreated(Event):
    TYPE = "shipment.shipment.created.v1"
    shipment_id: str
    order_id: str
    customer_id: str
    warehouse_id: str
    carrier: str
    service_level: str
    tracking_number: str
    promised_date: str
    lots: list[LotQuantity]


class ShipmentTrackingUpdated(Event):
    """A tracking event was accepted; `status` is the shipment's status after it."""

    TYPE = "shipment.shipment.tracking_updated.v1"
    shipment_id: str
    order_id: str
    tracking_number: str
    event_id: str
    event_status: str
    status: str
    occurred_at: str
    location: str | None = None
    description: str | None = None
    eta: str | None = None
    # Grows with every change the shipment service publishes; followers apply the
    # status of the highest revision they have seen (0: published before revisions).
    revision: int = 0
    customer_id: str | None = None  # None: published before the field existed


class ShipmentException(Event):
    TYPE = "shipment.shipment.exception.v1"
    shipment_id: str
    order_id: str
    customer_id: str | None = None  # None: published before the field existed
    status: str
    description: str


class ShipmentDelivered(Event):
    TYPE = "shipment.shipment.delivered.v1"
    shipment_id: str
    order_id: str
    customer_id: str | None = None  # None: published before the field existed
    delivered_at: str


class ShipmentReturnedToSender(Event):
    TYPE = "shipment.shipment.returned_to_sender.v1"
    shipment_id: str
    order_id: str
    warehouse_id: str
    lots: list[LotQuantity]


class ShipmentCancelled(Event):
    """Cancelled before dispatch (by its workflow or a coordinator); goods not shipped."""

    TYPE = "shipment.shipment.cancelled.v1"
    shipment_id: str
    order_id: str
    status: str = "cancelled"
    revision: int = 0
    reason: str | None = None


class LotStatusChanged(Event):
    """A lot's status changed in the ledger (`services.common.statuses.LotStatus`)."""

    TYPE = "order.lot.status_changed.v1"
    sku: str
    lot: str
    status: str
    previous: str
    reason: str
    changed_by: str
    recall_id: str | None = None


class ReturnShipmentCreated(Event):
    """A return label was bought: the customer sends the goods back to `warehouse_id`."""

    TYPE = "shipment.return_shipment.created.v1"
    shipment_id: str
    return_id: str
    order_id: str
    customer_id: str
    warehouse_id: str
    carrier: str
    tracking_number: str
    label_url: str | None = None


class ReturnShipmentTrackingUpdated(Event):
    """A scan of a return shipment was accepted; `status` is the shipment's status after
    it (`delivered` = received at the warehouse), applied by followers by `revision`."""

    TYPE = "shipment.return_shipment.tracking_updated.v1"
    shipment_id: str
    return_id: str
    order_id: str
    customer_id: str
    tracking_number: str
    event_id: str
    event_status: str
    status: str
    occurred_at: str
    revision: int
    location: str | None = None
    description: str | None = None


class ReturnShipmentCancelled(Event):
    """A return shipment was cancelled before the carrier had the parcel (label voided)."""

    TYPE = "shipment.return_shipment.cancelled.v1"
    shipment_id: str
    return_id: str
    order_id: str
    customer_id: str
    status: str = "cancelled"
    revision: int = 0
    reason: str | None = None


# --- returns ----------------------------------------------------------------------


class ReturnLineRef(BaseModel):
    """A quantity of one order line in a return."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    line_no: int
    sku: str
    quantity: int
    unit_price: str = "0"


class ReceivedLot(BaseModel):
    """What came back of one order line from one lot: good and damaged quantities."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    line_no: int
    sku: str
    warehouse_id: str
    lot: str
    good: int
    damaged: int


class DisposedLot(BaseModel):
    """What was done with a received quantity of one lot (`statuses.Disposition`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    line_no: int
    sku: str
    warehouse_id: str
    lot: str
    quantity: int
    disposition: str
    reason: str | None = None


class RefundedLine(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    line_no: int
    sku: str
    quantity: int
    amount: str


class ReturnEvent(Event):
    """Fields every return event carries."""

    return_id: str
    order_id: str
    customer_id: str
    kind: str = "customer"  # statuses.ReturnKind
    recall_id: str | None = None
    # The return's revision after this event (0: published by the recall's own writes).
    revision: int = 0


class ReturnRequested(ReturnEvent):
    TYPE = "returns.return.requested.v1"
    reason: str
    lines: list[ReturnLineRef]
    keep_it: bool = False


class ReturnAuthorized(ReturnEvent):
    """Authorized (by policy or a coordinator); `keep_it`: no physical return needed."""

    TYPE = "returns.return.authorized.v1"
    authorized_by: str
    keep_it: bool = False


class ReturnRejected(ReturnEvent):
    TYPE = "returns.return.rejected.v1"
    reason: str
    rejected_by: str


class ReturnAwaitingReceipt(ReturnEvent):
    """The return label is bought; the goods are expected by `receipt_deadline`."""

    TYPE = "returns.return.awaiting_receipt.v1"
    carrier: str
    tracking_number: str
    label_url: str | None = None
    warehouse_id: str
    receipt_deadline: str


class ReturnReceived(ReturnEvent):
    TYPE = "returns.return.received.v1"
    lots: list[ReceivedLot]
    received_by: str


class ReturnInspected(ReturnEvent):
    TYPE = "returns.return.inspected.v1"
    lots: list[DisposedLot]
    inspected_by: str


class ReturnDisposed(ReturnEvent):
    """Dispositions carried out: `restock` lots go back into the ledger (same lot),
    `return_to_vendor` lots become a vendor return at the supplier service."""

    TYPE = "returns.return.disposed.v1"
    lots: list[DisposedLot]


class ReturnRefunded(ReturnEvent):
    """A credit record for billing: price paid minus the restocking fee."""

    TYPE = "returns.return.refunded.v1"
    refund_id: str
    amount: str
    restocking_fee: str
    currency: str
    lines: list[RefundedLine]


class ReturnReplacementOrdered(ReturnEvent):
    TYPE = "returns.return.replacement_ordered.v1"
    replacement_order_id: str


class ReturnResolved(ReturnEvent):
    TYPE = "returns.return.resolved.v1"
    resolution: str
    refund_amount: str | None = None
    replacement_order_id: str | None = None


class ReturnClosed(ReturnEvent):
    TYPE = "returns.return.closed.v1"


class ReturnExpired(ReturnEvent):
    """Not received within the policy's days."""

    TYPE = "returns.return.expired.v1"
    receipt_deadline: str


class ReturnCancelled(ReturnEvent):
    TYPE = "returns.return.cancelled.v1"
    reason: str
    cancelled_by: str


class ReturnRetryRequested(ReturnEvent):
    """A coordinator cleared a return's attention mark: its workflow tries the step again."""

    TYPE = "returns.return.retry_requested.v1"
    requested_by: str


class RecallOpened(Event):
    TYPE = "returns.recall.opened.v1"
    recall_id: str
    sku: str
    lots: list[str]
    reason: str
    instructions: str
    hazard_class: str  # I, II, III
    depth: str  # effectiveness-check depth A to E
    opened_by: str


class RecallNoticeIssued(Event):
    """One consignee of a recall is to be told (the customer service sends the notice)."""

    TYPE = "returns.recall.notice_issued.v1"
    recall_id: str
    return_id: str
    customer_id: str
    order_id: str
    shipment_id: str | None = None
    sku: str
    lots: list[str]
    quantity: int
    reason: str
    instructions: str
    hazard_class: str


class RecallConsigneeResponded(Event):
    TYPE = "returns.recall.consignee_responded.v1"
    recall_id: str
    return_id: str
    customer_id: str
    quantity_on_hand: int
    action: str


class RecallClosed(Event):
    TYPE = "returns.recall.closed.v1"
    recall_id: str
    effectiveness: str  # percent, e.g. "97.5"
    closed_by: str
    reason: str


# --- supplier ---------------------------------------------------------------------


class SignalRaised(Event):
    """A replenishment signal for one SKU x warehouse from one supplier: what the
    position was, what the forecast and policy say, and the quantity proposed. Published
    on `supplier.signal.raised` and, as a copy with its own event id, on the supplier's
    own subject `supplier.<supplier_id>.signals`."""

    TYPE = "supplier.signal.raised.v1"
    signal_id: str
    supplier_id: str
    sku: str
    warehouse_id: str
    supplier_part_number: str | None = None
    origin: str  # statuses.SignalOrigin
    review_mode: str
    on_hand: int
    reserved: int
    held: int
    backordered: int
    on_order: int
    position: int
    forecast_method: str
    forecast_daily_mean: float
    safety_stock: int
    reorder_point: int
    target: int
    quantity: int
    need_by: str  # ISO date
    unit_cost: str
    currency: str


class SignalCancelled(Event):
    """A coordinator dismissed an open signal; the pair may signal again."""

    TYPE = "supplier.signal.cancelled.v1"
    signal_id: str
    supplier_id: str
    sku: str
    warehouse_id: str
    reason: str
    cancelled_by: str


class PurchaseOrderLot(BaseModel):
    """A lot of a purchase order's shipment or receipt."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    lot: str
    expiry: str | None = None  # ISO date
    quantity: int


class PurchaseOrderCreated(Event):
    """A signal became a purchase order: `approved` within the policy's auto-approve
    limit, else `pending_approval` (a coordinator decides). Subject: the PO id."""

    TYPE = "supplier.po.created.v1"
    po_id: str
    supplier_id: str
    signal_id: str | None = None
    sku: str
    warehouse_id: str
    quantity: int
    unit_cost: str
    currency: str
    need_by: str  # ISO date
    status: str  # statuses.PurchaseOrderStatus
    ack_timeout_hours: int


class PurchaseOrderApproved(Event):
    TYPE = "supplier.po.approved.v1"
    po_id: str
    supplier_id: str
    approved_by: str


class PurchaseOrderAcknowledged(Event):
    """The supplier confirmed a quantity (at most the ordered one) and a date."""

    TYPE = "supplier.po.acknowledged.v1"
    po_id: str
    supplier_id: str
    quantity: int
    promised_date: str  # ISO date


class PurchaseOrderShipped(Event):
    """The supplier's advance shipping notice (ASN)."""

    TYPE = "supplier.po.shipped.v1"
    po_id: str
    supplier_id: str
    lots: list[PurchaseOrderLot]
    shipped_at: str
    expected_at: str


class PurchaseOrderReceived(Event):
    """Goods of a PO received at its warehouse (one receipt; there may be several). The
    order service books the lots into its ledger with the supplier and PO reference."""

    TYPE = "supplier.po.received.v1"
    po_id: str
    supplier_id: str
    receipt_id: str
    sku: str
    warehouse_id: str
    lots: list[PurchaseOrderLot]
    received_at: str
    complete: bool


class PurchaseOrderClosed(Event):
    TYPE = "supplier.po.closed.v1"
    po_id: str
    supplier_id: str
    quantity: int
    quantity_received: int
    shortfall: int


class PurchaseOrderCancelled(Event):
    TYPE = "supplier.po.cancelled.v1"
    po_id: str
    supplier_id: str
    reason: str


class VendorReturnCredited(Event):
    """Returned goods of a lot go back to the supplier that delivered it, for a credit of
    quantity x the PO's unit cost. Subject: the vendor return id."""

    TYPE = "supplier.vendor_return.credited.v1"
    vendor_return_id: str
    supplier_id: str
    po_id: str
    return_id: str
    sku: str
    lot: str
    quantity: int
    credit_amount: str
    currency: str


# --- customer: notices ------------------------------------------------------------


class NoticeSent(Event):
    """A notice reached the customer's mail server (`source_event_id`: what caused it)."""

    TYPE = "customer.notice.sent.v1"
    notice_id: str
    customer_id: str
    kind: str
    source_event_id: str
    reference: str | None = None  # the return, recall or shipment it is about
    # The return it concerns (a recall notice's recall return; None for shipment notices).
    return_id: str | None = None
    channel: str = "email"
    to: str
    language: str
    sent_at: str


def asyncapi_document() -> dict[str, Any]:
    """The catalogue as an AsyncAPI 3.0 document."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for event_type, model in sorted(CATALOGUE.items()):
        name = event_type.replace(".", "_")
        messages[name] = {
            "name": event_type,
            "title": model.__name__,
            "summary": (model.__doc__ or "").strip(),
            "contentType": "application/cloudevents+json",
            "payload": model.model_json_schema(),
        }
        channels[name] = {
            "address": model.subject(),
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        operations[f"publish_{name}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{name}"},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Waybill events", "version": "1"},
        "defaultContentType": "application/cloudevents+json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }
