"""Pure rules: calendar, packing, status machine, ETA, the simulated carrier, signatures."""

from __future__ import annotations

import itertools
import json
import random
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from services.common.statuses import ShipmentStatus
from services.shipment.carriers import Carriers
from services.shipment.carriers.base import (
    Location,
    TrackingEventIn,
    UnknownStatusCode,
    WebhookPayloadError,
    WebhookSignatureError,
    sign,
    verify_signature,
)
from services.shipment.carriers.simulated import CODES, Scenario, SimulatedCarrier
from services.shipment.domain import (
    EventFact,
    PackLine,
    TooManyPackages,
    compute_eta,
    count_parcels,
    derive,
    derive_status,
    pack,
)
from services.shipment.settings import ShipmentSettings
from services.shipment.timing import add_business_days, end_of_day, promised_date

S = ShipmentStatus
FRIDAY = date(2025, 3, 7)
MONDAY = date(2025, 3, 10)


def settings(tmp_path: Path, **overrides: object) -> ShipmentSettings:
    values: dict[str, object] = {
        "jwt_secret": "j" * 32,
        "webhook_secret": "hook-secret",
        "var_dir": str(tmp_path),
    }
    values.update(overrides)
    return ShipmentSettings(**values)  # type: ignore[arg-type]


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def fact(status: ShipmentStatus, when: datetime, seq: int, delayed: bool = False) -> EventFact:
    return EventFact(status, when, seq, delayed)


# --- calendar ---------------------------------------------------------------------


def test_business_days_skip_weekends() -> None:
    assert add_business_days(FRIDAY, 1) == MONDAY
    assert add_business_days(FRIDAY, 0) == FRIDAY
    assert add_business_days(date(2025, 3, 8), 1) == MONDAY  # Saturday
    assert add_business_days(date(2025, 3, 5), 3) == MONDAY  # Wednesday


def test_promised_date_per_service_level() -> None:
    wednesday = date(2025, 3, 5)
    assert promised_date("express", wednesday) == date(2025, 3, 6)
    assert promised_date("standard", wednesday) == MONDAY
    assert promised_date("economy", wednesday) == date(2025, 3, 12)


# --- packing ------------------------------------------------------------------------


def test_packing_splits_lines_by_weight() -> None:
    parcels = pack(
        [PackLine(1, "A", 30, 1000), PackLine(2, "B", 3, 4000)], max_grams=20_000, max_packages=9
    )
    assert [p.weight_grams for p in parcels] == [20_000, 18_000, 4_000]
    assert parcels[0].items == [{"line_no": 1, "sku": "A", "quantity": 20}]
    assert parcels[1].items == [
        {"line_no": 1, "sku": "A", "quantity": 10},
        {"line_no": 2, "sku": "B", "quantity": 2},
    ]
    assert parcels[2].items == [{"line_no": 2, "sku": "B", "quantity": 1}]
    assert all(p.weight_grams <= 20_000 for p in parcels)
    assert sum(int(i["quantity"]) for p in parcels for i in p.items) == 33


def test_packing_oversize_units_travel_alone_and_limit_applies() -> None:
    parcels = pack([PackLine(1, "SOFA", 2, 35_000)], max_grams=20_000, max_packages=5)
    assert [(p.number, p.weight_grams) for p in parcels] == [(1, 35_000), (2, 35_000)]
    with pytest.raises(TooManyPackages) as refused:
        pack([PackLine(1, "A", 100, 1000)], max_grams=20_000, max_packages=4)
    assert (refused.value.needed, refused.value.allowed) == (5, 4)
    assert str(refused.value) == (
        "the lines weigh 100 kg and need 5 packages of at most 20 kg; a shipment may have at most 4"
    )


def test_a_huge_order_is_counted_not_packed() -> None:
    """Millions of overweight units are refused at once, not parcel by parcel."""
    lines = [PackLine(n, f"S{n}", 100_000, 1_000_000) for n in range(1, 501)]
    assert count_parcels(lines, 20_000) == 50_000_000
    with pytest.raises(TooManyPackages):
        pack(lines, max_grams=20_000, max_packages=999)


