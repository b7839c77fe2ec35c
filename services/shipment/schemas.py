"""Shipment service API models (requests, staff views, the public tracking view)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.shipment.carriers.simulated import Scenario
from services.shipment.domain import OutcomeKind
from services.shipment.timing import ServiceLevel

Id = Field(min_length=1, max_length=64)


class Address(BaseModel):
    """Where the shipment goes."""

    model_config = ConfigDict(from_attributes=True, str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    line1: str = Field(min_length=1, max_length=200)
    line2: str | None = Field(default=None, max_length=200)
    city: str = Field(min_length=1, max_length=120)
    region: str | None = Field(default=None, max_length=120)
    postal_code: str | None = Field(default=None, max_length=20)
    country: str = Field(
        min_length=2, max_length=2, description="ISO 3166-1 alpha-2", examples=["NL"]
    )

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        if not value.isalpha():
            raise ValueError("country must be an ISO 3166-1 alpha-2 code")
        return value.upper()


class _Numbered(Protocol):
    line_no: int


N = TypeVar("N", bound=_Numbered)


def unique_line_nos(lines: list[N]) -> list[N]:
    numbers = [line.line_no for line in lines]
    if len(set(numbers)) != len(numbers):
        raise ValueError("line_no must be unique within a shipment")
    return lines


# The largest value the INTEGER columns hold (PostgreSQL's int4).
INT4_MAX = 2**31 - 1


class LotIn(BaseModel):
    lot: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0, le=100_000)


class LineIn(BaseModel):
    """An order line in this shipment and the lots it was picked from."""

    line_no: int = Field(ge=1, le=INT4_MAX)
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0, le=100_000)
    unit_weight_grams: int | None = Field(
        default=None, gt=0, le=1_000_000, description="defaults to the service setting"
    )
    lots: list[LotIn] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _lots_cover_quantity(self) -> LineIn:
        names = [lot.lot for lot in self.lots]
        if len(set(names)) != len(names):
            raise ValueError(f"line {self.line_no}: a lot appears twice")
        picked = sum(lot.quantity for lot in self.lots)
        if picked != self.quantity:
            raise ValueError(
                f"line {self.line_no}: lot quantities sum to {picked}, "
                f"the line quantity is {self.quantity}"
            )
        return self


ScenarioName = Literal[
    "happy", "delay", "failed_attempt", "exception", "return_to_sender", "manual"
]


class SimulationIn(BaseModel):
    """Pin the simulated carrier's scenario ("manual" plans nothing)."""

    scenario: ScenarioName


class ShipmentCreate(BaseModel):
    order_id: str = Id
    customer_id: str = Id
    warehouse_id: str = Id
    carrier: str = Field(default="simulated", min_length=1, max_length=32)
    service_level: ServiceLevel = ServiceLevel.STANDARD
    ship_to: Address
    lines: list[LineIn] = Field(min_length=1, max_length=500)
    simulation: SimulationIn | None = None

    @field_validator("lines")
    @classmethod
    def _unique_lines(cls, lines: list[LineIn]) -> list[LineIn]:
        return unique_line_nos(lines)


class CancelIn(BaseModel):
    reason: str | None = Field(default=None, max_length=500)


class LotOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    lot: str
    quantity: int


class LineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    line_no: int
    sku: str
    quantity: int
    unit_weight_grams: int
    lots: list[LotOut]


class PackageItem(BaseModel):
    line_no: int
    sku: str
    quantity: int


class PackageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    weight_grams: int
    items: list[PackageItem]


class LocationOut(BaseModel):
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = None


class TrackingEventOut(BaseModel):
    id: int
    carrier_event_id: str | None
    raw_code: str
    status: str
    status_after: str
    delayed: bool
    occurred_at: datetime
    received_at: datetime
    location: LocationOut | None
    description: str | None
    channel: str


