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


class OrderCompleted(Event):
    TYPE = "order.order.completed.v1"
    order_id: str
    customer_id: str
    total: str
    outcome: str


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


class ShipmentException(Event):
    TYPE = "shipment.shipment.exception.v1"
    shipment_id: str
    order_id: str
    status: str
    description: str


class ShipmentDelivered(Event):
    TYPE = "shipment.shipment.delivered.v1"
    shipment_id: str
    order_id: str
    delivered_at: str


class ShipmentReturnedToSender(Event):
    TYPE = "shipment.shipment.returned_to_sender.v1"
    shipment_id: str
    order_id: str
    warehouse_id: str
    lots: list[LotQuantity]


class ShipmentCancelled(Event):
    TYPE = "shipment.shipment.cancelled.v1"
    shipment_id: str
    order_id: str


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
