"""Return shipments on a real service (NATS, database): creation against the outbound
shipment, idempotency, access, scans and revisions, events on their own subjects only,
cancel, the simulated carrier's return plans, bad input."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.common.bus import Bus
from services.shipment.carriers.simulated import SimulatedCarrier
from services.shipment.settings import ShipmentSettings
from tests.harness import RunningService, Stack, auth, eventually
from tests.shipment.helpers import (
    SHIP_TO,
    accepted,
    created,
    get_shipment,
    outbox_events,
    scan,
    shipment_body,
    stream_events,
)


@pytest.fixture
async def svc(stack: Stack) -> RunningService:
    return await stack.start("shipment", simulator_enabled=False)


def return_body(outbound: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A return of 5 of line 1 and both units of line 2 of `outbound`."""
    body: dict[str, Any] = {
        "return_id": str(uuid.uuid4()),
        "order_id": outbound["order_id"],
        "customer_id": outbound["customer_id"],
        "warehouse_id": outbound["warehouse_id"],
        "carrier": None,
        "lines": [
            {"line_no": 1, "sku": "SKU-A", "quantity": 5},
            {"line_no": 2, "sku": "SKU-B", "quantity": 2},
        ],
    }
    body.update(overrides)
    return body


async def post_return(
    svc: RunningService, body: dict[str, Any], *, key: str | None = None, role: str = "service"
) -> httpx.Response:
    headers = {**auth(role, subject=f"{role}-tests"), "Idempotency-Key": key or uuid.uuid4().hex}
    return await svc.http.post("/return-shipments", json=body, headers=headers)


async def new_return(svc: RunningService, body: dict[str, Any]) -> dict[str, Any]:
    r = await post_return(svc, body)
    assert r.status_code == 201, r.text
    shipment: dict[str, Any] = r.json()
    return shipment


async def get_return(
    svc: RunningService, shipment_id: str, role: str = "ops", **claims: Any
) -> Any:
    return await svc.http.get(f"/return-shipments/{shipment_id}", headers=auth(role, **claims))


async def on_stream(bus: Bus, subject: str, shipment_id: str, count: int) -> list[dict[str, Any]]:
    """The `count` envelopes about `shipment_id` on `subject`, once all are published."""

    async def check() -> list[dict[str, Any]] | None:
        events = [e for e in await stream_events(bus, subject) if e["subject"] == shipment_id]
        return events if len(events) >= count else None

    result: list[dict[str, Any]] = await eventually(check, 30, 0.1, f"{count} x {subject}")
    return result