class ShipmentOut(BaseModel):
    id: str
    order_id: str
    customer_id: str
    warehouse_id: str
    carrier: str
    service_level: str
    tracking_number: str
    label_url: str | None
    status: str
    revision: int = Field(
        description="how many status-bearing events the shipment has published; "
        "an event's `revision` is this count when it was staged"
    )
    promised_date: date
    eta: datetime | None
    ship_to: Address
    packages: list[PackageOut]
    lines: list[LineOut]
    simulation_scenario: str | None
    created_at: datetime
    dispatched_at: datetime | None
    delivered_at: datetime | None
    returned_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    last_event_at: datetime | None


class ShipmentDetail(ShipmentOut):
    events: list[TrackingEventOut]


class ShipmentPage(BaseModel):
    items: list[ShipmentOut]
    next_cursor: str | None


class PublicLocation(BaseModel):
    city: str | None
    country: str | None


class PublicTrackingEvent(BaseModel):
    status: str
    occurred_at: datetime
    location: PublicLocation | None
    description: str


class PublicTracking(BaseModel):
    """What anyone holding the tracking number may see: no names, addresses or ids."""

    tracking_number: str
    carrier: str
    status: str
    promised_date: date
    eta: datetime | None
    delivered_at: datetime | None
    events: list[PublicTrackingEvent]


class WebhookEventResult(BaseModel):
    index: int
    tracking_number: str
    event_id: str | None
    outcome: OutcomeKind
    status: str | None = Field(default=None, description="the shipment's status after it")


class WebhookResult(BaseModel):
    received: int
    accepted: int
    duplicates: int
    rejected: int
    results: list[WebhookEventResult]


class PlannedScanOut(BaseModel):
    seq: int
    raw_code: str
    status: str
    offset_hours: float
    due_at: datetime
    location: LocationOut
    description: str
    delivered: bool
    cancelled: bool


class SimulationOut(BaseModel):
    shipment_id: str
    tracking_number: str
    scenario: Scenario | None
    seed: int
    scans: list[PlannedScanOut]


# --- return shipments -----------------------------------------------------------

ReturnScenarioName = Literal["happy", "delay", "exception", "lost", "manual"]


class ReturnSimulationIn(BaseModel):
    """Pin the simulated carrier's return scenario ("lost" never arrives, "manual" plans
    nothing)."""

    scenario: ReturnScenarioName


class ReturnLineIn(BaseModel):
    """A quantity of one outbound shipment line that goes back."""

    line_no: int = Field(ge=1, le=INT4_MAX)
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=100_000)


class ReturnShipmentCreate(BaseModel):
    return_id: str = Field(min_length=1, max_length=36)
    order_id: str = Id
    customer_id: str = Id
    warehouse_id: str = Field(min_length=1, max_length=32)
    carrier: str | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description="defaults to the carrier of the outbound shipment",
    )
    lines: list[ReturnLineIn] = Field(min_length=1, max_length=500)
    simulation: ReturnSimulationIn | None = None

    @field_validator("lines")
    @classmethod
    def _unique_lines(cls, lines: list[ReturnLineIn]) -> list[ReturnLineIn]:
        return unique_line_nos(lines)


class ReturnLineOut(BaseModel):
    line_no: int
    sku: str
    quantity: int
    unit_weight_grams: int


class ReturnShipmentOut(BaseModel):
    """A return parcel from the customer (`ship_from`) back to `warehouse_id`."""

    id: str
    return_id: str
    order_id: str
    customer_id: str
    warehouse_id: str
    carrier: str
    service_level: str
    tracking_number: str
    label_url: str | None
    status: str = Field(description="`delivered`: the goods reached the warehouse")
    revision: int = Field(
        description="how many status-bearing events the shipment has published; "
        "an event's `revision` is this count when it was staged"
    )
    promised_date: date
    eta: datetime | None
    ship_from: Address
    lines: list[ReturnLineOut]
    packages: list[PackageOut]
    simulation_scenario: str | None
    created_at: datetime
    dispatched_at: datetime | None
    delivered_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    last_event_at: datetime | None


class ReturnShipment(ReturnShipmentOut):
    events: list[TrackingEventOut]


class ReturnShipmentPage(BaseModel):
    items: list[ReturnShipmentOut]
    next_cursor: str | None
