"""A simulated carrier that behaves like a real one: labels, raw scan codes, signed webhooks.

Each shipment gets a scenario planned deterministically from `simulator_seed` and its
tracking number: a list of scans at carrier-time offsets (hours after the label). The
service stores the plan and a background task pushes each scan through the same webhook
parsing and ingestion a real carrier's push takes (see `services.shipment.simulator`).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.common.statuses import ShipmentStatus
from services.shipment.carriers.base import (
    SIGNATURE_HEADER,
    CarrierAdapter,
    CarrierError,
    Label,
    LabelRequest,
    Location,
    ReturnLabelRequest,
    ScanTime,
    TrackingEventIn,
    UnknownStatusCode,
    WebhookPayloadError,
    register,
    sign,
    verify_signature,
)
from services.shipment.timing import promised_date


class Scenario(StrEnum):
    HAPPY = "happy"
    DELAY = "delay"
    FAILED_ATTEMPT = "failed_attempt"
    EXCEPTION = "exception"
    RETURN_TO_SENDER = "return_to_sender"
    # Return shipments only: the parcel is lost in transit and never reaches the warehouse.
    LOST = "lost"
    MANUAL = "manual"


# How often each scenario happens when a create request does not pin one.
SCENARIO_WEIGHTS: dict[Scenario, int] = {
    Scenario.HAPPY: 60,
    Scenario.DELAY: 15,
    Scenario.FAILED_ATTEMPT: 10,
    Scenario.EXCEPTION: 10,
    Scenario.RETURN_TO_SENDER: 5,
}

# Return shipments: how often each happens unpinned, and which may be pinned.
RETURN_SCENARIO_WEIGHTS: dict[Scenario, int] = {
    Scenario.HAPPY: 75,
    Scenario.DELAY: 15,
    Scenario.EXCEPTION: 10,
}
RETURN_SCENARIOS = frozenset(RETURN_SCENARIO_WEIGHTS) | {Scenario.LOST, Scenario.MANUAL}

N = ShipmentStatus

# Raw code -> (normalized status, description, reports a delay)
CODES: dict[str, tuple[ShipmentStatus, str, bool]] = {
    "IR": (N.INFO_RECEIVED, "Shipment information received", False),
    "PU": (N.IN_TRANSIT, "Picked up by carrier", False),
    "AR": (N.IN_TRANSIT, "Arrived at carrier facility", False),
    "DP": (N.IN_TRANSIT, "Departed carrier facility", False),
    "DY": (N.IN_TRANSIT, "Delayed in transit", True),
    "OD": (N.OUT_FOR_DELIVERY, "Out for delivery", False),
    "NA": (N.ATTEMPT_FAILED, "Delivery attempted: recipient not available", False),
    "AP": (N.AVAILABLE_FOR_PICKUP, "Available for pickup at a service point", False),
    "DL": (N.DELIVERED, "Delivered", False),
    "EX": (N.EXCEPTION, "Delivery exception", False),
    "RT": (N.EXCEPTION, "Being returned to sender", False),
    "RS": (N.RETURNED_TO_SENDER, "Returned to sender", False),
    "XP": (N.EXPIRED, "No scans received; tracking expired", False),
}

Place = tuple[str, str | None, str]  # city, region, country

HUBS: tuple[Place, ...] = (
    ("Rotterdam", "ZH", "NL"),
    ("Venlo", "LI", "NL"),
    ("Antwerp", "VAN", "BE"),
    ("Duisburg", "NW", "DE"),
    ("Leipzig", "SN", "DE"),
    ("Lyon", "ARA", "FR"),
    ("Paris", "IDF", "FR"),
    ("Milan", "MI", "IT"),
    ("Madrid", "MD", "ES"),
    ("Warsaw", "MZ", "PL"),
    ("Prague", "PR", "CZ"),
    ("Vienna", "W", "AT"),
)

DELAY_REASONS = (
    "Delayed: high volume at the sorting hub",
    "Delayed: adverse weather on the linehaul",
    "Delayed: missed linehaul connection",
)
EXCEPTION_REASONS = (
    "Exception: address needs clarification",
    "Exception: package damaged, being repackaged",
    "Exception: held by customs for inspection",
)


@dataclass(frozen=True)
class PlannedScan:
    """One scan the simulated carrier will report, `hours` carrier hours after the label."""

    seq: int
    hours: float
    code: str
    city: str
    region: str | None
    country: str
    description: str


@dataclass(frozen=True)
class SimulationPlan:
    tracking_number: str
    scenario: Scenario
    scans: tuple[PlannedScan, ...]


class _Journey:
    """Accumulates scans along a timeline in carrier hours."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.hours = 0.0
        self.scans: list[PlannedScan] = []

    def scan(
        self, code: str, place: Place, after: tuple[float, float], description: str | None = None
    ) -> None:
        self.hours = round(self.hours + self.rng.uniform(*after), 2)
        city, region, country = place
        self.scans.append(
            PlannedScan(
                seq=len(self.scans) + 1,
                hours=self.hours,
                code=code,
                city=city,
                region=region,
                country=country,
                description=description or CODES[code][1],
            )
        )