async def test_create_from_the_outbound_shipment_and_repeat_answers_it(
    stack: Stack, svc: RunningService, bus: Bus
) -> None:
    outbound = await created(svc)
    body = return_body(outbound)
    first = await post_return(svc, body, key="r1")
    assert first.status_code == 201, first.text
    rs = first.json()
    assert rs["return_id"] == body["return_id"] and rs["order_id"] == outbound["order_id"]
    assert rs["customer_id"] == "cust-1" and rs["warehouse_id"] == "wh-ams"
    assert rs["carrier"] == "simulated" and rs["status"] == "pending" and rs["revision"] == 0
    assert rs["tracking_number"].startswith("SIM")
    assert rs["tracking_number"] != outbound["tracking_number"]
    assert rs["label_url"].endswith(f"{rs['tracking_number']}.pdf")
    assert rs["ship_from"] == {**SHIP_TO, "country": "NL"}  # the outbound ship-to
    assert rs["service_level"] == outbound["service_level"]
    # Unit weights come from the outbound lines: 5 x 1 kg + 2 x 0.5 kg in one parcel.
    assert rs["lines"] == [
        {"line_no": 1, "sku": "SKU-A", "quantity": 5, "unit_weight_grams": 1000},
        {"line_no": 2, "sku": "SKU-B", "quantity": 2, "unit_weight_grams": 500},
    ]
    assert [p["weight_grams"] for p in rs["packages"]] == [6000]
    assert rs["events"] == [] and rs["created_at"] and rs["promised_date"]

    replay = await post_return(svc, body, key="r1")
    assert replay.status_code == 201 and replay.json() == rs
    assert replay.headers["idempotent-replayed"] == "true"
    # Another key, or a coordinator: the return's one live return shipment.
    for role in ("service", "coordinator"):
        again = await post_return(svc, body, key=f"r2-{role}", role=role)
        assert again.status_code == 200 and again.json()["id"] == rs["id"], again.text
    # The same return for another warehouse is a conflict, not a second label.
    elsewhere = await created(
        svc, {**shipment_body(), "order_id": outbound["order_id"], "warehouse_id": "wh-rtm"}
    )
    conflict = await post_return(svc, {**body, "warehouse_id": elsewhere["warehouse_id"]})
    assert conflict.status_code == 409 and conflict.json()["code"] == "return_shipment_conflict"

    # The outbound shipment is untouched, and /shipments keeps answering outbound only.
    assert (await get_shipment(svc, outbound["id"]))["status"] == "pending"
    hidden = await svc.http.get(f"/shipments/{rs['id']}", headers=auth("ops"))
    assert hidden.status_code == 404
    listing = await svc.http.get(
        "/shipments", params={"order_id": outbound["order_id"]}, headers=auth("ops")
    )
    assert {s["id"] for s in listing.json()["items"]} == {outbound["id"], elsewhere["id"]}
    returns = await svc.http.get(
        "/return-shipments", params={"return_id": body["return_id"]}, headers=auth("ops")
    )
    assert [s["id"] for s in returns.json()["items"]] == [rs["id"]]
    by_order = await svc.http.get(
        "/return-shipments", params={"order_id": outbound["order_id"]}, headers=auth("ops")
    )
    assert [s["id"] for s in by_order.json()["items"]] == [rs["id"]]

    [event] = await on_stream(bus, "shipment.return_shipment.created", rs["id"], 1)
    assert event["type"] == "shipment.return_shipment.created.v1"
    assert event["data"] == {
        "shipment_id": rs["id"],
        "return_id": body["return_id"],
        "order_id": outbound["order_id"],
        "customer_id": "cust-1",
        "warehouse_id": "wh-ams",
        "carrier": "simulated",
        "tracking_number": rs["tracking_number"],
        "label_url": rs["label_url"],
    }
    outbound_created = await outbox_events(stack.db_urls["shipment"], "created")
    assert {e["subject"] for e in outbound_created} == {outbound["id"], elsewhere["id"]}


