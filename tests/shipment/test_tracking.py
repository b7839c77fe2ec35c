"""Carrier webhooks and tracking ingestion: signatures, duplicates, order, ETA, milestones."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.common.bus import Bus
from services.shipment.carriers.base import sign
from services.shipment.timing import end_of_day, next_business_day
from tests.harness import RunningService, Stack, auth, eventually
from tests.shipment.helpers import (
    accepted,
    created,
    get_shipment,
    outbox_events,
    push,
    scan,
    shipment_body,
    stream_events,
    streamed_push,
)


@pytest.fixture
async def svc(stack: Stack) -> RunningService:
    return await stack.start("shipment", simulator_enabled=False, webhook_secret="carrier-key")


def ago(hours: float) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)


async def test_bad_signature_is_401_and_changes_nothing(stack: Stack, svc: RunningService) -> None:
    s = await created(svc)
    scans = [scan(s["tracking_number"], "PU", ago(1))]
    for kwargs in (
        {"secret": "not-the-carrier-key"},
        {"signature": "sha256=" + "ab" * 32},
        {"signature": "md5=abc"},
        {"signature": sign("carrier-key", json.dumps({"events": scans}).encode(), 1)},
    ):
        r = await push(svc, scans, **kwargs)  # type: ignore[arg-type]
        assert r.status_code == 401, r.text
        assert r.json()["code"] == "invalid_signature"
        assert r.headers["content-type"] == "application/problem+json"
    body = json.dumps({"events": scans}).encode()
    unsigned = await svc.http.post("/carriers/simulated/webhook", content=body)
    assert unsigned.status_code == 401
    # Signed for another body: replaying a signature on altered content fails.
    other = json.dumps({"events": [scan(s["tracking_number"], "DL", ago(0.5))]}).encode()
    forged = await svc.http.post(
        "/carriers/simulated/webhook",
        content=other,
        headers={"X-Waybill-Signature": sign("carrier-key", body)},
    )
    assert forged.status_code == 401
    assert (await get_shipment(svc, s["id"]))["events"] == []
    assert await outbox_events(stack.db_urls["shipment"], "tracking_updated") == []

    good = await push(svc, scans, secret="carrier-key")
    assert good.status_code == 200 and good.json()["accepted"] == 1
    # Hex case does not matter; an oversized push is refused before it is read.
    t, _, mac = sign("carrier-key", body).partition(",v1=")
    upper = await push(svc, scans, signature=f"{t},v1={mac.upper()}")
    assert upper.status_code == 200 and upper.json()["duplicates"] == 1
    huge = await svc.http.post(
        "/carriers/simulated/webhook",
        content=b" " * 1_000_001,
        headers={"X-Waybill-Signature": "x"},
    )
    assert huge.status_code == 413


async def test_malformed_or_unknown(svc: RunningService) -> None:
    s = await created(svc)
    r = await push(svc, [{"tracking_number": s["tracking_number"], "code": "PU"}])
    assert r.status_code == 422 and r.json()["code"] == "invalid_webhook"
    r = await push(svc, [scan(s["tracking_number"], "PU", ago(1))], carrier="pigeon")
    assert r.status_code == 404
    body = b"not json"
    r = await svc.http.post(
        "/carriers/simulated/webhook",
        content=body,
        headers={"X-Waybill-Signature": sign("carrier-key", body)},
    )
    assert r.status_code == 422

    # Unknown tracking numbers and codes are reported per event; the rest is applied.
    result = await accepted(
        svc,
        [
            scan("SIM9999999999999999", "PU", ago(2), event_id="e-unknown"),
            scan(s["tracking_number"], "ZZ", ago(2), event_id="e-code"),
            scan(s["tracking_number"], "PU", ago(1), event_id="e-ok"),
        ],
    )
    assert (result["received"], result["accepted"], result["rejected"]) == (3, 1, 2)
    assert [(x["event_id"], x["outcome"], x["status"]) for x in result["results"]] == [
        ("e-unknown", "unknown_tracking_number", None),
        ("e-code", "unknown_status_code", None),
        ("e-ok", "accepted", "in_transit"),
    ]


async def test_duplicates_change_nothing_and_emit_once(
    stack: Stack, svc: RunningService, bus: Bus
) -> None:
    s = await created(svc)
    tn = s["tracking_number"]
    with_id = scan(tn, "PU", ago(3), event_id="carrier-evt-1")
    no_id = scan(tn, "AR", ago(2), event_id=None)
    first = await accepted(svc, [with_id, no_id])
    assert first["accepted"] == 2
    before = await get_shipment(svc, s["id"])

    # The same id with other content is still the same event; an id-less scan with the
    # same code and time (another timestamp spelling) too; and a batch repeating itself.
    moved = {**with_id, "code": "DL", "occurred_at": ago(0.1).isoformat()}
    respelled = {**no_id, "occurred_at": no_id["occurred_at"].replace("+00:00", "Z")}
    again = await accepted(svc, [with_id, moved, respelled, no_id])
    assert again["accepted"] == 0 and again["duplicates"] == 4
    assert {x["outcome"] for x in again["results"]} == {"duplicate"}
    after = await get_shipment(svc, s["id"])
    assert after == before
    assert len(after["events"]) == 2

    updates = await outbox_events(stack.db_urls["shipment"], "tracking_updated")
    assert len(updates) == 2

    # An id-less scan at another time is a new scan.
    third = await accepted(svc, [scan(tn, "AR", ago(1), event_id=None)])
    assert third["accepted"] == 1

    async def three_published() -> list[dict[str, Any]] | None:
        events = await stream_events(bus, "shipment.shipment.tracking_updated")
        return events if len(events) >= 3 else None

    published = await eventually(three_published, message="tracking updates on SHIPMENT")
    assert len(published) == 3
    assert [e["data"]["event_status"] for e in published] == ["in_transit"] * 3


async def test_out_of_order_delivered_then_late_scan(
    stack: Stack, svc: RunningService, bus: Bus
) -> None:
    s = await created(svc)
    tn = s["tracking_number"]
    delivered_at = ago(1)
    await accepted(svc, [scan(tn, "DL", delivered_at, city="Utrecht")])
    late = await accepted(
        svc,
        [
            scan(tn, "AR", ago(5)),  # happened before delivery, arrived after
            scan(tn, "AR", ago(0.5)),  # a bogus scan after delivery
            scan(tn, "EX", ago(0.2)),
        ],
    )
    assert late["accepted"] == 3
    assert {r["status"] for r in late["results"]} == {"delivered"}
    shipment = await get_shipment(svc, s["id"])
    assert shipment["status"] == "delivered"
    assert datetime.fromisoformat(shipment["delivered_at"]) == delivered_at
    assert shipment["eta"] == shipment["delivered_at"]
    assert [e["raw_code"] for e in shipment["events"]] == ["AR", "DL", "AR", "EX"]
    occurred = [e["occurred_at"] for e in shipment["events"]]
    assert occurred == sorted(occurred)
    # The dispatch time learns from the late, earlier scan.
    assert datetime.fromisoformat(shipment["dispatched_at"]) < delivered_at

    db = stack.db_urls["shipment"]
    updates = await outbox_events(db, "tracking_updated")
    assert [u["data"]["status"] for u in updates] == ["delivered"] * 4
    assert [u["data"]["event_status"] for u in updates] == [
        "delivered",
        "in_transit",
        "in_transit",
        "exception",
    ]
    delivered = await outbox_events(db, "delivered")
    assert [d["data"] for d in delivered] == [
        {
            "shipment_id": s["id"],
            "order_id": s["order_id"],
            "customer_id": s["customer_id"],
            "delivered_at": delivered_at.isoformat(),
        }
    ]
    assert await outbox_events(db, "exception") == []  # the status never became exception


async def test_a_delivered_scan_decides_whatever_arrived_before_it(svc: RunningService) -> None:
    """Arrival order does not matter: a bogus scan timed after the delivery, pushed
    first, does not keep a later-arriving delivery from delivering the shipment."""
    s = await created(svc)
    tn = s["tracking_number"]
    await accepted(svc, [scan(tn, "OD", ago(3))])
    await accepted(svc, [scan(tn, "IR", ago(9)), scan(tn, "PU", ago(8))])
    assert (await get_shipment(svc, s["id"]))["status"] == "out_for_delivery"
    await accepted(svc, [scan(tn, "AR", ago(0.5))])  # carrier clock skew, arrives first
    assert (await get_shipment(svc, s["id"]))["status"] == "in_transit"
    delivered_at = ago(2)
    result = await accepted(svc, [scan(tn, "DL", delivered_at)])
    assert result["results"][0]["status"] == "delivered"
    shipment = await get_shipment(svc, s["id"])
    assert shipment["status"] == "delivered"
    assert datetime.fromisoformat(shipment["delivered_at"]) == delivered_at


async def test_attempt_failed_pushes_the_eta(svc: RunningService) -> None:
    s = await created(svc, shipment_body(service_level="standard"))
    tn = s["tracking_number"]
    promised = end_of_day(datetime.fromisoformat(s["promised_date"]).date())
    assert datetime.fromisoformat(s["eta"]) == promised

    out = ago(0.5)
    await accepted(svc, [scan(tn, "PU", ago(6)), scan(tn, "OD", out)])
    shipment = await get_shipment(svc, s["id"])
    assert shipment["status"] == "out_for_delivery"
    assert datetime.fromisoformat(shipment["eta"]) == end_of_day(out.date())

    attempt = ago(0.25)
    result = await accepted(svc, [scan(tn, "NA", attempt)])
    assert result["results"][0]["status"] == "attempt_failed"
    shipment = await get_shipment(svc, s["id"])
    assert shipment["status"] == "attempt_failed"
    pushed = datetime.fromisoformat(shipment["eta"])
    assert pushed == end_of_day(next_business_day(attempt.date()))
    assert end_of_day(out.date()) < pushed < promised  # not simply back to the promise


async def test_exception_and_recovery_emit_exception_once(
    stack: Stack, svc: RunningService
) -> None:
    s = await created(svc)
    tn = s["tracking_number"]
    promised = datetime.fromisoformat(s["promised_date"]).date()
    await accepted(svc, [scan(tn, "PU", ago(6)), scan(tn, "EX", ago(5), description="Customs")])
    shipment = await get_shipment(svc, s["id"])
    assert shipment["status"] == "exception"
    assert datetime.fromisoformat(shipment["eta"]) == end_of_day(next_business_day(promised))
    await accepted(svc, [scan(tn, "DP", ago(4))])
    assert (await get_shipment(svc, s["id"]))["status"] == "in_transit"
    await accepted(svc, [scan(tn, "EX", ago(3), description="Damaged")])
    shipment = await get_shipment(svc, s["id"])
    assert shipment["status"] == "exception"
    two_days = next_business_day(next_business_day(promised))
    assert datetime.fromisoformat(shipment["eta"]) == end_of_day(two_days)
    exceptions = await outbox_events(stack.db_urls["shipment"], "exception")
    assert [e["data"] for e in exceptions] == [
        {
            "shipment_id": s["id"],
            "order_id": s["order_id"],
            "customer_id": s["customer_id"],
            "status": "exception",
            "description": "Customs",
        }
    ]


async def test_returned_to_sender_carries_the_lots(
    stack: Stack, svc: RunningService, bus: Bus
) -> None:
    s = await created(svc)
    tn = s["tracking_number"]
    result = await accepted(
        svc, [scan(tn, "PU", ago(9)), scan(tn, "RT", ago(5)), scan(tn, "RS", ago(1))]
    )
    assert [r["status"] for r in result["results"]] == [
        "in_transit",
        "exception",
        "returned_to_sender",
    ]
    shipment = await get_shipment(svc, s["id"])
    assert shipment["status"] == "returned_to_sender" and shipment["eta"] is None
    assert shipment["returned_at"] is not None and shipment["delivered_at"] is None
    # Terminal: a later delivery scan is history only.
    await accepted(svc, [scan(tn, "DL", ago(0.5))])
    assert (await get_shipment(svc, s["id"]))["status"] == "returned_to_sender"

    async def returned() -> list[dict[str, Any]] | None:
        events = await stream_events(bus, "shipment.shipment.returned_to_sender")
        return events or None

    [event] = await eventually(returned, message="returned_to_sender on SHIPMENT")
    assert event["subject"] == s["id"]
    assert event["data"]["warehouse_id"] == "wh-ams"
    assert event["data"]["lots"] == [
        {"line_no": 1, "sku": "SKU-A", "warehouse_id": "wh-ams", "lot": "LOT-A1", "quantity": 20},
        {"line_no": 1, "sku": "SKU-A", "warehouse_id": "wh-ams", "lot": "LOT-A2", "quantity": 10},
        {"line_no": 2, "sku": "SKU-B", "warehouse_id": "wh-ams", "lot": "LOT-B1", "quantity": 2},
    ]
    assert await stream_events(bus, "shipment.shipment.delivered") == []


async def test_scans_for_other_carriers_tracking_numbers_are_unknown(svc: RunningService) -> None:
    """The webhook only touches shipments of the carrier whose path it was pushed to."""
    s = await created(svc)
    r = await svc.http.get("/carriers", headers=auth("ops"))
    assert [c["code"] for c in r.json()] == ["simulated"]
    result = await accepted(svc, [scan(s["tracking_number"].lower(), "PU", ago(1))])
    assert result["results"][0]["outcome"] == "unknown_tracking_number"


async def published_updates(bus: Bus, count: int) -> list[dict[str, Any]]:
    """The first `count` tracking updates on the SHIPMENT stream, once they are there."""

    async def enough() -> list[dict[str, Any]] | None:
        events = await stream_events(bus, "shipment.shipment.tracking_updated")
        return events if len(events) >= count else None

    found: list[dict[str, Any]] = await eventually(enough, message="tracking updates")
    return found


@pytest.mark.parametrize("delivered_first", [True, False], ids=["delivered-first", "late-first"])
async def test_each_event_carries_the_decided_status_and_a_growing_revision(
    svc: RunningService, bus: Bus, delivered_first: bool
) -> None:
    """An out-for-delivery scan stamped an hour after the delivery leaves the shipment
    delivered in either arrival order; followers read the status off the events."""
    s = await created(svc)
    tn = s["tracking_number"]
    delivery, later_scan = scan(tn, "DL", ago(2)), scan(tn, "OD", ago(1))
    for pushed in [delivery, later_scan] if delivered_first else [later_scan, delivery]:
        await accepted(svc, [pushed])
    shipment = await get_shipment(svc, s["id"])
    assert shipment["status"] == "delivered" and shipment["revision"] == 2

    events = await published_updates(bus, 2)
    expected = ["delivered", "delivered"] if delivered_first else ["out_for_delivery", "delivered"]
    assert [e["data"]["status"] for e in events] == expected
    assert [e["data"]["revision"] for e in events] == [1, 2]


async def test_an_expired_shipment_is_published_as_expired(svc: RunningService, bus: Bus) -> None:
    """Expiry ends a shipment outside the workflow: it goes out like any status."""
    s = await created(svc)
    await accepted(svc, [scan(s["tracking_number"], "IR", ago(50))])
    await accepted(svc, [scan(s["tracking_number"], "XP", ago(1))])
    await accepted(svc, [scan(s["tracking_number"], "PU", ago(0.5))])  # too late: history
    assert (await get_shipment(svc, s["id"]))["status"] == "expired"
    events = await published_updates(bus, 3)
    assert [(e["data"]["status"], e["data"]["revision"]) for e in events] == [
        ("info_received", 1),
        ("expired", 2),
        ("expired", 3),
    ]


async def test_a_chunked_push_is_refused_once_it_passes_the_cap(svc: RunningService) -> None:
    """No Content-Length: the body is counted while it is read (httpx, generator body)."""
    cap = svc.app.state.settings.webhook_max_bytes

    async def body() -> AsyncIterator[bytes]:
        for _ in range(8 * cap // 65536):
            yield b" " * 65536

    r = await svc.http.post(
        "/carriers/simulated/webhook", content=body(), headers={"X-Waybill-Signature": "x"}
    )
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "payload_too_large"
    assert r.headers["content-type"] == "application/problem+json"


async def test_the_413_comes_before_the_rest_of_the_body(svc: RunningService) -> None:
    """A client that reads while it sends hears the refusal after about the cap: the
    service stopped reading there instead of buffering the whole push."""
    port = int(svc.url.rsplit(":", 1)[1])
    cap = svc.app.state.settings.webhook_max_bytes
    total = 64 * cap
    status, code, sent = await streamed_push(port, "/carriers/simulated/webhook", total)
    assert (status, code) == (413, "payload_too_large")
    assert sent < total // 4, (sent, total)


async def test_a_content_length_over_the_cap_is_refused_unread(svc: RunningService) -> None:
    """Declared (falsely) far over the cap: the answer comes before any body is read.
    (A length declared smaller than the body bounds what the HTTP server reads.)"""
    port = int(svc.url.rsplit(":", 1)[1])
    status, code, _ = await streamed_push(port, "/carriers/simulated/webhook", 10, declared=10**15)
    assert (status, code) == (413, "payload_too_large")


@pytest.mark.parametrize(
    "signature",
    [
        b"",
        b"v1=" + b"ab" * 32,
        b"t=" + b"9" * 5000 + b",v1=" + b"ab" * 32,
        ("t=" + "\u0661\u0667" + "\u0660" * 8 + ",v1=ab").encode(),  # Arabic-Indic digits
        b"t=\xb2,v1=ab",  # latin-1 superscript two
        b"t=1,v1=" + b"a" * 12_000,
        b"t=1,t=2,v1=ab",
    ],
    ids=["empty", "no-t", "long-t", "arabic-t", "superscript-t", "huge", "two-t"],
)
async def test_malformed_signatures_are_401(svc: RunningService, signature: bytes) -> None:
    s = await created(svc)
    body = json.dumps({"events": [scan(s["tracking_number"], "PU", ago(1))]}).encode()
    r = await svc.http.post(
        "/carriers/simulated/webhook",
        content=body,
        headers={"X-Waybill-Signature": signature, "Content-Type": "application/json"},
    )
    assert r.status_code == 401, r.text
    assert r.json()["code"] == "invalid_signature"
