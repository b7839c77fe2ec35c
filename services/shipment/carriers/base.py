"""The carrier adapter interface, webhook signatures, and the registry.

A carrier is one module in this package defining a `CarrierAdapter` subclass decorated
with `@register`: it buys labels (and, with `supports_returns`, return labels), voids
them, verifies and parses the carrier's webhooks into `TrackingEventIn`, and maps the
carrier's raw status codes onto the shared `ShipmentStatus` scale
(`services/common/statuses.py`; a carrier never reports `cancelled`, which only this
service decides). Everything else (status machine, ETA,
events) is carrier-neutral.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from services.common.statuses import ShipmentStatus
from services.shipment.settings import ShipmentSettings
from services.shipment.timing import ServiceLevel

DEFAULT_DESCRIPTIONS: dict[ShipmentStatus, str] = {
    ShipmentStatus.PENDING: "Awaiting carrier information",
    ShipmentStatus.INFO_RECEIVED: "Shipment information received by the carrier",
    ShipmentStatus.IN_TRANSIT: "In transit",
    ShipmentStatus.OUT_FOR_DELIVERY: "Out for delivery",
    ShipmentStatus.ATTEMPT_FAILED: "Delivery attempt failed",
    ShipmentStatus.AVAILABLE_FOR_PICKUP: "Available for pickup",
    ShipmentStatus.DELIVERED: "Delivered",
    ShipmentStatus.EXCEPTION: "Delivery exception",
    ShipmentStatus.RETURNED_TO_SENDER: "Returned to sender",
    ShipmentStatus.EXPIRED: "Tracking expired",
    ShipmentStatus.CANCELLED: "Shipment cancelled",
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


# Scans outside these years are a carrier's bug; refusing them keeps ETA arithmetic and
# the database's timestamp range out of reach of a pushed date.
SCAN_YEARS = (2000, 2100)


def _plausible(value: datetime) -> datetime:
    try:
        year = value.astimezone(UTC).year
    except OverflowError:
        year = value.year
    if not SCAN_YEARS[0] <= year < SCAN_YEARS[1]:
        raise ValueError(f"a scan time must be in the years {SCAN_YEARS[0]}-{SCAN_YEARS[1] - 1}")
    return value


ScanTime = Annotated[AwareDatetime, AfterValidator(_plausible)]


class TrackingEventIn(BaseModel):
    """One tracking scan as a carrier reported it (raw code, not yet normalized)."""

    model_config = ConfigDict(frozen=True)

    tracking_number: str = Field(min_length=1, max_length=64)
    raw_code: str = Field(min_length=1, max_length=32)
    occurred_at: ScanTime
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
class ReturnLabelRequest:
    """What a carrier needs to sell a return label: the customer sends the parcels from
    `ship_from` back to the warehouse `warehouse_id`. `shipment_id` is the idempotency
    reference, as in LabelRequest."""

    shipment_id: str
    return_id: str
    order_id: str
    warehouse_id: str
    service_level: ServiceLevel
    ship_date: date
    ship_from: LabelAddress
    packages: Sequence[LabelPackage]


@dataclass(frozen=True)
class Label:
    tracking_number: str
    promised_date: date
    label_url: str | None = None


SIGNATURE_TOLERANCE_SECONDS = 300
# A header longer than this (a few rotated secrets' worth of v1 entries) is refused unread.
MAX_SIGNATURE_HEADER = 1024
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


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
    malformed = WebhookSignatureError(f"{SIGNATURE_HEADER} must look like t=<seconds>,v1=<hex>")
    if len(given) > MAX_SIGNATURE_HEADER:
        raise malformed
    parts = [p.strip().partition("=") for p in given.split(",")]
    stamps = [v for k, _, v in parts if k == "t"]
    macs = [v.lower() for k, _, v in parts if k == "v1"]
    # ASCII digits only, and few enough to be a time: str.isdigit() also takes other
    # scripts' digits and superscripts, and int() refuses thousands of digits.
    if len(stamps) != 1 or not _TIMESTAMP.fullmatch(stamps[0]) or not macs:
        raise malformed
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
    # Whether `create_return_label` sells return labels.
    supports_returns: ClassVar[bool] = False

    def __init__(self, settings: ShipmentSettings) -> None:
        self.settings = settings

    @property
    def webhook_secret(self) -> str:
        return self.settings.resolved_webhook_secret()

    @abstractmethod
    async def create_label(self, shipment: LabelRequest) -> Label:
        """Buy a label; the carrier assigns the tracking number and promises a date."""

    async def create_return_label(self, shipment: ReturnLabelRequest) -> Label:
        """Buy a return label (the customer drops the parcel off; the carrier delivers it
        to the warehouse); carriers with `supports_returns` override this."""
        raise CarrierError(f"{self.code} does not sell return labels")

    @abstractmethod
    async def cancel(self, tracking_number: str) -> None:
        """Void the label of a shipment that was never handed over."""

    @abstractmethod
    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[TrackingEventIn]:
        """Verify the signature and parse a pushed batch of scans."""

    @abstractmethod
    def normalize(self, raw_status_code: str) -> ShipmentStatus:
        """Map a raw status code onto the scale (never `cancelled`); UnknownStatusCode for
        codes the adapter does not know."""

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