async def test_concurrent_creates_make_one_return_shipment(svc: RunningService) -> None:
    body = return_body(await created(svc))
    answers = await asyncio.gather(*(post_return(svc, body, key=f"race-{i}") for i in range(6)))
    assert sorted(r.status_code for r in answers) == [200] * 5 + [201], [a.text for a in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    listing = await svc.http.get(
        "/return-shipments", params={"return_id": body["return_id"]}, headers=auth("ops")
    )
    assert len(listing.json()["items"]) == 1


async def test_goods_go_back_only_where_they_left_from(svc: RunningService) -> None:
    outbound = await created(svc)
    cases = {
        "another warehouse": {"warehouse_id": "wh-rtm"},
        "another customer's order": {"customer_id": "cust-2"},
        "an unknown order": {"order_id": "ord-none"},
    }
    for name, change in cases.items():
        r = await post_return(svc, return_body(outbound, **change))
        assert r.status_code == 409, (name, r.text)
        assert r.json()["code"] == "no_outbound_shipment", name
    # A cancelled outbound shipment left from nowhere.
    cancelled = await created(svc)
    r = await svc.http.post(f"/shipments/{cancelled['id']}/cancel", headers=auth("service"))
    assert r.status_code == 200, r.text
    r = await post_return(svc, return_body(cancelled))
    assert r.status_code == 409 and r.json()["code"] == "no_outbound_shipment"

    lines = {
        "line_not_shipped": [{"line_no": 9, "sku": "SKU-A", "quantity": 1}],
        "line_not_shipped ": [{"line_no": 1, "sku": "SKU-B", "quantity": 1}],
        "quantity_exceeds_shipped": [{"line_no": 2, "sku": "SKU-B", "quantity": 3}],
    }
    for code, bad in lines.items():
        r = await post_return(svc, return_body(outbound, lines=bad))
        assert r.status_code == 422 and r.json()["code"] == code.strip(), r.text
    unknown = await post_return(svc, return_body(outbound, carrier="nope"))
    assert unknown.status_code == 422 and unknown.json()["code"] == "unknown_carrier"
    listing = await svc.http.get("/return-shipments", headers=auth("ops"))
    assert listing.json()["items"] == []  # nothing refused was written


async def test_bad_input_is_a_problem(svc: RunningService) -> None:
    outbound = await created(svc)
    good = return_body(outbound)
    no_key = await svc.http.post("/return-shipments", json=good, headers=auth("service"))
    assert no_key.status_code == 400
    bad_bodies = [
        {**good, "return_id": "x" * 37},
        {**good, "warehouse_id": "w" * 33},
        {**good, "order_id": ""},
        {**good, "lines": []},
        {**good, "lines": [{"line_no": 1, "sku": "SKU-A", "quantity": 0}]},
        {**good, "lines": [{"line_no": 1, "sku": "SKU-A", "quantity": 1}] * 2},
        {**good, "lines": [{"line_no": 2**31, "sku": "SKU-A", "quantity": 1}]},
        {**good, "simulation": {"scenario": "return_to_sender"}},
        {k: v for k, v in good.items() if k != "customer_id"},
    ]
    for bad in bad_bodies:
        r = await post_return(svc, bad)
        assert r.status_code == 422, (bad, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    for role, claims in (
        ("customer", {"customer_id": "cust-1"}),
        ("ops", {}),
        ("supplier", {"supplier_id": "sup-1"}),
    ):
        headers = {**auth(role, **claims), "Idempotency-Key": uuid.uuid4().hex}
        r = await svc.http.post("/return-shipments", json=good, headers=headers)
        assert r.status_code == 403, (role, r.text)
    assert (await get_return(svc, "x" * 37)).status_code == 422
    assert (await get_return(svc, "missing")).status_code == 404
    r = await svc.http.get("/return-shipments", params={"cursor": "junk"}, headers=auth("ops"))
    assert r.status_code == 400
    r = await svc.http.post("/return-shipments/missing/cancel", headers=auth("service"))
    assert r.status_code == 404
    # The outbound cancel route does not cancel return shipments, nor the other way round.
    rs = await new_return(svc, good)
    r = await svc.http.post(f"/shipments/{rs['id']}/cancel", headers=auth("service"))
    assert r.status_code == 404
    r = await svc.http.post(f"/return-shipments/{outbound['id']}/cancel", headers=auth("service"))
    assert r.status_code == 404


async def test_customers_see_only_their_own(svc: RunningService) -> None:
    mine = await new_return(svc, return_body(await created(svc)))
    theirs = await new_return(
        svc, return_body(await created(svc, shipment_body(customer_id="cust-2")))
    )
    me = {"customer_id": "cust-1"}
    assert (await get_return(svc, mine["id"], "customer", **me)).status_code == 200
    other = await get_return(svc, theirs["id"], "customer", **me)
    assert other.status_code == 404
    listing = await svc.http.get("/return-shipments", headers=auth("customer", **me))
    assert [s["id"] for s in listing.json()["items"]] == [mine["id"]]
    filtered = await svc.http.get(
        "/return-shipments", params={"customer_id": "cust-2"}, headers=auth("customer", **me)
    )
    assert filtered.json()["items"] == []
    r = await svc.http.post(
        f"/return-shipments/{mine['id']}/cancel", headers=auth("customer", **me)
    )
    assert r.status_code == 403
    # Public tracking works for a return shipment and shows no customer data.
    public = await svc.http.get(f"/tracking/{mine['tracking_number']}")
    assert public.status_code == 200
    text = public.text
    assert "cust-1" not in text and SHIP_TO["name"] not in text and mine["order_id"] not in text
    staff = await svc.http.get("/return-shipments", headers=auth("coordinator"))
    assert {s["id"] for s in staff.json()["items"]} >= {mine["id"], theirs["id"]}


async def test_scans_decide_status_with_revisions_on_return_subjects_only(
    stack: Stack, svc: RunningService, bus: Bus
) -> None:
    outbound = await created(svc)
    rs = await new_return(svc, return_body(outbound))
    number, t0 = rs["tracking_number"], datetime.now(UTC) - timedelta(hours=5)
    # Out of order: the warehouse's delivery scan arrives before the earlier ones.
    result = await accepted(
        svc,
        [
            scan(number, "DL", t0 + timedelta(hours=4), city="Amsterdam"),
            scan(number, "IR", t0),
            scan(number, "PU", t0 + timedelta(hours=1)),
        ],
    )
    assert [r["outcome"] for r in result["results"]] == ["accepted"] * 3
    got = (await get_return(svc, rs["id"])).json()
    assert got["status"] == "delivered" and got["revision"] == 3
    assert datetime.fromisoformat(got["delivered_at"]) == t0 + timedelta(hours=4)
    assert got["dispatched_at"] is not None
    assert [e["raw_code"] for e in got["events"]] == ["IR", "PU", "DL"]
    # A late scan after delivery is history only; a repeat is a duplicate.
    late = scan(number, "OD", t0 + timedelta(hours=3), event_id="late-1")
    await accepted(svc, [late])
    assert (await accepted(svc, [late]))["duplicates"] == 1
    got = (await get_return(svc, rs["id"])).json()
    assert got["status"] == "delivered" and got["revision"] == 4

    events = await on_stream(bus, "shipment.return_shipment.tracking_updated", rs["id"], 4)
    assert [e["data"]["revision"] for e in events] == [1, 2, 3, 4]
    assert [e["data"]["status"] for e in events] == ["delivered"] * 4
    assert [e["data"]["event_status"] for e in events] == [
        "delivered",
        "info_received",
        "in_transit",
        "out_for_delivery",
    ]
    data = events[0]["data"]
    assert data["return_id"] == rs["return_id"] and data["customer_id"] == "cust-1"
    assert data["order_id"] == outbound["order_id"] and data["tracking_number"] == number
    assert data["location"] == "Amsterdam, NL"

    # The outbound shipment of the same order gets its own scans and outbound events,
    # which now name the customer.
    await accepted(
        svc,
        [
            scan(outbound["tracking_number"], "PU", t0),
            scan(outbound["tracking_number"], "EX", t0 + timedelta(minutes=5)),
            scan(outbound["tracking_number"], "DL", t0 + timedelta(hours=1)),
        ],
    )
    updates = await on_stream(bus, "shipment.shipment.tracking_updated", outbound["id"], 3)
    assert {e["data"]["customer_id"] for e in updates} == {"cust-1"}
    [exception] = await on_stream(bus, "shipment.shipment.exception", outbound["id"], 1)
    [delivered] = await on_stream(bus, "shipment.shipment.delivered", outbound["id"], 1)
    assert exception["data"]["customer_id"] == delivered["data"]["customer_id"] == "cust-1"
    assert [e["data"]["revision"] for e in updates] == [1, 2, 3]

    # Outbound events never describe the return shipment, nor return events the outbound.
    outbox = await outbox_events(stack.db_urls["shipment"])
    for envelope in outbox:
        if envelope["type"].startswith("shipment.shipment."):
            assert envelope["subject"] != rs["id"], envelope
        if envelope["type"].startswith("shipment.return_shipment."):
            assert envelope["subject"] == rs["id"], envelope
    assert not [
        e
        for e in await stream_events(bus, "shipment.shipment.delivered")
        if e["subject"] == rs["id"]
    ]


async def test_cancel_before_dispatch_only(svc: RunningService, bus: Bus) -> None:
    outbound = await created(svc)
    body = return_body(outbound)
    rs = await new_return(svc, body)
    await accepted(svc, [scan(rs["tracking_number"], "IR", datetime.now(UTC))])
    r = await svc.http.post(
        f"/return-shipments/{rs['id']}/cancel",
        json={"reason": "customer keeps it"},
        headers=auth("service"),
    )
    assert r.status_code == 200, r.text
    cancelled = r.json()
    assert cancelled["status"] == "cancelled" and cancelled["revision"] == 2
    assert cancelled["cancel_reason"] == "customer keeps it" and cancelled["cancelled_at"]
    again = await svc.http.post(f"/return-shipments/{rs['id']}/cancel", headers=auth("service"))
    assert again.status_code == 200 and again.json()["revision"] == 2
    [event] = await on_stream(bus, "shipment.return_shipment.cancelled", rs["id"], 1)
    assert event["data"]["return_id"] == body["return_id"]
    assert event["data"]["revision"] == 2 and event["data"]["reason"] == "customer keeps it"
    assert not [
        e
        for e in await stream_events(bus, "shipment.shipment.cancelled")
        if e["subject"] == rs["id"]
    ]
    # Scans of a cancelled label change nothing; the outbound shipment is still live.
    await accepted(svc, [scan(rs["tracking_number"], "PU", datetime.now(UTC))])
    assert (await get_return(svc, rs["id"])).json()["status"] == "cancelled"
    assert (await get_shipment(svc, outbound["id"]))["status"] == "pending"

    # Once cancelled, the return may get a new return shipment (a new label).
    second = await post_return(svc, body)
    assert second.status_code == 201, second.text
    renewed = second.json()
    assert renewed["id"] != rs["id"] and renewed["tracking_number"] != rs["tracking_number"]
    await accepted(svc, [scan(renewed["tracking_number"], "PU", datetime.now(UTC))])
    r = await svc.http.post(
        f"/return-shipments/{renewed['id']}/cancel", headers=auth("coordinator")
    )
    assert r.status_code == 409 and r.json()["code"] == "already_dispatched"
    assert (await get_return(svc, renewed["id"])).json()["status"] == "in_transit"


# --- the simulated carrier --------------------------------------------------------


def test_return_plans_follow_the_seed() -> None:
    carrier = SimulatedCarrier(ShipmentSettings(simulator_seed=7))
    plan = carrier.plan_return("SIM0000000000000001", "happy", ("Utrecht", "UT", "NL"))
    assert plan == carrier.plan_return("SIM0000000000000001", "happy", ("Utrecht", "UT", "NL"))
    codes = [s.code for s in plan.scans]
    assert codes[0] == "IR" and codes[-2:] == ["OD", "DL"]
    assert plan.scans[0].city == "Utrecht" and plan.scans[-1].city != "Utrecht"
    assert [s.hours for s in plan.scans] == sorted(s.hours for s in plan.scans)
    other = SimulatedCarrier(ShipmentSettings(simulator_seed=8))
    assert other.plan_return("SIM0000000000000001", "happy") != carrier.plan_return(
        "SIM0000000000000001", "happy"
    )
    lost = carrier.plan_return("SIM0000000000000002", "lost")
    assert [s.code for s in lost.scans][-1] == "EX" and "DL" not in [s.code for s in lost.scans]
    delayed = carrier.plan_return("SIM0000000000000003", "delay")
    assert "DY" in [s.code for s in delayed.scans] and delayed.scans[-1].code == "DL"
    assert carrier.plan_return("SIM0000000000000004", "manual").scans == ()
    # Unpinned plans always arrive (lost only when asked for).
    drawn = {carrier.plan_return(f"SIM{i:016d}").scenario.value for i in range(200)}
    assert drawn == {"happy", "delay", "exception"}
    with pytest.raises(ValueError):
        carrier.plan_return("SIM0000000000000005", "return_to_sender")


async def test_simulated_return_reaches_the_warehouse_or_never_arrives(
    stack: Stack, bus: Bus
) -> None:
    svc = await stack.start("shipment", simulator_seconds_per_hour=0.01)
    outbound = await created(svc)  # pinned manual: the outbound plan is empty
    happy = await new_return(svc, return_body(outbound, simulation={"scenario": "happy"}))
    assert happy["simulation_scenario"] == "happy"

    async def status_of(shipment_id: str, wanted: str) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            got = (await get_return(svc, shipment_id)).json()
            return got if got["status"] == wanted else None

        result: dict[str, Any] = await eventually(check, 30, 0.1, f"return {wanted}")
        return result

    delivered = await status_of(happy["id"], "delivered")
    plan = (await svc.http.get(f"/shipments/{happy['id']}/simulation", headers=auth("ops"))).json()
    assert [e["raw_code"] for e in delivered["events"]] == [s["raw_code"] for s in plan["scans"]]
    assert {e["channel"] for e in delivered["events"]} == {"simulator"}
    assert delivered["events"][0]["location"]["city"] == "Utrecht"
    updates = await on_stream(
        bus, "shipment.return_shipment.tracking_updated", happy["id"], len(plan["scans"])
    )
    assert updates[-1]["data"]["status"] == "delivered"
    assert updates[-1]["data"]["revision"] == len(plan["scans"])

    other = await created(svc)
    lost = await new_return(svc, return_body(other, simulation={"scenario": "lost"}))
    stuck = await status_of(lost["id"], "exception")
    lost_plan = (
        await svc.http.get(f"/shipments/{lost['id']}/simulation", headers=auth("ops"))
    ).json()

    async def all_pushed() -> bool:
        scans = (
            await svc.http.get(f"/shipments/{lost['id']}/simulation", headers=auth("ops"))
        ).json()["scans"]
        return all(s["delivered"] for s in scans)

    await eventually(all_pushed, 30, 0.1, "lost plan pushed")
    assert lost_plan["scans"][-1]["raw_code"] == "EX"
    assert (await get_return(svc, lost["id"])).json()["status"] == "exception"
    assert stuck["delivered_at"] is None
    for subject in ("shipment.shipment.tracking_updated", "shipment.shipment.exception"):
        assert not [
            e
            for e in await stream_events(bus, subject)
            if e["subject"] in (happy["id"], lost["id"])
        ]
