"""Shipment API on a real service: creation, idempotency, access, listing, cancel, public view."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from services.common.bus import Bus
from services.common.housekeeping import purge
from services.shipment.timing import add_business_days, end_of_day
from tests.harness import RunningService, Stack, auth, eventually
from tests.shipment.helpers import (
    SHIP_TO,
    accepted,
    create_shipment,
    created,
    outbox_events,
    push,
    scan,
    shipment_body,
    stream_events,
)


@pytest.fixture
async def svc(stack: Stack) -> RunningService:
    return await stack.start("shipment", simulator_enabled=False)


async def test_create_with_lots_replay_and_same_order_warehouse(
    stack: Stack, svc: RunningService, bus: Bus
) -> None:
    body = shipment_body()
    first = await create_shipment(svc, body, key="k1")
    assert first.status_code == 201, first.text
    s = first.json()
    today = datetime.now(UTC).date()
    assert s["status"] == "pending" and s["carrier"] == "simulated"
    assert s["tracking_number"].startswith("SIM")
    assert s["promised_date"] == add_business_days(today, 3).isoformat()
    assert datetime.fromisoformat(s["eta"]) == end_of_day(add_business_days(today, 3))
    assert s["ship_to"] == {**SHIP_TO, "country": "NL"}
    assert s["lines"] == [
        {
            "line_no": 1,
            "sku": "SKU-A",
            "quantity": 30,
            "unit_weight_grams": 1000,
            "lots": [{"lot": "LOT-A1", "quantity": 20}, {"lot": "LOT-A2", "quantity": 10}],
        },
        {
            "line_no": 2,
            "sku": "SKU-B",
            "quantity": 2,
            "unit_weight_grams": 500,
            "lots": [{"lot": "LOT-B1", "quantity": 2}],
        },
    ]
    # 30 kg + 1 kg in parcels of at most 20 kg.
    assert [p["weight_grams"] for p in s["packages"]] == [20_000, 11_000]
    assert s["packages"][1]["items"] == [
        {"line_no": 1, "sku": "SKU-A", "quantity": 10},
        {"line_no": 2, "sku": "SKU-B", "quantity": 2},
    ]
    assert s["events"] == [] and s["dispatched_at"] is None

    replay = await create_shipment(svc, body, key="k1")
    assert replay.status_code == 201 and replay.json() == s
    assert replay.headers["idempotent-replayed"] == "true"

    # Another key (say, a workflow retry after losing its key): the existing shipment.
    other_key = await create_shipment(svc, body, key="k2")
    assert other_key.status_code == 200 and other_key.json()["id"] == s["id"]
    assert "idempotent-replayed" not in other_key.headers

    # The same order from another warehouse is a second shipment.
    other_wh = await create_shipment(svc, {**body, "warehouse_id": "wh-rtm"}, key="k3")
    assert other_wh.status_code == 201 and other_wh.json()["id"] != s["id"]

    created_events = await outbox_events(stack.db_urls["shipment"], "created")
    assert [e["data"]["shipment_id"] for e in created_events] == [s["id"], other_wh.json()["id"]]
    data = created_events[0]["data"]
    assert data["order_id"] == body["order_id"] and data["customer_id"] == "cust-1"
    assert data["tracking_number"] == s["tracking_number"]
    assert data["promised_date"] == s["promised_date"]
    assert data["lots"] == [
        {"line_no": 1, "sku": "SKU-A", "warehouse_id": "wh-ams", "lot": "LOT-A1", "quantity": 20},
        {"line_no": 1, "sku": "SKU-A", "warehouse_id": "wh-ams", "lot": "LOT-A2", "quantity": 10},
        {"line_no": 2, "sku": "SKU-B", "warehouse_id": "wh-ams", "lot": "LOT-B1", "quantity": 2},
    ]

    async def both_published() -> list[dict[str, object]] | None:
        events = await stream_events(bus, "shipment.shipment.created")
        return events if len(events) >= 2 else None

    on_stream = await eventually(both_published, message="created events on SHIPMENT")
    assert len(on_stream) == 2
    assert {e["subject"] for e in on_stream} == {s["id"], other_wh.json()["id"]}


async def test_concurrent_creates_with_different_keys_make_one_shipment(
    stack: Stack, svc: RunningService
) -> None:
    body = shipment_body()
    answers = await asyncio.gather(*(create_shipment(svc, body, key=f"race-{i}") for i in range(8)))
    assert sorted(r.status_code for r in answers) == [200] * 7 + [201], [a.text for a in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    assert len(await outbox_events(stack.db_urls["shipment"], "created")) == 1


async def test_missing_idempotency_key_is_400(svc: RunningService) -> None:
    r = await svc.http.post("/shipments", json=shipment_body(), headers=auth("service"))
    assert r.status_code == 400
    assert r.json()["code"] == "idempotency_key_missing"


async def test_lots_must_sum_to_the_line_quantity(stack: Stack, svc: RunningService) -> None:
    body = shipment_body()
    body["lines"][0]["lots"] = [{"lot": "LOT-A1", "quantity": 20}, {"lot": "LOT-A2", "quantity": 9}]
    r = await create_shipment(svc, body)
    assert r.status_code == 422
    problem = r.json()
    assert problem["code"] == "validation_error"
    assert problem["errors"][0]["loc"][:3] == ["body", "lines", "0"]
    assert "sum to 29" in problem["errors"][0]["msg"]
    # A lot listed twice, and a line without lots, are refused too.
    body["lines"][0]["lots"] = [
        {"lot": "LOT-A1", "quantity": 15},
        {"lot": "LOT-A1", "quantity": 15},
    ]
    assert (await create_shipment(svc, body)).status_code == 422
    body["lines"][0]["lots"] = []
    assert (await create_shipment(svc, body)).status_code == 422
    assert await outbox_events(stack.db_urls["shipment"]) == []
    listing = await svc.http.get("/shipments", headers=auth("ops"))
    assert listing.json()["items"] == []


async def test_invalid_requests_are_422(svc: RunningService) -> None:
    cases = [
        (shipment_body(carrier="pigeon"), "unknown_carrier"),
        (shipment_body(service_level="overnight"), "validation_error"),
        (shipment_body(simulation={"scenario": "teleport"}), "validation_error"),
        (shipment_body(lines=[]), "validation_error"),
        (shipment_body(ship_to={**SHIP_TO, "country": "Netherlands"}), "validation_error"),
    ]
    body = shipment_body()
    body["lines"][1]["line_no"] = 1
    cases.append((body, "validation_error"))
    body = shipment_body()
    body["lines"][0]["quantity"] = 0
    cases.append((body, "validation_error"))
    for payload, code in cases:
        r = await create_shipment(svc, payload)
        assert r.status_code == 422, (payload, r.text)
        assert r.json()["code"] == code


async def test_service_levels_promise_dates(svc: RunningService) -> None:
    today = datetime.now(UTC).date()
    for level, days in (("express", 1), ("standard", 3), ("economy", 5)):
        s = await created(svc, shipment_body(service_level=level))
        assert s["service_level"] == level
        assert s["promised_date"] == add_business_days(today, days).isoformat()


async def test_who_may_see_what(svc: RunningService) -> None:
    mine = await created(svc, shipment_body(customer_id="cust-1"))
    theirs = await created(svc, shipment_body(customer_id="cust-2"))
    me = auth("customer", customer_id="cust-1")

    r = await svc.http.get(f"/shipments/{mine['id']}", headers=me)
    assert r.status_code == 200 and r.json()["id"] == mine["id"]
    r = await svc.http.get(f"/shipments/{theirs['id']}", headers=me)
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = await svc.http.get("/shipments/no-such-id", headers=me)
    assert r.status_code == 404

    listing = await svc.http.get("/shipments", headers=me)
    assert [s["id"] for s in listing.json()["items"]] == [mine["id"]]
    sneaky = await svc.http.get("/shipments", params={"customer_id": "cust-2"}, headers=me)
    assert sneaky.json()["items"] == []
    staff = await svc.http.get("/shipments", headers=auth("coordinator"))
    assert {s["id"] for s in staff.json()["items"]} == {mine["id"], theirs["id"]}

    supplier = auth("supplier", supplier_id="sup-1")
    assert (await svc.http.get("/shipments", headers=supplier)).status_code == 403
    assert (await svc.http.get(f"/shipments/{mine['id']}", headers=supplier)).status_code == 403
    assert (await svc.http.get("/shipments")).status_code == 401
    assert (await svc.http.get(f"/shipments/{mine['id']}")).status_code == 401

    # Only the order workflow (service) and coordinators create and cancel.
    for role, claims in (("customer", {"customer_id": "cust-1"}), ("ops", {})):
        r = await create_shipment(svc, shipment_body(), role=role, **claims)
        assert r.status_code == 403, role
        r = await svc.http.post(f"/shipments/{mine['id']}/cancel", headers=auth(role, **claims))
        assert r.status_code == 403, role
    assert (await svc.http.post("/shipments", json=shipment_body())).status_code == 401
    keyed = {"Idempotency-Key": "k"}
    assert (await svc.http.post("/shipments", json={}, headers=keyed)).status_code == 401


async def test_listing_filters_and_pages(svc: RunningService) -> None:
    ids = []
    for i in range(5):
        body = shipment_body(order_id=f"ord-page-{i}")
        body["lines"][1]["lots"] = [{"lot": f"LOT-P{i % 2}", "quantity": 2}]
        ids.append((await created(svc, body))["id"])
    staff = auth("ops")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await svc.http.get("/shipments", params=params, headers=staff)).json()
        seen += [s["id"] for s in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and seen == ids[::-1]

    by_order = await svc.http.get("/shipments", params={"order_id": "ord-page-3"}, headers=staff)
    assert [s["id"] for s in by_order.json()["items"]] == [ids[3]]
    by_lot = await svc.http.get("/shipments", params={"lot": "LOT-P1"}, headers=staff)
    assert {s["id"] for s in by_lot.json()["items"]} == {ids[1], ids[3]}
    by_both = await svc.http.get(
        "/shipments", params={"lot": "LOT-P1", "sku": "SKU-A"}, headers=staff
    )
    assert by_both.json()["items"] == []
    pending = await svc.http.get("/shipments", params={"status": "pending"}, headers=staff)
    assert len(pending.json()["items"]) == 5
    delivered = await svc.http.get("/shipments", params={"status": "delivered"}, headers=staff)
    assert delivered.json()["items"] == []
    bad = await svc.http.get("/shipments", params={"status": "lost"}, headers=staff)
    assert bad.status_code == 422
    bad = await svc.http.get("/shipments", params={"cursor": "garbage!"}, headers=staff)
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_cursor"


async def test_cancel_before_dispatch_then_replace(stack: Stack, svc: RunningService) -> None:
    body = shipment_body()
    s = await created(svc, body)
    coordinator = auth("coordinator")
    r = await svc.http.post(
        f"/shipments/{s['id']}/cancel",
        json={"reason": "customer changed mind"},
        headers=coordinator,
    )
    assert r.status_code == 200, r.text
    cancelled = r.json()
    assert cancelled["status"] == "cancelled" and cancelled["cancelled_at"]
    assert cancelled["cancel_reason"] == "customer changed mind" and cancelled["eta"] is None

    again = await svc.http.post(f"/shipments/{s['id']}/cancel", headers=auth("service"))
    assert again.status_code == 200 and again.json()["cancelled_at"] == cancelled["cancelled_at"]
    events = await outbox_events(stack.db_urls["shipment"], "cancelled")
    assert [e["data"] for e in events] == [
        {
            "shipment_id": s["id"],
            "order_id": body["order_id"],
            "status": "cancelled",
            "revision": 1,
            "reason": "customer changed mind",
        }
    ]
    assert cancelled["revision"] == 1

    # A cancelled shipment no longer blocks its (order, warehouse).
    replacement = await create_shipment(svc, body)
    assert replacement.status_code == 201 and replacement.json()["id"] != s["id"]
    missing = await svc.http.post("/shipments/nope/cancel", headers=coordinator)
    assert missing.status_code == 404


async def test_cancel_after_info_received_ok_after_pickup_409(
    stack: Stack, svc: RunningService
) -> None:
    now = datetime.now(UTC)
    early = await created(svc)
    await accepted(svc, [scan(early["tracking_number"], "IR", now - timedelta(hours=1))])
    r = await svc.http.post(f"/shipments/{early['id']}/cancel", headers=auth("service"))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    # Without a body there is no reason; the revision follows the scan's.
    [update] = await outbox_events(stack.db_urls["shipment"], "tracking_updated")
    [cancel] = await outbox_events(stack.db_urls["shipment"], "cancelled")
    assert (update["data"]["status"], update["data"]["revision"]) == ("info_received", 1)
    assert (cancel["data"]["status"], cancel["data"]["revision"]) == ("cancelled", 2)
    assert cancel["data"]["reason"] is None

    late = await created(svc)
    await accepted(
        svc,
        [
            scan(late["tracking_number"], "IR", now - timedelta(hours=2)),
            scan(late["tracking_number"], "PU", now - timedelta(hours=1)),
        ],
    )
    r = await svc.http.post(f"/shipments/{late['id']}/cancel", headers=auth("service"))
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "already_dispatched"
    shipment = (await svc.http.get(f"/shipments/{late['id']}", headers=auth("ops"))).json()
    assert shipment["status"] == "in_transit"
    assert shipment["dispatched_at"] is not None


async def test_public_tracking_leaks_no_customer_data(svc: RunningService) -> None:
    body = shipment_body(order_id="ord-secret-77", customer_id="cust-secret-99")
    s = await created(svc, body)
    now = datetime.now(UTC)
    await accepted(
        svc,
        [
            scan(s["tracking_number"], "PU", now - timedelta(hours=3), city="Venlo"),
            scan(
                s["tracking_number"],
                "DL",
                now - timedelta(hours=1),
                city="Utrecht",
                description="Signed for by ADA LOVELACE at 12 Analytical Engine Street",
            ),
        ],
    )
    r = await svc.http.get(f"/tracking/{s['tracking_number']}")  # no token
    assert r.status_code == 200, r.text
    public = r.json()
    assert public["tracking_number"] == s["tracking_number"]
    assert public["carrier"] == "simulated" and public["status"] == "delivered"
    assert public["eta"] == public["delivered_at"]
    assert [e["status"] for e in public["events"]] == ["in_transit", "delivered"]
    assert public["events"][0]["location"] == {"city": "Venlo", "country": "NL"}
    assert public["events"][1]["description"] == "Delivered"
    text = json.dumps(public)
    for secret in (
        "Ada",
        "LOVELACE",
        "Analytical",
        "Flat 3",
        "3511",
        "ord-secret-77",
        "cust-secret-99",
        s["id"],
        "wh-ams",
        "LOT-",
        "SKU-",
    ):
        assert secret.lower() not in text.lower(), secret
    assert set(public) == {
        "tracking_number",
        "carrier",
        "status",
        "promised_date",
        "eta",
        "delivered_at",
        "events",
    }
    # Staff still see what the carrier said.
    staff = (await svc.http.get(f"/shipments/{s['id']}", headers=auth("ops"))).json()
    assert staff["events"][1]["description"].startswith("Signed for by")
    assert (await svc.http.get("/tracking/SIM0000000000000000")).status_code == 404


async def test_carriers_are_listed(svc: RunningService) -> None:
    r = await svc.http.get("/carriers", headers=auth("ops"))
    assert r.status_code == 200
    assert {"code": "simulated", "name": "Waybill simulated carrier"} in r.json()


async def test_a_key_reused_after_its_answer_was_purged(svc: RunningService) -> None:
    """Stored answers are purged after a week. The same key then names the same shipment:
    while it is live the retry gets it back; once cancelled, a clear 409 instead of a
    second shipment or a crash."""
    body = shipment_body()
    first = await create_shipment(svc, body, key="reused")
    assert first.status_code == 201, first.text
    runtime = svc.runtime
    in_a_month = datetime.now(UTC) + timedelta(days=30)

    await purge(runtime.db, runtime.settings, now=in_a_month)
    live = await create_shipment(svc, body, key="reused")
    assert live.status_code == 200 and live.json()["id"] == first.json()["id"]

    r = await svc.http.post(f"/shipments/{first.json()['id']}/cancel", headers=auth("service"))
    assert r.status_code == 200, r.text
    await purge(runtime.db, runtime.settings, now=in_a_month)
    used = await create_shipment(svc, body, key="reused")
    assert used.status_code == 409, used.text
    assert used.json()["code"] == "idempotency_key_used"
    fresh = await create_shipment(svc, body, key="new-key")
    assert fresh.status_code == 201 and fresh.json()["id"] != first.json()["id"]


async def test_sizes_beyond_the_columns_are_4xx_not_500(stack: Stack, svc: RunningService) -> None:
    """Every number and string the API takes fits its column (run on PostgreSQL too)."""
    staff = auth("ops")
    body = shipment_body()
    body["lines"][0]["line_no"] = 2**31
    r = await create_shipment(svc, body)
    assert r.status_code == 422 and r.json()["code"] == "validation_error", r.text
    body = shipment_body()
    body["lines"][1]["lots"] = [{"lot": "LOT-B1", "quantity": 2**31}]
    body["lines"][1]["quantity"] = 2**31
    assert (await create_shipment(svc, body)).status_code == 422

    for params in ({"order_id": "o" * 65}, {"lot": "L" * 65}, {"cursor": "c" * 513}):
        r = await svc.http.get("/shipments", params=params, headers=staff)
        assert r.status_code == 422, (params, r.text)
    huge_int = b"[" + b"9" * 300 + b',"x"]'
    for raw in (json.dumps([10**40, "x"]).encode(), b'["9999-12-31T23:59:59-14:00","x"]', huge_int):
        cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        r = await svc.http.get("/shipments", params={"cursor": cursor}, headers=staff)
        assert r.status_code == 400 and r.json()["code"] == "invalid_cursor", (raw, r.text)
    long_id = await svc.http.get("/shipments/" + "s" * 37, headers=staff)
    assert long_id.status_code == 422

    s = await created(svc)
    for when in ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "1970-01-01T00:00Z"):
        item = {**scan(s["tracking_number"], "PU", datetime.now(UTC)), "occurred_at": when}
        r = await push(svc, [item])
        assert r.status_code == 422 and r.json()["code"] == "invalid_webhook", (when, r.text)
    assert await outbox_events(stack.db_urls["shipment"], "tracking_updated") == []
