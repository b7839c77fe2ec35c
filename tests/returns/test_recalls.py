"""Recall campaigns in the returns service, against its real database and NATS: opening,
trace pages (consignees, recall returns, notices exactly once), responses, the report's
figures, closing, and who may see what."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from services.common.tables import outbox
from services.returns import recalls
from services.returns.models import Return, ReturnLine, ReturnLot
from services.returns.recall_models import RecallConsignee
from tests.harness import RunningService, Stack, auth

COORD = auth("coordinator")
SERVICE = auth("service")


def recall_body(**changes: Any) -> dict[str, Any]:
    return {
        "sku": "MUG-CERAMIC",
        "lots": ["L-1"],
        "reason": "glaze contains lead",
        "instructions": "Stop using the mug; return it with the prepaid label",
        "hazard_class": "II",
        "depth": "A",
        **changes,
    }


def traced(customer: str, order: str, quantity: int = 2, **changes: Any) -> dict[str, Any]:
    """One forward-trace line as the order service's traceability route answers it."""
    return {
        "customer_id": customer,
        "order_id": order,
        "shipment_id": f"sh-{order}",
        "warehouse_id": "WH-NORTH",
        "sku": "MUG-CERAMIC",
        "line_no": 1,
        "quantity": quantity,
        "issued_at": "2026-11-01T10:00:00+00:00",
        "shipment_status": "delivered",
        "dispatched": True,
        **changes,
    }


@pytest.fixture
async def returns(stack: Stack) -> RunningService:
    return await stack.start("returns")


