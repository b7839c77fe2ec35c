"""Sizes the columns cannot hold are refused with a problem (4xx), never a 500 from the
database. Run them on PostgreSQL too (`./waybill test --postgres`), whose columns are
strict."""

from __future__ import annotations

import base64
import json

from services.order.stock_schemas import MAX_QUANTITY
from tests.harness import Stack, auth
from tests.order.test_orders import body, seeded
from tests.order.test_stock import created, make_warehouse, receive, stocked


async def test_an_order_total_the_books_cannot_hold_is_422(stack: Stack) -> None:
    svc = await seeded(stack)
    sku = {"code": "YACHT", "name": "Yacht", "unit_price": "999999999999.99", "weight_grams": 1}
    r = await svc.http.post("/catalogue/skus", json=sku, headers=created())
    assert r.status_code == 201, r.text
    order = body(lines=[{"sku": "YACHT", "quantity": 100_000}])
    r = await svc.http.post("/orders", json=order, headers=created())
    assert r.status_code == 422 and r.json()["code"] == "total_too_large", r.text
    listed = await svc.http.get("/orders", headers=auth("coordinator"))
    assert listed.json()["items"] == []
    one = await svc.http.post(
        "/orders", json=body(lines=[{"sku": "YACHT", "quantity": 1}]), headers=created()
    )
    assert one.status_code == 201 and one.json()["total"] == "999999999999.99"


def cursor(*key: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


async def test_huge_integers_in_stock_cursors_are_400(stack: Stack) -> None:
    svc = await stack.start("order")
    for path in ("/stock/movements", "/stock/backorders"):
        for bad in (2**70, -(2**70), 2**63):
            r = await svc.http.get(path, params={"cursor": cursor(bad)}, headers=auth("ops"))
            assert r.status_code == 400 and r.json()["code"] == "invalid_cursor", (path, r.text)
        fine = await svc.http.get(path, params={"cursor": cursor(5)}, headers=auth("ops"))
        assert fine.status_code == 200, fine.text


async def test_a_lot_never_holds_more_than_the_ledger_counts(stack: Stack) -> None:
    svc = await stack.start("order")
    await stocked(svc, "BOLT", {("WH-A", "B1"): MAX_QUANTITY})
    r = await receive(svc, "WH-A", "BOLT", "B1", 1)
    assert r.status_code == 422 and r.json()["code"] == "quantity_too_large", r.text
    adjust = {
        "warehouse_id": "WH-A",
        "sku": "BOLT",
        "lot": "B1",
        "quantity_delta": 1,
        "reason": "found",
    }
    r = await svc.http.post("/stock/adjustments", json=adjust, headers=created())
    assert r.status_code == 422 and r.json()["code"] == "quantity_too_large", r.text


async def test_internal_step_strings_are_bounded_by_their_columns(stack: Stack) -> None:
    svc = await seeded(stack)
    await make_warehouse(svc, "WH-X")
    r = await svc.http.post("/orders", json=body(), headers=created())
    order_id = r.json()["id"]
    service = auth("service")
    for path, payload in (
        ("tasks", {"kind": "k" * 33, "detail": "x"}),
        ("notes", {"kind": "k" * 49, "detail": "x"}),
        ("issue", {"warehouse_id": "W" * 33}),
        ("attention", {"reason": "r" * 65, "detail": "x", "key": "k"}),
    ):
        r = await svc.http.post(
            f"/internal/orders/{order_id}/{path}", json=payload, headers=service
        )
        assert r.status_code == 422, (path, r.text)
