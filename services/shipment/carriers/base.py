"""The carrier adapter interface, the normalized tracking vocabulary, and the registry.

A carrier is one module in this package defining a `CarrierAdapter` subclass decorated
with `@register`: it buys labels, voids them, verifies and parses the carrier's
webhooks into `TrackingEventIn`, and maps the carrier's raw status codes onto
`NormalizedStatus`. Everything else (status machine, ETA, events) is carrier-neutral.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.shipment.settings import ShipmentSettings
from services.shipment.timing import ServiceLevel


class NormalizedStatus(StrEnum):
    """Carrier-neutral tracking status (the scale every adapter maps onto)."""

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


TERMINAL: frozenset[NormalizedStatus] = frozenset(
    {NormalizedStatus.DELIVERED, NormalizedStatus.RETURNED_TO_SENDER, NormalizedStatus.EXPIRED}
)

DEFAULT_DESCRIPTIONS: dict[NormalizedStatus, str] = {
    NormalizedStatus.PENDING: "Awaiting carrier information",
    NormalizedStatus.INFO_RECEIVED: "Shipment information received by the carrier",
    NormalizedStatus.IN_TRANSIT: "In transit",
    NormalizedStatus.OUT_FOR_DELIVERY: "Out for delivery",
    NormalizedStatus.ATTEMPT_FAILED: "Delivery attempt failed",
    NormalizedStatus.AVAILABLE_FOR_PICKUP: "Available for pickup",
    NormalizedStatus.DELIVERED: "Delivered",
    NormalizedStatus.EXCEPTION: "Delivery exception",
    NormalizedStatus.RETURNED_TO_SENDER: "Returned to sender",
    NormalizedStatus.EXPIRED: "Tracking expired",
}

SIGNATURE_HEADER = "X-Waybill-Signature"


class CarrierError(Exception):
    """A carrier refused or failed a request."""


class WebhookSignatureError(CarrierError):
    """The webhook's signature is missing or does not match the body."""


class WebhookPayloadError(CarrierError):
    """The webhook body is not what the carrier is supposed to send."""

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class UnknownStatusCode(CarrierError):
    """A raw status code the adapter does not know how to normalize."""


class Location(BaseModel):
    """Where a scan happened, as precise as the carrier tells."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    city: str | None = Field(default=None, max_length=120)
    region: str | None = Field(default=None, max_length=120)
    postal_code: str | None = Field(default=None, max_length=20)
    country: str | None = Field(default=None, min_length=2, max_length=2)


class TrackingEventIn(BaseModel):
    """One tracking scan as a carrier reported it (raw code, not yet normalized)."""

    model_config = ConfigDict(frozen=True)

    tracking_number: str = Field(min_length=1, max_length=64)
    raw_code: str = Field(min_length=1, max_length=32)
    occurred_at: AwareDatetime
    event_id: str | None = Field(default=None, min_length=1, max_length=128)
    location: Location | None = None
    description: str | None = Field(default=None, max_length=500)


@dataclass(frozen=True)
class LabelAddress:
    name: str
    line1: str
    line2: str | None
    city: str
    region: str | None
    postal_code: str | None
    country: str


@dataclass(frozen=True)
class LabelPackage:
    number: int
    weight_grams: int


@dataclass(frozen=True)
class LabelRequest:
    """What a carrier needs to sell a label (no ORM objects cross into adapters).

    `shipment_id` is the same on every retry of one shipment request: an adapter passes
    it to the carrier as the idempotency key (or customer reference the carrier
    de-duplicates on), so a purchase retried after a crash returns the same label
    instead of buying a second one."""

    shipment_id: str
    order_id: str
    warehouse_id: str
    service_level: ServiceLevel
    ship_date: date
    ship_to: LabelAddress
    packages: Sequence[LabelPackage]


@dataclass(frozen=True)
class Label:
    tracking_number: str
    promised_date: date
    label_url: str | None = None


SIGNATURE_TOLERANCE_SECONDS = 300


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), b"%d." % timestamp + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The `X-Waybill-Signature` value for `body`: `t=<unix seconds>,v1=<hex HMAC-SHA256
    of "<t>." + body>`. Signing the time lets a receiver refuse a captured push that is
    replayed later."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={_mac(secret, t, body)}"


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: float = SIGNATURE_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Raise WebhookSignatureError unless the header signs `body` with `secret` at a time
    within `tolerance` seconds of now. Several `v1` entries may be given (a sender
    rotating its secret signs with both)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    given = lowered.get(SIGNATURE_HEADER.lower())
    if not given:
        raise WebhookSignatureError(f"missing {SIGNATURE_HEADER} header")
    parts = [p.strip().partition("=") for p in given.split(",")]
    stamps = [v for k, _, v in parts if k == "t"]
    macs = [v.lower() for k, _, v in parts if k == "v1"]
    if len(stamps) != 1 or not stamps[0].isdigit() or not macs:
        raise WebhookSignatureError(f"{SIGNATURE_HEADER} must look like t=<seconds>,v1=<hex>")
    timestamp = int(stamps[0])
    expected = _mac(secret, timestamp, body).encode()
    if not any(hmac.compare_digest(m.encode(), expected) for m in macs):
        raise WebhookSignatureError(f"{SIGNATURE_HEADER} does not match the body")
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise WebhookSignatureError(
            f"{SIGNATURE_HEADER} was made more than {tolerance:.0f} s from now "
            "(a replayed push, or a clock far off)"
        )


class CarrierAdapter(ABC):
    """One carrier: labels, voids, webhooks and its status vocabulary."""

    code: ClassVar[str]
    name: ClassVar[str]

    def __init__(self, settings: ShipmentSettings) -> None:
        self.settings = settings

    @property
    def webhook_secret(self) -> str:
        return self.settings.resolved_webhook_secret()

    @abstractmethod
    async def create_label(self, shipment: LabelRequest) -> Label:
        """Buy a label; the carrier assigns the tracking number and promises a date."""

    @abstractmethod
    async def cancel(self, tracking_number: str) -> None:
        """Void the label of a shipment that was never handed over."""

    @abstractmethod
    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[TrackingEventIn]:
        """Verify the signature and parse a pushed batch of scans."""

    @abstractmethod
    def normalize(self, raw_status_code: str) -> NormalizedStatus:
        """Map a raw status code; UnknownStatusCode for codes the adapter does not know."""

    def is_delay(self, raw_status_code: str) -> bool:
        """Whether the code reports a delay (pushes the ETA by a day)."""
        return False

    def describe(self, raw_status_code: str) -> str:
        """A customer-safe description of a code (the public tracking page shows this)."""
        return DEFAULT_DESCRIPTIONS[self.normalize(raw_status_code)]


_REGISTRY: dict[str, type[CarrierAdapter]] = {}

A = TypeVar("A", bound=type[CarrierAdapter])


def register(cls: A) -> A:
    """Class decorator: make an adapter available under its `code`."""
    code = getattr(cls, "code", "")
    if not code:
        raise TypeError(f"{cls.__name__} has no carrier code")
    if code in _REGISTRY and _REGISTRY[code] is not cls:
        raise TypeError(f"carrier code {code!r} registered twice")
    _REGISTRY[code] = cls
    return cls


def unregister(code: str) -> None:
    """Forget an adapter (services already running keep theirs)."""
    _REGISTRY.pop(code, None)


def registered() -> dict[str, type[CarrierAdapter]]:
    return dict(_REGISTRY)