async def open_recall(svc: RunningService, key: str = "r-1", **changes: Any) -> dict[str, Any]:
    r = await svc.http.post(
        "/recalls", json=recall_body(**changes), headers={**COORD, "Idempotency-Key": key}
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def page(svc: RunningService, recall_id: str, lot: str, lines: list[Any]) -> Any:
    r = await svc.http.post(
        f"/internal/recalls/{recall_id}/trace-pages",
        json={"lot": lot, "consignees": lines},
        headers=SERVICE,
    )
    assert r.status_code == 200, r.text
    return r.json()


async def staged(svc: RunningService, type_: str) -> list[dict[str, Any]]:
    async with svc.runtime.db.reading() as session:
        rows = (
            await session.execute(sa.select(outbox.c.envelope).where(outbox.c.type == type_))
        ).scalars()
        return [json.loads(row)["data"] for row in rows]


async def test_open_stages_recall_opened_and_defaults_the_target_by_depth(
    returns: RunningService,
) -> None:
    recall = await open_recall(returns, depth="C")
    assert recall["status"] == "open"
    assert float(recall["effectiveness_target"]) == 10.0
    again = await returns.http.post(
        "/recalls", json=recall_body(depth="C"), headers={**COORD, "Idempotency-Key": "r-1"}
    )
    assert again.json()["id"] == recall["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    opened = await staged(returns, "returns.recall.opened.v1")
    assert [e["recall_id"] for e in opened] == [recall["id"]]
    no_target = await open_recall(returns, key="r-2", depth="E", lots=["L-9"])
    assert no_target["effectiveness_target"] is None


@pytest.mark.parametrize(
    "changes",
    [
        {"hazard_class": "IV"},
        {"depth": "F"},
        {"lots": []},
        {"lots": ["L-1", "L-1"]},
        {"lots": ["bad lot!"]},
        {"sku": ""},
        {"reason": "x" * 501},
        {"effectiveness_target": 0},
        {"effectiveness_target": 101},
    ],
)
async def test_bad_recalls_are_refused_with_problem_details(
    returns: RunningService, changes: dict[str, Any]
) -> None:
    r = await returns.http.post(
        "/recalls", json=recall_body(**changes), headers={**COORD, "Idempotency-Key": "bad"}
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_roles_and_keys(returns: RunningService) -> None:
    r = await returns.http.post("/recalls", json=recall_body(), headers=COORD)
    assert r.status_code == 400 and r.json()["code"] == "idempotency_key_missing"
    r = await returns.http.post(
        "/recalls",
        json=recall_body(),
        headers={**auth("customer", customer_id="c-1"), "Idempotency-Key": "k"},
    )
    assert r.status_code == 403
    recall = await open_recall(returns)
    r = await returns.http.post(
        f"/internal/recalls/{recall['id']}/trace-pages",
        json={"lot": "L-1", "consignees": []},
        headers=COORD,
    )
    assert r.status_code == 403
    r = await returns.http.get("/recalls/nope", headers=COORD)
    assert r.status_code == 404


async def test_a_page_creates_consignees_returns_and_one_notice_each_even_when_re_run(
    returns: RunningService,
) -> None:
    recall = await open_recall(returns)
    lines = [traced(f"c-{n}", f"o-{n}", quantity=n + 1) for n in range(40)]
    out = await page(returns, recall["id"], "L-1", lines)
    assert out == {"lines_new": 40, "consignees_created": 40, "notices_issued": 40}
    again = await page(returns, recall["id"], "L-1", lines)  # the activity ran again
    assert again == {"lines_new": 0, "consignees_created": 0, "notices_issued": 0}

    notices = await staged(returns, "returns.recall.notice_issued.v1")
    assert sorted(n["customer_id"] for n in notices) == sorted(f"c-{n}" for n in range(40))
    assert {n["quantity"] for n in notices if n["customer_id"] == "c-3"} == {4}
    async with returns.runtime.db.reading() as session:
        rets = list(
            (
                await session.execute(sa.select(Return).where(Return.recall_id == recall["id"]))
            ).scalars()
        )
        assert len(rets) == 40
        assert {(r.kind, r.status, r.reason) for r in rets} == {("recall", "authorized", "recall")}
        assert {r.refund_total for r in rets} == {0} and {r.restocking_fee for r in rets} == {0}
        lots = (
            await session.execute(
                sa.select(ReturnLot.expected).where(
                    ReturnLot.return_id == recalls.recall_return_id(recall["id"], "c-9", "o-9")
                )
            )
        ).scalars()
        assert list(lots) == [10]
    assert {n["return_id"] for n in notices} == {r.id for r in rets}


async def test_goods_that_never_left_or_came_back_make_no_consignee(
    returns: RunningService,
) -> None:
    recall = await open_recall(returns)
    out = await page(
        returns,
        recall["id"],
        "L-1",
        [
            traced("c-1", "o-1", shipment_status="cancelled"),
            traced("c-2", "o-2", shipment_status="returned_to_sender"),
            traced("c-3", "o-3", sku="OTHER-SKU"),
            traced("c-4", "o-4", shipment_status="in_transit"),
        ],
    )
    assert out["consignees_created"] == 1
    r = await returns.http.get(f"/recalls/{recall['id']}/consignees", headers=COORD)
    assert [c["customer_id"] for c in r.json()["items"]] == ["c-4"]


async def test_a_second_lot_or_shipment_grows_the_same_consignee(returns: RunningService) -> None:
    recall = await open_recall(returns, lots=["L-1", "L-2"])
    await page(returns, recall["id"], "L-1", [traced("c-1", "o-1", quantity=2)])
    out = await page(
        returns,
        recall["id"],
        "L-2",
        [traced("c-1", "o-1", quantity=3), traced("c-1", "o-1", quantity=1, line_no=2)],
    )
    assert out["consignees_created"] == 0 and out["lines_new"] == 2
    assert len(await staged(returns, "returns.recall.notice_issued.v1")) == 1
    rid = recalls.recall_return_id(recall["id"], "c-1", "o-1")
    async with returns.runtime.db.reading() as session:
        lines = (
            await session.execute(
                sa.select(ReturnLine.line_no, ReturnLine.quantity).where(
                    ReturnLine.return_id == rid
                )
            )
        ).all()
        assert sorted(lines) == [(1, 5), (2, 1)]
        row = await session.get(RecallConsignee, (recall["id"], "c-1", "o-1"))
        assert row is not None and row.quantity_shipped == 6


async def test_responses_and_the_report(returns: RunningService) -> None:
    recall = await open_recall(returns, effectiveness_target=90)
    rid = recall["id"]
    await page(
        returns,
        rid,
        "L-1",
        [
            traced("c-1", "o-1", quantity=10),
            traced("c-2", "o-2", quantity=4),
            traced("c-3", "o-3", quantity=6),
            traced("c-4", "o-4", quantity=5),
        ],
    )
    jane = auth("customer", customer_id="c-1")
    r = await returns.http.post(
        f"/recalls/{rid}/consignees/c-1/response",
        json={"action": "returning", "quantity_on_hand": 7},
        headers=jane,
    )
    assert r.status_code == 200, r.text
    assert r.json()["outstanding"] == 7
    # The same answer again changes nothing; another one is refused.
    r = await returns.http.post(
        f"/recalls/{rid}/consignees/c-1/response",
        json={"action": "returning", "quantity_on_hand": 7},
        headers=jane,
    )
    assert r.status_code == 200
    r = await returns.http.post(
        f"/recalls/{rid}/consignees/c-1/response",
        json={"action": "destroyed", "quantity_on_hand": 7},
        headers=jane,
    )
    assert r.status_code == 409 and r.json()["code"] == "already_responded"
    # A customer answers only for itself, and sees only its own rows.
    r = await returns.http.post(
        f"/recalls/{rid}/consignees/c-2/response",
        json={"action": "none_on_hand", "quantity_on_hand": 0},
        headers=jane,
    )
    assert r.status_code == 404
    r = await returns.http.get(f"/recalls/{rid}/consignees", headers=jane)
    assert [c["customer_id"] for c in r.json()["items"]] == ["c-1"]
    r = await returns.http.get(f"/recalls/{rid}/consignees?customer_id=c-2", headers=jane)
    assert r.status_code == 404
    r = await returns.http.get(f"/recalls/{rid}/report", headers=jane)
    assert r.status_code == 403
    r = await returns.http.get(f"/recalls/{rid}", headers=jane)
    assert r.status_code == 200 and r.json()["id"] == rid
    r = await returns.http.get(f"/recalls/{rid}", headers=auth("customer", customer_id="c-99"))
    assert r.status_code == 404
    for customer, body, code in [
        ("c-2", {"action": "returning", "quantity_on_hand": 5}, "quantity_exceeds_shipped"),
        ("c-2", {"action": "none_on_hand", "quantity_on_hand": 1}, "invalid_response"),
        ("c-2", {"action": "destroyed", "quantity_on_hand": 0}, "invalid_response"),
    ]:
        r = await returns.http.post(
            f"/recalls/{rid}/consignees/{customer}/response", json=body, headers=COORD
        )
        assert r.status_code == 422 and r.json()["code"] == code, r.text
    for customer, body in [
        ("c-2", {"action": "none_on_hand", "quantity_on_hand": 0}),
        ("c-3", {"action": "destroyed", "quantity_on_hand": 6}),
    ]:
        r = await returns.http.post(
            f"/recalls/{rid}/consignees/{customer}/response", json=body, headers=COORD
        )
        assert r.status_code == 200, r.text

    requested = await staged(returns, "returns.return.requested.v1")
    ret1 = recalls.recall_return_id(rid, "c-1", "o-1")
    assert [(e["return_id"], e["kind"], e["recall_id"]) for e in requested] == [
        (ret1, "recall", rid)
    ]
    assert [ln["quantity"] for ln in requested[0]["lines"]] == [7]  # cut to what is on hand
    cancelled = await staged(returns, "returns.return.cancelled.v1")
    assert len(cancelled) == 2
    assert len(await staged(returns, "returns.recall.consignee_responded.v1")) == 3

    # The RMA side receives 7 of c-1's units (5 good, 2 damaged) and scraps the damaged.
    async with returns.runtime.db.transaction() as session:
        await session.execute(
            sa.update(ReturnLot)
            .where(ReturnLot.return_id == ret1)
            .values(good=5, damaged=2, disposition="scrap")
        )
    r = await returns.http.get(f"/recalls/{rid}/report", headers=COORD)
    report = r.json()
    assert report["consignees"] == 4 and report["customers"] == 4
    assert report["noticed"] == 4 and report["notified"] == 0
    assert report["responded"] == 3 and report["not_responded"] == 1
    assert report["responses"] == {"returning": 1, "none_on_hand": 1, "destroyed": 1}
    assert report["quantities"] == {
        "shipped": 25,
        "on_hand_at_response": 13,
        "returned": 7,
        "corrected_or_destroyed": 6 + 7,
        "outstanding": 5,  # c-4 has not answered
    }
    assert report["effectiveness"] == "80.0" and report["target_met"] is False

    r = await returns.http.post(
        f"/recalls/{rid}/consignees/c-4/response",
        json={"action": "destroyed", "quantity_on_hand": 5},
        headers=COORD,
    )
    assert r.status_code == 200
    r = await returns.http.post(f"/internal/recalls/{rid}/report", headers=SERVICE)
    assert r.json()["effectiveness"] == "100.0" and r.json()["target_met"] is True


async def test_close_once_then_refuse_changes(returns: RunningService) -> None:
    recall = await open_recall(returns)
    rid = recall["id"]
    await page(returns, rid, "L-1", [traced("c-1", "o-1")])
    for _ in range(2):
        r = await returns.http.post(f"/recalls/{rid}/close", json={"reason": "done"}, headers=COORD)
        assert r.status_code == 200 and r.json()["status"] == "closed"
    closed = await staged(returns, "returns.recall.closed.v1")
    assert [(e["recall_id"], e["effectiveness"]) for e in closed] == [(rid, "0.0")]
    r = await returns.http.post(
        f"/recalls/{rid}/consignees/c-1/response",
        json={"action": "none_on_hand", "quantity_on_hand": 0},
        headers=COORD,
    )
    assert r.status_code == 409 and r.json()["code"] == "recall_closed"
    r = await returns.http.post(
        f"/internal/recalls/{rid}/trace-pages",
        json={"lot": "L-1", "consignees": [traced("c-2", "o-2")]},
        headers=SERVICE,
    )
    assert r.status_code == 409
    r = await returns.http.get("/recalls?status=closed", headers=auth("ops"))
    assert [x["id"] for x in r.json()["items"]] == [rid]


async def test_a_lot_is_in_one_open_recall_at_a_time(returns: RunningService) -> None:
    """A second campaign on a lot already being recalled would notice every consignee
    again and expect the goods twice: 409 until the first is closed. Other lots, and the
    same lot code of another SKU, are free."""
    first = await open_recall(returns, "r-1", lots=["L-1", "L-2"])
    r = await returns.http.post(
        "/recalls",
        json=recall_body(lots=["L-3", "L-2"]),
        headers={**COORD, "Idempotency-Key": "r-2"},
    )
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "lot_already_recalled" and first["id"] in r.json()["detail"]
    await open_recall(returns, "r-3", lots=["L-3"])
    await open_recall(returns, "r-4", sku="KETTLE", lots=["L-1"])
    r = await returns.http.post(
        f"/recalls/{first['id']}/close", json={"reason": "x"}, headers=COORD
    )
    assert r.status_code == 200
    await open_recall(returns, "r-5", lots=["L-1"])


async def test_several_orders_of_one_customer_need_the_order_named(
    returns: RunningService,
) -> None:
    recall = await open_recall(returns)
    rid = recall["id"]
    await page(returns, rid, "L-1", [traced("c-1", "o-1"), traced("c-1", "o-2")])
    r = await returns.http.post(
        f"/recalls/{rid}/consignees/c-1/response",
        json={"action": "none_on_hand", "quantity_on_hand": 0},
        headers=COORD,
    )
    assert r.status_code == 422 and r.json()["code"] == "order_id_required"
    r = await returns.http.post(
        f"/recalls/{rid}/consignees/c-1/response",
        json={"action": "none_on_hand", "quantity_on_hand": 0, "order_id": "o-2"},
        headers=COORD,
    )
    assert r.status_code == 200 and r.json()["order_id"] == "o-2"


def test_figures() -> None:
    f = recalls.figures
    assert f(10, None, None, 0, 0) == recalls.Figures(0, 0, 10)
    assert f(10, "returning", 4, 3, 1) == recalls.Figures(3, 1, 1)
    assert f(10, "destroyed", 4, 0, 0) == recalls.Figures(0, 4, 0)
    assert f(10, "none_on_hand", 0, 0, 0) == recalls.Figures(0, 0, 0)
    assert recalls.effectiveness(0, 0) == 100
    assert str(recalls.effectiveness(3, 1)) == "66.7"


async def test_thousands_of_consignees_in_pages_each_once(returns: RunningService) -> None:
    """The fan-out's unit at scale: pages of 500 (the workflow's default), each once."""
    import os
    import time

    count = int(os.environ.get("WAYBILL_RECALL_SCALE", "2000"))
    recall = await open_recall(returns)
    lines = [traced(f"c-{n}", f"o-{n}", quantity=1) for n in range(count)]
    began = time.monotonic()
    for start in range(0, count, 500):
        out = await page(returns, recall["id"], "L-1", lines[start : start + 500])
        assert out["consignees_created"] == len(lines[start : start + 500])
    elapsed = time.monotonic() - began
    print(f"{count} consignees in {elapsed:.1f} s")
    again = await page(returns, recall["id"], "L-1", lines[:500])
    assert again["consignees_created"] == 0
    r = await returns.http.get(f"/recalls/{recall['id']}/report", headers=COORD)
    assert r.json()["consignees"] == count and r.json()["noticed"] == count
    assert len(await staged(returns, "returns.recall.notice_issued.v1")) == count
