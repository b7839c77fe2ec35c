"""The workflow's steps are safe to repeat: Temporal re-runs local activities whose
workflow task failed, possibly after the order has moved on."""

from __future__ import annotations

import pytest

from tests.harness import RunningService, Stack, auth
from tests.order.test_orders import body, seeded

SERVICE = auth("service", subject="workflows")


@pytest.fixture
async def order(stack: Stack) -> RunningService:
    svc = await seeded(stack)
    r = await svc.http.post(
        "/stock/receipts",
        json={"warehouse_id": "WH-NORTH", "sku": "MUG-CERAMIC", "lot": "M1", "quantity": 10},
        headers={**auth("coordinator"), "Idempotency-Key": "m1"},
    )
    assert r.status_code == 201, r.text
    return svc


async def place(svc: RunningService) -> str:
    r = await svc.http.post(
        "/orders",
        json=body(lines=[{"sku": "MUG-CERAMIC", "quantity": 3}]),
        headers={**auth("coordinator"), "Idempotency-Key": "x"},
    )
    return str(r.json()["id"])


async def step(svc: RunningService, order_id: str, name: str, json: object = None) -> object:
    r = await svc.http.post(f"/internal/orders/{order_id}/{name}", json=json, headers=SERVICE)
    assert r.status_code in (200, 201), r.text
    return r.json()


async def test_reserve_replayed_after_picking_answers_what_was_held(order: RunningService) -> None:
    order_id = await place(order)
    first = await step(order, order_id, "reserve")
    picked = await step(order, order_id, "issue", {"warehouse_id": "WH-NORTH"})
    again = await step(order, order_id, "reserve")
    assert isinstance(first, dict) and isinstance(again, dict)
    assert again["status"] == "reserved"
    assert again["allocations"] == first["allocations"] == picked
    avail = await order.http.get(
        "/stock/availability", params={"sku": "MUG-CERAMIC"}, headers=auth("coordinator")
    )
    [north] = [w for w in avail.json()["items"] if w["warehouse_id"] == "WH-NORTH"]
    assert north["on_hand"] == 7 and north["reserved"] == 0


async def test_credit_hold_replayed_after_release_changes_nothing(order: RunningService) -> None:
    order_id = await place(order)
    await step(order, order_id, "credit-hold", {"kind": "credit_hold", "detail": "over limit"})
    r = await order.http.post(
        f"/orders/{order_id}/release-credit-hold", headers=auth("coordinator")
    )
    assert r.json()["status"] == "placed"
    replay = await step(order, order_id, "credit-hold", {"kind": "credit_hold", "detail": "x"})
    assert isinstance(replay, dict) and replay["status"] == "placed"
    tasks = await order.http.get("/tasks", params={"order_id": order_id}, headers=SERVICE)
    assert tasks.status_code == 403  # tasks are for coordinators and ops
    open_tasks = await order.http.get(
        "/tasks", params={"order_id": order_id}, headers=auth("coordinator")
    )
    assert open_tasks.json()["items"] == []


async def test_task_with_a_key_opens_once(order: RunningService) -> None:
    order_id = await place(order)
    task = {"kind": "shipment_exception", "detail": "damaged", "key": "exception:s1"}
    await step(order, order_id, "tasks", task)
    await step(order, order_id, "tasks", task)
    listed = await order.http.get(
        "/tasks", params={"order_id": order_id}, headers=auth("coordinator")
    )
    assert [t["detail"] for t in listed.json()["items"]] == ["damaged"]
