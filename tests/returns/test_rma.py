"""The returns service's RMA against its real database and NATS: the delivered-lines read
model fed by published events, the policy decisions, the lifecycle through the public and
internal routes, refunds and their limits, and who may see what."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from services.common.bus import Bus
from services.common.tables import outbox
from services.returns.rma_models import Refund
from tests.harness import RunningService, Stack
from tests.returns.rma_helpers import (
    COORD,
    coord,
    customer,
    deliver,
    label_body,
    request_when_known,
    return_body,
    step,
)

ALICE = customer("c-alice")
BOB = customer("c-bob")


@pytest.fixture
async def returns(stack: Stack) -> RunningService:
    return await stack.start("returns")


async def staged(svc: RunningService, event_type: str, return_id: str) -> list[dict[str, Any]]:
    """The events of that type the service staged for the return (its outbox)."""
    async with svc.runtime.db.reading() as session:
        rows = await session.execute(
            sa.select(outbox.c.envelope).where(outbox.c.type == event_type)
        )
        data = [json.loads(row[0])["data"] for row in rows]
    return [d for d in data if d["return_id"] == return_id]


async def new_policy(svc: RunningService, **fields: Any) -> None:
    body = {
        "name": fields.get("id", "p"),
        "window_days": 30,
        "allowed_reasons": ["damaged", "defective", "no_longer_needed"],
        **fields,
    }
    r = await svc.http.post(
        "/return-policies", json=body, headers={**COORD, "Idempotency-Key": str(uuid.uuid4())}
    )
    assert r.status_code == 201, r.text


async def received_and_inspected(
    svc: RunningService, ret: dict[str, Any], good: int, damaged: int
) -> dict[str, Any]:
    rid = ret["id"]
    await step(svc, rid, "label", **label_body(rid))
    [lot] = ret["lots"]
    r = await coord(
        svc,
        rid,
        "receipt",
        lots=[{"line_no": 1, "lot": lot["lot"], "good": good, "damaged": damaged}],
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "received"
    r = await coord(
        svc, rid, "inspection", lots=[{"line_no": 1, "lot": lot["lot"], "disposition": "restock"}]
    )
    assert r.status_code == 200, r.text
    inspected: dict[str, Any] = r.json()
    assert inspected["status"] == "inspected"
    return inspected


async def test_inside_the_window_refunds_the_price_paid_less_the_restocking_fee(
    returns: RunningService, bus: Bus
) -> None:
    await deliver(bus, "o-1", "c-alice", [("MUG", 3, "10.00", None)])
    ret = await request_when_known(returns, return_body("o-1", (1, 2)), ALICE)
    assert (ret["status"], ret["customer_id"], ret["policy"]["id"]) == (
        "requested",
        "c-alice",
        "default",
    )
    assert ret["lots"][0]["expected"] == 2
    rid = ret["id"]
    assert len(await staged(returns, "returns.return.requested.v1", rid)) == 1

    check = await step(returns, rid, "policy-check")
    assert (check["decision"], check["keep_it"], check["return"]["status"]) == (
        "authorize",
        False,
        "authorized",
    )
    assert (await step(returns, rid, "policy-check"))["decision"] == "authorize"  # once
    assert len(await staged(returns, "returns.return.authorized.v1", rid)) == 1

    await received_and_inspected(returns, ret, good=2, damaged=0)
    await step(returns, rid, "dispose")
    await step(returns, rid, "dispose")  # a repeat publishes nothing more
    [disposed] = await staged(returns, "returns.return.disposed.v1", rid)
    assert [(d["lot"], d["quantity"], d["disposition"]) for d in disposed["lots"]] == [
        ("LOT-1", 2, "restock")
    ]

    done = await step(returns, rid, "refund")
    # 2 x 10.00 = 20.00, minus the default policy's 10 % for a reason not the merchant's.
    assert (done["status"], done["refund_total"], done["restocking_fee"]) == (
        "resolved",
        "18.00",
        "2.00",
    )
    assert (await step(returns, rid, "refund"))["refund_total"] == "18.00"
    [refunded] = await staged(returns, "returns.return.refunded.v1", rid)
    assert (refunded["amount"], refunded["restocking_fee"]) == ("18.00", "2.00")
    async with returns.runtime.db.reading() as session:
        assert (await session.execute(sa.select(sa.func.count()).select_from(Refund))).scalar() == 1
    closed = await step(returns, rid, "close")
    assert closed["status"] == "closed"
    assert [h["status"] for h in closed["history"]] == [
        "requested",
        "authorized",
        "awaiting_receipt",
        "received",
        "inspected",
        "inspected",
        "resolved",
        "closed",
    ]
    assert closed["revision"] == 9


async def test_outside_the_window_is_rejected(returns: RunningService, bus: Bus) -> None:
    await deliver(bus, "o-old", "c-alice", [("MUG", 1, "10.00", None)], days_ago=40)
    ret = await request_when_known(returns, return_body("o-old", (1, 1)), ALICE)
    check = await step(returns, ret["id"], "policy-check")
    assert (check["decision"], check["return"]["status"]) == ("reject", "rejected")
    assert "window" in check["reason"]
    [rejected] = await staged(returns, "returns.return.rejected.v1", ret["id"])
    assert rejected["rejected_by"] == "policy"
    # A rejected return covers nothing: the line may be asked for again.
    again = await request_when_known(returns, return_body("o-old", (1, 1)), ALICE)
    assert again["status"] == "requested"


async def test_a_damaged_partial_receipt_restocks_only_the_good_quantity(
    returns: RunningService, bus: Bus
) -> None:
    await deliver(bus, "o-2", "c-alice", [("MUG", 3, "10.00", None)])
    ret = await request_when_known(
        returns, return_body("o-2", (1, 3), reason="damaged.in_transit"), ALICE
    )
    await step(returns, ret["id"], "policy-check")
    inspected = await received_and_inspected(returns, ret, good=1, damaged=1)
    assert inspected["lines"][0]["received_good"] == 1
    await step(returns, ret["id"], "dispose")
    [disposed] = await staged(returns, "returns.return.disposed.v1", ret["id"])
    assert sorted((d["disposition"], d["quantity"]) for d in disposed["lots"]) == [
        ("restock", 1),
        ("scrap", 1),
    ]
    done = await step(returns, ret["id"], "refund")
    # Damaged in transit is the merchant's fault: no fee; 2 came back of 3.
    assert (done["refund_total"], done["restocking_fee"]) == ("20.00", "0.00")


async def test_keep_it_refunds_without_a_physical_return(returns: RunningService, bus: Bus) -> None:
    await new_policy(returns, id="cheap", category="stationery", keep_it_threshold="5.00")
    await deliver(bus, "o-3", "c-alice", [("PEN", 2, "2.00", "stationery")])
    ret = await request_when_known(returns, return_body("o-3", (1, 2), reason="defective"), ALICE)
    assert ret["policy"]["id"] == "cheap"
    check = await step(returns, ret["id"], "policy-check")
    assert (check["decision"], check["keep_it"]) == ("authorize", True)
    r = await coord(returns, ret["id"], "receipt", lots=[])
    assert (r.status_code, r.json()["code"]) == (409, "no_physical_return")
    done = await step(returns, ret["id"], "refund")
    assert (done["status"], done["refund_total"], done["keep_it"]) == ("resolved", "4.00", True)


async def test_a_replacement_resolves_the_return_and_links_the_order(
    returns: RunningService, bus: Bus
) -> None:
    await deliver(bus, "o-4", "c-alice", [("MUG", 1, "10.00", None)])
    ret = await request_when_known(
        returns,
        return_body("o-4", (1, 1), reason="defective", requested_resolution="replacement"),
        ALICE,
    )
    await step(returns, ret["id"], "policy-check")
    inspected = await received_and_inspected(returns, ret, good=1, damaged=0)
    assert inspected["resolution"] == "replacement"
    done = await step(returns, ret["id"], "replacement", order_id="o-new")
    assert (done["status"], done["resolution"], done["replacement_order_id"]) == (
        "resolved",
        "replacement",
        "o-new",
    )
    assert (await step(returns, ret["id"], "replacement", order_id="o-new"))["revision"] == done[
        "revision"
    ]


async def test_review_waits_for_a_coordinator_and_expiry_stops_at_arrival(
    returns: RunningService, bus: Bus
) -> None:
    await new_policy(returns, id="manual", category="tools", auto_authorize=False)
    await deliver(bus, "o-5", "c-alice", [("SAW", 2, "30.00", "tools")])
    ret = await request_when_known(returns, return_body("o-5", (1, 1)), ALICE)
    check = await step(returns, ret["id"], "policy-check")
    assert (check["decision"], check["return"]["status"]) == ("review", "requested")
    r = await coord(returns, ret["id"], "authorize", note="fine")
    assert r.json()["status"] == "authorized"
    assert (await coord(returns, ret["id"], "authorize")).status_code == 409
    labelled = await step(returns, ret["id"], "label", **label_body(ret["id"]))
    assert labelled["status"] == "awaiting_receipt" and labelled["receipt_deadline"]
    await step(returns, ret["id"], "arrived", at="2026-12-01T10:00:00Z")
    r = await returns.http.post(f"/internal/returns/{ret['id']}/expire", headers=COORD)
    assert r.status_code == 403
    from tests.returns.rma_helpers import SERVICE

    r = await returns.http.post(f"/internal/returns/{ret['id']}/expire", headers=SERVICE)
    assert (r.status_code, r.json()["code"]) == (409, "already_received")

    other = await request_when_known(returns, return_body("o-5", (1, 1)), ALICE)
    await coord(returns, other["id"], "authorize")
    await step(returns, other["id"], "label", **label_body(other["id"]))
    expired = await step(returns, other["id"], "expire")
    assert expired["status"] == "expired"
    assert len(await staged(returns, "returns.return.expired.v1", other["id"])) == 1


async def test_more_than_delivered_is_refused_also_concurrently(
    returns: RunningService, bus: Bus
) -> None:
    await deliver(bus, "o-6", "c-alice", [("MUG", 2, "10.00", None)])
    await request_when_known(returns, return_body("o-6", (1, 1)), ALICE)
    r = await returns.http.post(
        "/returns",
        json=return_body("o-6", (1, 2)),
        headers={**ALICE, "Idempotency-Key": "too-many"},
    )
    assert (r.status_code, r.json()["code"]) == (422, "quantity_exceeds_returnable")

    async def one(i: int) -> int:
        r = await returns.http.post(
            "/returns",
            json=return_body("o-6", (1, 1)),
            headers={**ALICE, "Idempotency-Key": f"race-{i}"},
        )
        return r.status_code

    codes = await asyncio.gather(*(one(i) for i in range(6)))
    assert sorted(codes) == [201] + [422] * 5
    listed = await returns.http.get("/returns", params={"order_id": "o-6"}, headers=ALICE)
    assert sum(x["lines"][0]["quantity"] for x in listed.json()["items"]) == 2


async def test_a_customer_sees_only_their_own_returns(returns: RunningService, bus: Bus) -> None:
    await deliver(bus, "o-7", "c-alice", [("MUG", 1, "10.00", None)])
    ret = await request_when_known(returns, return_body("o-7", (1, 1)), ALICE)
    assert (await returns.http.get(f"/returns/{ret['id']}", headers=ALICE)).status_code == 200
    assert (await returns.http.get(f"/returns/{ret['id']}", headers=BOB)).status_code == 404
    r = await returns.http.post(f"/returns/{ret['id']}/cancel", json={"reason": "x"}, headers=BOB)
    assert r.status_code == 404
    assert (await returns.http.get("/returns", headers=BOB)).json()["items"] == []
    mine = await returns.http.get("/returns", params={"customer_id": "c-alice"}, headers=BOB)
    assert mine.json()["items"] == []
    # Bob cannot return Alice's order either.
    r = await returns.http.post(
        "/returns", json=return_body("o-7", (1, 1)), headers={**BOB, "Idempotency-Key": "b"}
    )
    assert (r.status_code, r.json()["code"]) == (404, "order_not_found")
    # Internal notes and attention are for staff only.
    await step(returns, ret["id"], "attention", reason="label_failed", detail="carrier down")
    staff = await returns.http.get("/returns", params={"attention": "true"}, headers=COORD)
    assert [x["id"] for x in staff.json()["items"]] == [ret["id"]]
    seen = (await returns.http.get(f"/returns/{ret['id']}", headers=ALICE)).json()
    assert seen["attention"] is None
    assert all("carrier down" not in (h["note"] or "") for h in seen["history"])
    cancelled = await returns.http.post(
        f"/returns/{ret['id']}/cancel", json={"reason": "changed my mind"}, headers=ALICE
    )
    assert cancelled.json()["status"] == "cancelled"


async def test_bad_input_answers_problem_details(returns: RunningService, bus: Bus) -> None:
    await deliver(bus, "o-8", "c-alice", [("MUG", 2, "10.00", None)])
    ret = await request_when_known(returns, return_body("o-8", (1, 1)), ALICE)

    async def post(body: dict[str, Any]) -> Any:
        return await returns.http.post(
            "/returns", json=body, headers={**ALICE, "Idempotency-Key": str(uuid.uuid4())}
        )

    cases = [
        (return_body("o-8", (1, 1), reason="bored"), 422, "unknown_reason"),
        (return_body("o-8", (1, 1), reason="recall"), 422, "unknown_reason"),
        (return_body("o-8", (2, 1)), 422, "not_delivered"),
        (return_body("o-8", (1, 1), (1, 1)), 422, "duplicate_line"),
        (return_body("o-nope", (1, 1)), 404, "order_not_found"),
        (return_body("o-8", (1, 0)), 422, "validation_error"),
        (return_body("x" * 65, (1, 1)), 422, "validation_error"),
    ]
    for body, status, code in cases:
        r = await post(body)
        assert (r.status_code, r.json()["code"]) == (status, code), (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    await step(returns, ret["id"], "policy-check")
    await step(returns, ret["id"], "label", **label_body(ret["id"]))
    r = await coord(
        returns,
        ret["id"],
        "receipt",
        lots=[{"line_no": 1, "lot": "LOT-1", "good": 2, "damaged": 0}],
    )
    assert (r.status_code, r.json()["code"]) == (422, "quantity_exceeds_expected")
    r = await coord(
        returns, ret["id"], "receipt", lots=[{"line_no": 1, "lot": "NOPE", "good": 1, "damaged": 0}]
    )
    assert (r.status_code, r.json()["code"]) == (422, "unknown_lot")
    r = await coord(
        returns,
        ret["id"],
        "receipt",
        lots=[{"line_no": 1, "lot": "LOT-1", "good": 0, "damaged": 1}],
    )
    assert r.status_code == 200
    r = await coord(
        returns,
        ret["id"],
        "inspection",
        lots=[{"line_no": 1, "lot": "LOT-1", "disposition": "restock"}],
    )
    assert (r.status_code, r.json()["code"]) == (422, "damaged_not_restockable")
    r = await coord(
        returns,
        ret["id"],
        "inspection",
        lots=[{"line_no": 1, "lot": "LOT-1", "disposition": "scrap"}],
    )
    assert (r.status_code, r.json()["code"]) == (422, "reason_required")
    r = await coord(returns, ret["id"], "inspection", lots=[])
    assert (r.status_code, r.json()["code"]) == (422, "disposition_missing")
    r = await coord(returns, ret["id"], "cancel", reason="too late")
    assert (r.status_code, r.json()["code"]) == (409, "invalid_transition")
    r = await returns.http.post("/returns", json=return_body("o-8", (1, 1)), headers=ALICE)
    assert r.status_code in (400, 428)


async def test_retry_clears_attention_once_and_tells_the_workflow(
    returns: RunningService, bus: Bus
) -> None:
    await deliver(bus, "o-9", "c-alice", [("MUG", 1, "10.00", None)])
    ret = await request_when_known(returns, return_body("o-9", (1, 1)), ALICE)
    rid = ret["id"]
    r = await coord(returns, rid, "retry")
    assert (r.status_code, r.json()["code"]) == (409, "not_needing_attention")
    marked = await step(returns, rid, "attention", reason="several_warehouses", detail="WH-A, WH-B")
    assert (marked["attention"], marked["attention_detail"]) == ("several_warehouses", "WH-A, WH-B")
    mine = await returns.http.get(f"/returns/{rid}", headers=ALICE)
    assert mine.json()["attention"] is None  # staff only
    flagged = await returns.http.get("/returns", params={"attention": "true"}, headers=COORD)
    assert [item["id"] for item in flagged.json()["items"]] == [rid]
    r = await returns.http.post(f"/returns/{rid}/retry", json={}, headers=ALICE)
    assert r.status_code == 403
    r = await coord(returns, rid, "retry")
    assert r.status_code == 200, r.text
    assert (r.json()["attention"], r.json()["status"]) == (None, "requested")
    [event] = await staged(returns, "returns.return.retry_requested.v1", rid)
    assert event["requested_by"]
    r = await coord(returns, rid, "retry")
    assert (r.status_code, r.json()["code"]) == (409, "not_needing_attention")
    assert len(await staged(returns, "returns.return.retry_requested.v1", rid)) == 1


async def test_policy_input_is_checked_before_anything_is_written(
    returns: RunningService, bus: Bus
) -> None:
    async def create(**changes: Any) -> Any:
        body = {"id": "p-x", "name": "x", "category": "mugs", "window_days": 30}
        body["allowed_reasons"] = ["damaged"]
        return await returns.http.post(
            "/return-policies",
            json={**body, **changes},
            headers={**COORD, "Idempotency-Key": str(uuid.uuid4())},
        )

    cases: list[tuple[dict[str, Any], str]] = [
        ({"window_days": False}, "validation_error"),
        ({"auto_authorize": "yes"}, "validation_error"),
        ({"category": None}, "validation_error"),
        ({"restocking_fee_kind": "percent", "restocking_fee_value": "101"}, "invalid_fee"),
    ]
    for changes, code in cases:
        r = await create(**changes)
        assert (r.status_code, r.json()["code"]) == (422, code), (changes, r.text)
    listed = await returns.http.get("/return-policies", headers=COORD)
    assert [p["id"] for p in listed.json()["items"]] == ["default"]
    assert (await create()).status_code == 201
    default = (await returns.http.get("/return-policies/default", headers=COORD)).json()
    keep = {k: default[k] for k in ("name", "window_days", "allowed_reasons")}
    r = await returns.http.put(
        "/return-policies/default", json={**keep, "category": "mugs"}, headers=COORD
    )
    assert (r.status_code, r.json()["code"]) == (422, "category_required")
    r = await returns.http.put(
        "/return-policies/p-x", json={**keep, "category": None}, headers=COORD
    )
    assert (r.status_code, r.json()["code"]) == (422, "category_required")
    r = await returns.http.post(
        "/returns",
        json=return_body("o-1", (1, True)),
        headers={**ALICE, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert (r.status_code, r.json()["code"]) == (422, "validation_error")