class _SimWebhookScan(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = Field(default=None, min_length=1, max_length=128)
    tracking_number: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=32)
    occurred_at: ScanTime
    location: Location | None = None
    description: str | None = Field(default=None, max_length=500)


class _SimWebhook(BaseModel):
    model_config = ConfigDict(extra="ignore")

    events: list[_SimWebhookScan]


@register
class SimulatedCarrier(CarrierAdapter):
    """Deterministic from `simulator_seed` and the tracking number; time-scaled by the feeder."""

    code = "simulated"
    name = "Waybill simulated carrier"
    supports_returns = True
    TRACKING_PREFIX = "SIM"
    LABEL_URL = "https://labels.simulated.invalid/{}.pdf"

    @property
    def seed(self) -> int:
        return self.settings.simulator_seed

    async def create_label(self, shipment: LabelRequest) -> Label:
        # Idempotent like a real carrier's API: the same shipment gets the same label.
        digest = hashlib.sha256(f"{self.seed}:{shipment.shipment_id}".encode()).digest()
        number = f"{self.TRACKING_PREFIX}{int.from_bytes(digest[:8], 'big') % 10**16:016d}"
        return Label(
            tracking_number=number,
            promised_date=promised_date(shipment.service_level, shipment.ship_date),
        )

    async def create_return_label(self, shipment: ReturnLabelRequest) -> Label:
        # Same numbering as outbound labels (one sequence, so numbers are unique across
        # both); the reference names the return shipment, so a retry gets the same label.
        digest = hashlib.sha256(f"{self.seed}:return:{shipment.shipment_id}".encode()).digest()
        number = f"{self.TRACKING_PREFIX}{int.from_bytes(digest[:8], 'big') % 10**16:016d}"
        return Label(
            tracking_number=number,
            promised_date=promised_date(shipment.service_level, shipment.ship_date),
            label_url=self.LABEL_URL.format(number),
        )

    async def cancel(self, tracking_number: str) -> None:
        if not tracking_number.startswith(self.TRACKING_PREFIX):
            raise CarrierError(f"{tracking_number} is not a {self.code} tracking number")

    def normalize(self, raw_status_code: str) -> ShipmentStatus:
        try:
            return CODES[raw_status_code.upper()][0]
        except KeyError:
            raise UnknownStatusCode(
                f"unknown {self.code} status code {raw_status_code!r}"
            ) from None

    def is_delay(self, raw_status_code: str) -> bool:
        entry = CODES.get(raw_status_code.upper())
        return bool(entry and entry[2])

    def describe(self, raw_status_code: str) -> str:
        return CODES[raw_status_code.upper()][1] if raw_status_code.upper() in CODES else ""

    # --- webhooks -------------------------------------------------------------------

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[TrackingEventIn]:
        verify_signature(self.webhook_secret, headers, body)
        try:
            payload = _SimWebhook.model_validate_json(body)
        except ValidationError as exc:
            errors = [
                {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in exc.errors()
            ]
            raise WebhookPayloadError("not a simulated carrier webhook body", errors) from exc
        return [
            TrackingEventIn(
                tracking_number=scan.tracking_number,
                raw_code=scan.code.upper(),
                occurred_at=scan.occurred_at,
                event_id=scan.id,
                location=scan.location,
                description=scan.description,
            )
            for scan in payload.events
        ]

    def webhook_request(self, events: Sequence[TrackingEventIn]) -> tuple[dict[str, str], bytes]:
        """The signed push this carrier sends for `events` (headers, body)."""
        body: dict[str, Any] = {
            "carrier": self.code,
            "events": [
                {
                    "id": e.event_id,
                    "tracking_number": e.tracking_number,
                    "code": e.raw_code,
                    "occurred_at": e.occurred_at.isoformat(),
                    "location": e.location.model_dump() if e.location else None,
                    "description": e.description,
                }
                for e in events
            ],
        }
        raw = json.dumps(body, separators=(",", ":")).encode()
        return {
            SIGNATURE_HEADER: sign(self.webhook_secret, raw),
            "Content-Type": "application/json",
        }, raw

    # --- planning -------------------------------------------------------------------

    def plan(
        self,
        tracking_number: str,
        scenario: Scenario | str | None = None,
        destination: Place | None = None,
    ) -> SimulationPlan:
        """The scans this carrier will report for `tracking_number` (pure, deterministic)."""
        rng = random.Random(f"waybill-simulated:{self.seed}:{tracking_number}")
        drawn = rng.choices(list(SCENARIO_WEIGHTS), weights=list(SCENARIO_WEIGHTS.values()))[0]
        chosen = Scenario(scenario) if scenario is not None else drawn
        if chosen is Scenario.MANUAL:
            return SimulationPlan(tracking_number, chosen, ())
        origin, transit, spare = rng.sample(HUBS, 3)
        dest: Place = destination or rng.choice([h for h in HUBS if h not in (origin, transit)])
        j = _Journey(rng)
        j.scan("IR", origin, (0.2, 0.8))
        j.scan("PU", origin, (2.0, 5.0), f"Picked up in {origin[0]}")
        j.scan("AR", origin, (1.0, 3.0), f"Arrived at {origin[0]} hub")
        j.scan("DP", origin, (1.0, 3.0), f"Departed {origin[0]} hub")
        j.scan("AR", transit, (6.0, 12.0), f"Arrived at {transit[0]} hub")

        if chosen is Scenario.DELAY:
            j.scan("DY", transit, (1.0, 3.0), rng.choice(DELAY_REASONS))
            j.scan("DP", transit, (18.0, 30.0), f"Departed {transit[0]} hub")
            j.scan("AR", spare, (5.0, 9.0), f"Arrived at {spare[0]} hub")
            j.scan("DP", spare, (2.0, 4.0), f"Departed {spare[0]} hub")
        elif chosen is Scenario.EXCEPTION:
            j.scan("EX", transit, (1.0, 3.0), rng.choice(EXCEPTION_REASONS))
            if rng.random() < 0.4:
                j.scan("RT", transit, (12.0, 24.0), "Exception unresolved; returning to sender")
                j.scan("AR", origin, (6.0, 12.0), f"Arrived at {origin[0]} hub (return)")
                j.scan("RS", origin, (4.0, 8.0), "Returned to sender")
                return SimulationPlan(tracking_number, chosen, tuple(j.scans))
            j.scan("DP", transit, (12.0, 24.0), f"Exception resolved; departed {transit[0]} hub")
        else:
            j.scan("DP", transit, (2.0, 4.0), f"Departed {transit[0]} hub")

        j.scan("AR", dest, (6.0, 12.0), f"Arrived at {dest[0]} delivery station")
        j.scan("OD", dest, (4.0, 8.0))
        if chosen is Scenario.FAILED_ATTEMPT:
            j.scan("NA", dest, (2.0, 5.0))
            if rng.random() < 0.3:
                j.scan("AP", dest, (3.0, 6.0), f"Available for pickup at a {dest[0]} service point")
                j.scan("DL", dest, (16.0, 40.0), "Collected by the recipient")
                return SimulationPlan(tracking_number, chosen, tuple(j.scans))
            j.scan("OD", dest, (16.0, 20.0), "Out for delivery (second attempt)")
        elif chosen is Scenario.RETURN_TO_SENDER:
            j.scan("NA", dest, (2.0, 5.0))
            j.scan("OD", dest, (16.0, 20.0), "Out for delivery (second attempt)")
            j.scan("NA", dest, (2.0, 5.0), "Second delivery attempt failed")
            j.scan("RT", dest, (10.0, 16.0), "Undeliverable; returning to sender")
            j.scan("AR", origin, (8.0, 14.0), f"Arrived at {origin[0]} hub (return)")
            j.scan("RS", origin, (4.0, 8.0), "Returned to sender")
            return SimulationPlan(tracking_number, chosen, tuple(j.scans))
        j.scan("DL", dest, (1.0, 5.0))
        return SimulationPlan(tracking_number, chosen, tuple(j.scans))

    def plan_return(
        self,
        tracking_number: str,
        scenario: Scenario | str | None = None,
        origin: Place | None = None,
    ) -> SimulationPlan:
        """The scans of a return parcel from the customer (`origin`) to the warehouse
        (pure, deterministic): dropped off, line-hauled, delivered to the warehouse's
        dock; `delay` and `exception` arrive late, `lost` never arrives (its last scan
        is an exception), `manual` plans nothing."""
        rng = random.Random(f"waybill-simulated-return:{self.seed}:{tracking_number}")
        weights = RETURN_SCENARIO_WEIGHTS
        drawn = rng.choices(list(weights), weights=list(weights.values()))[0]
        chosen = Scenario(scenario) if scenario is not None else drawn
        if chosen not in RETURN_SCENARIOS:
            raise ValueError(f"scenario {chosen.value!r} does not apply to return shipments")
        if chosen is Scenario.MANUAL:
            return SimulationPlan(tracking_number, chosen, ())
        transit, dock = rng.sample(HUBS, 2)
        start: Place = origin or rng.choice([h for h in HUBS if h not in (transit, dock)])
        j = _Journey(rng)
        j.scan("IR", start, (0.2, 0.8), "Return label created")
        j.scan("PU", start, (4.0, 30.0), f"Dropped off by the sender in {start[0]}")
        j.scan("AR", transit, (6.0, 12.0), f"Arrived at {transit[0]} hub")
        if chosen is Scenario.DELAY:
            j.scan("DY", transit, (1.0, 3.0), rng.choice(DELAY_REASONS))
            j.scan("DP", transit, (18.0, 30.0), f"Departed {transit[0]} hub")
        elif chosen is Scenario.EXCEPTION:
            j.scan("EX", transit, (1.0, 3.0), rng.choice(EXCEPTION_REASONS))
            j.scan("DP", transit, (12.0, 24.0), f"Exception resolved; departed {transit[0]} hub")
        elif chosen is Scenario.LOST:
            j.scan("EX", transit, (1.0, 3.0), "Exception: parcel missing at the hub")
            return SimulationPlan(tracking_number, chosen, tuple(j.scans))
        else:
            j.scan("DP", transit, (2.0, 4.0), f"Departed {transit[0]} hub")
        j.scan("OD", dock, (6.0, 12.0), "Out for delivery to the warehouse")
        j.scan("DL", dock, (1.0, 4.0), "Delivered to the warehouse")
        return SimulationPlan(tracking_number, chosen, tuple(j.scans))