def test_count_parcels_agrees_with_pack() -> None:
    rng = random.Random(6)
    for _ in range(2000):
        lines = [
            PackLine(n, "S", rng.randint(1, 40), rng.choice([1, 250, 999, 3000, 7001, 25_000]))
            for n in range(1, rng.randint(2, 6))
        ]
        max_grams = rng.choice([1000, 7001, 20_000])
        assert count_parcels(lines, max_grams) == len(pack(lines, max_grams, 10**6)), lines


# --- status machine -------------------------------------------------------------------


def test_latest_scan_by_occurred_at_sets_the_status() -> None:
    day = MONDAY
    early = fact(S.IN_TRANSIT, at(day, 8), seq=2)
    later = fact(S.OUT_FOR_DELIVERY, at(day, 9), seq=1)
    assert derive_status("info_received", [later, early]) == "out_for_delivery"
    assert derive_status("pending", []) == "pending"


def test_terminal_status_is_never_regressed() -> None:
    delivered = fact(S.DELIVERED, at(MONDAY, 12), seq=1)
    late_scan = fact(S.IN_TRANSIT, at(MONDAY, 9), seq=2)
    wrong_clock = fact(S.IN_TRANSIT, at(MONDAY, 15), seq=3)
    assert derive_status("in_transit", [delivered]) == "delivered"
    assert derive_status("delivered", [delivered, late_scan]) == "delivered"
    assert derive_status("delivered", [delivered, late_scan, wrong_clock]) == "delivered"
    assert derive_status("returned_to_sender", [delivered]) == "returned_to_sender"
    assert derive_status("cancelled", [fact(S.IN_TRANSIT, at(MONDAY, 9), 1)]) == "cancelled"


def test_status_does_not_depend_on_arrival_order() -> None:
    """Whatever order scans arrive in, the shipment ends in the same status."""
    scans = [
        fact(S.INFO_RECEIVED, at(MONDAY, 6), 0),
        fact(S.IN_TRANSIT, at(MONDAY, 8), 0),
        fact(S.OUT_FOR_DELIVERY, at(MONDAY, 10), 0),
        fact(S.DELIVERED, at(MONDAY, 12), 0),
        fact(S.IN_TRANSIT, at(MONDAY, 13), 0),  # a bogus scan after delivery
    ]
    finals = set()
    for perm in itertools.permutations(scans):
        status = "pending"
        seen: list[EventFact] = []
        for seq, scan in enumerate(perm):
            seen.append(EventFact(scan.status, scan.occurred_at, seq))
            status = derive_status(status, seen)
        finals.add(status)
    assert finals == {"delivered"}


def test_derive_tracks_milestones() -> None:
    events = [
        fact(S.INFO_RECEIVED, at(MONDAY, 6), 1),
        fact(S.IN_TRANSIT, at(MONDAY, 8), 2),
        fact(S.DELIVERED, at(MONDAY, 17), 3),
    ]
    d = derive("in_transit", MONDAY + timedelta(days=2), events)
    assert d.status == "delivered"
    assert d.dispatched_at == at(MONDAY, 8)
    assert d.delivered_at == at(MONDAY, 17) == d.eta
    assert d.last_event_at == at(MONDAY, 17)


# --- ETA ------------------------------------------------------------------------------


def test_eta_rules() -> None:
    promised = date(2025, 3, 12)
    transit = fact(S.IN_TRANSIT, at(MONDAY, 8), 1)
    assert compute_eta("pending", promised, []) == end_of_day(promised)
    assert compute_eta("in_transit", promised, [transit]) == end_of_day(promised)
    ofd = fact(S.OUT_FOR_DELIVERY, at(MONDAY, 9), 2)
    assert compute_eta("out_for_delivery", promised, [transit, ofd]) == end_of_day(MONDAY)
    # A failed attempt on a Friday: next business day is Monday.
    thursday = fact(S.OUT_FOR_DELIVERY, at(FRIDAY - timedelta(days=1), 9), 2)
    failed = fact(S.ATTEMPT_FAILED, at(FRIDAY, 15), 3)
    assert compute_eta("attempt_failed", promised, [thursday, failed]) == end_of_day(MONDAY)
    # Each delay or exception pushes the promise by a business day.
    delay = fact(S.IN_TRANSIT, at(MONDAY, 10), 4, delayed=True)
    exc = fact(S.EXCEPTION, at(MONDAY, 11), 5)
    assert compute_eta("in_transit", promised, [transit, delay]) == end_of_day(date(2025, 3, 13))
    assert compute_eta("exception", promised, [transit, delay, exc]) == end_of_day(
        date(2025, 3, 14)
    )
    # Never before the latest scan: a scan past the promise means next business day.
    late = fact(S.IN_TRANSIT, at(date(2025, 3, 14), 10), 6)
    assert compute_eta("in_transit", promised, [transit, late]) == end_of_day(date(2025, 3, 17))
    delivered = fact(S.DELIVERED, at(MONDAY, 16), 7)
    assert compute_eta("delivered", promised, [transit, delivered]) == at(MONDAY, 16)
    assert compute_eta("returned_to_sender", promised, [transit]) is None
    assert compute_eta("cancelled", promised, []) is None


# --- the simulated carrier -------------------------------------------------------------


def test_simulated_codes_normalize(tmp_path: Path) -> None:
    carrier = SimulatedCarrier(settings(tmp_path))
    expected = {
        "IR": S.INFO_RECEIVED,
        "PU": S.IN_TRANSIT,
        "AR": S.IN_TRANSIT,
        "DP": S.IN_TRANSIT,
        "OD": S.OUT_FOR_DELIVERY,
        "DL": S.DELIVERED,
        "NA": S.ATTEMPT_FAILED,
        "AP": S.AVAILABLE_FOR_PICKUP,
        "EX": S.EXCEPTION,
        "RS": S.RETURNED_TO_SENDER,
        "XP": S.EXPIRED,
    }
    for code, status in expected.items():
        assert carrier.normalize(code) is status
        assert carrier.normalize(code.lower()) is status
    assert carrier.is_delay("DY") and not carrier.is_delay("AR")
    with pytest.raises(UnknownStatusCode):
        carrier.normalize("ZZ")


def test_same_seed_same_plan_other_seed_other_plan(tmp_path: Path) -> None:
    a = SimulatedCarrier(settings(tmp_path, simulator_seed=42))
    b = SimulatedCarrier(settings(tmp_path, simulator_seed=42))
    c = SimulatedCarrier(settings(tmp_path, simulator_seed=7))
    numbers = [f"SIM{n:016d}" for n in range(40)]
    assert [a.plan(n) for n in numbers] == [b.plan(n) for n in numbers]
    assert [a.plan(n) for n in numbers] != [c.plan(n) for n in numbers]
    assert a.plan(numbers[0]) != a.plan(numbers[1])


def test_unpinned_scenarios_cover_every_kind(tmp_path: Path) -> None:
    carrier = SimulatedCarrier(settings(tmp_path))
    drawn = {carrier.plan(f"SIM{n:016d}").scenario for n in range(400)}
    assert drawn == set(Scenario) - {Scenario.MANUAL, Scenario.LOST}  # lost: returns only


@pytest.mark.parametrize("scenario", list(Scenario))
def test_each_scenario_tells_its_story(tmp_path: Path, scenario: Scenario) -> None:
    carrier = SimulatedCarrier(settings(tmp_path))
    for n in range(25):
        plan = carrier.plan(f"SIM{n:016d}", scenario, ("Utrecht", "UT", "NL"))
        codes = [s.code for s in plan.scans]
        if scenario is Scenario.MANUAL:
            assert codes == []
            continue
        hours = [s.hours for s in plan.scans]
        assert hours == sorted(hours) and len(set(hours)) == len(hours)
        assert [s.seq for s in plan.scans] == list(range(1, len(codes) + 1))
        assert codes[:2] == ["IR", "PU"]
        assert all(code in CODES for code in codes)
        if scenario is Scenario.HAPPY:
            assert codes[-2:] == ["OD", "DL"] and not {"NA", "EX", "DY"} & set(codes)
            assert plan.scans[-1].city == "Utrecht"
        elif scenario is Scenario.DELAY:
            assert "DY" in codes and codes[-1] == "DL"
            happy = carrier.plan(f"SIM{n:016d}", Scenario.HAPPY, ("Utrecht", "UT", "NL"))
            assert len(codes) > len(happy.scans)
            assert plan.scans[-1].hours > happy.scans[-1].hours + 12
        elif scenario is Scenario.FAILED_ATTEMPT:
            i = codes.index("NA")
            assert codes[i - 1] == "OD" and codes[-1] == "DL"
            assert codes[i + 1] in {"OD", "AP"}
            assert plan.scans[i + 1].hours - plan.scans[i].hours >= 3
        elif scenario is Scenario.EXCEPTION:
            assert "EX" in codes and codes[-1] in {"DL", "RS"}
        elif scenario is Scenario.RETURN_TO_SENDER:
            assert codes[-1] == "RS" and codes.count("NA") == 2 and "DL" not in codes


def test_exception_scenario_both_endings_happen(tmp_path: Path) -> None:
    carrier = SimulatedCarrier(settings(tmp_path))
    endings = {carrier.plan(f"SIM{n:016d}", Scenario.EXCEPTION).scans[-1].code for n in range(60)}
    assert endings == {"DL", "RS"}


# --- webhooks -------------------------------------------------------------------------


def test_webhook_signature_is_verified(tmp_path: Path) -> None:
    carrier = SimulatedCarrier(settings(tmp_path))
    body = json.dumps(
        {
            "events": [
                {"tracking_number": "SIM1", "code": "pu", "occurred_at": "2025-03-10T08:00:00Z"}
            ]
        }
    ).encode()
    good = {"x-waybill-signature": sign("hook-secret", body)}
    [event] = carrier.parse_webhook(good, body)
    assert event.raw_code == "PU" and event.occurred_at == at(MONDAY, 8)
    for headers in (
        {},
        {"X-Waybill-Signature": sign("other-secret", body)},
        {"X-Waybill-Signature": sign("hook-secret", body + b" ")},
        {"X-Waybill-Signature": "sha256=" + "0" * 64},
        {"X-Waybill-Signature": sign("hook-secret", body).replace("t=", "t=1")},
    ):
        with pytest.raises(WebhookSignatureError):
            carrier.parse_webhook(headers, body)
    # A push captured and sent again later is refused; a little clock skew is not.
    now = int(time.time())
    late = {"X-Waybill-Signature": sign("hook-secret", body, timestamp=now - 301)}
    with pytest.raises(WebhookSignatureError, match="replayed"):
        carrier.parse_webhook(late, body)
    skewed = {"X-Waybill-Signature": sign("hook-secret", body, timestamp=now + 120)}
    assert carrier.parse_webhook(skewed, body)
    # While rotating its secret, a sender signs with the old and the new one.
    rotating = (
        sign("old-secret", body, timestamp=now)
        + ",v1="
        + sign("hook-secret", body, timestamp=now).split("v1=")[1]
    )
    assert carrier.parse_webhook({"X-Waybill-Signature": rotating}, body)
    naive = b'{"events": [{"tracking_number": "SIM1", "code": "PU", "occurred_at": "2025-03-10"}]}'
    with pytest.raises(WebhookPayloadError):
        carrier.parse_webhook({"X-Waybill-Signature": sign("hook-secret", naive)}, naive)


def test_webhook_request_round_trips(tmp_path: Path) -> None:
    """What the simulator pushes parses back to the same scans through parse_webhook."""
    carrier = SimulatedCarrier(settings(tmp_path))
    scans = [
        TrackingEventIn(
            tracking_number="SIM1",
            raw_code="AR",
            occurred_at=at(MONDAY, 8),
            event_id="SIM1-03",
            location=Location(city="Leipzig", region="SN", country="DE"),
            description="Arrived at Leipzig hub",
        ),
        TrackingEventIn(tracking_number="SIM1", raw_code="DL", occurred_at=at(MONDAY, 17)),
    ]
    headers, body = carrier.webhook_request(scans)
    verify_signature("hook-secret", headers, body)
    assert carrier.parse_webhook(headers, body) == scans


def test_registry_loads_every_carrier_module(tmp_path: Path) -> None:
    carriers = Carriers(settings(tmp_path))
    assert "simulated" in carriers.codes
    assert isinstance(carriers.get("simulated"), SimulatedCarrier)
    assert carriers.get("nope") is None


def test_default_webhook_secret_is_derived_from_the_jwt_secret(tmp_path: Path) -> None:
    derived = settings(tmp_path, webhook_secret="").resolved_webhook_secret()
    assert derived == settings(tmp_path, webhook_secret="").resolved_webhook_secret()
    assert (
        derived
        != settings(tmp_path, webhook_secret="", jwt_secret="k" * 32).resolved_webhook_secret()
    )
    assert settings(tmp_path).resolved_webhook_secret() == "hook-secret"
