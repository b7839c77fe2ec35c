"""The workflow's steps are safe to repeat: Temporal re-runs local activities whose
workflow task failed, possibly after the order has moved on."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import pytest

from services.common.bus import Bus
from services.order import stock
from tests.customer.conftest import publish
from tests.harness import RunningService, Stack, auth, eventually
from tests.order.test_orders import body, seeded
from tests.order.test_shipment_views import created, tracking
from tests.order.test_stock import availability, in_days, receive, wait_events

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
    assert isinstance(first, dict) and isinstance(again, dict) and isinstance(picked, list)
    assert again["status"] == "reserved"
    assert [{**lot, "unit_weight_grams": 350} for lot in again["allocations"]] == picked
    assert again["allocations"] == first["allocations"]
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


async def open_tasks(svc: RunningService, order_id: str) -> list[dict[str, Any]]:
    r = await svc.http.get("/tasks", params={"order_id": order_id}, headers=auth("coordinator"))
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def timeline(svc: RunningService, order_id: str) -> list[tuple[str, str]]:
    r = await svc.http.get(f"/orders/{order_id}/status", headers=auth("coordinator"))
    return [(t["kind"], t["detail"]) for t in r.json()["timeline"]]


async def test_concurrent_tasks_with_one_key_open_one(order: RunningService) -> None:
    order_id = await place(order)
    task = {"kind": "shipment_exception", "detail": "lost", "key": "exception:s2"}
    answers = await asyncio.gather(
        *(
            order.http.post(f"/internal/orders/{order_id}/tasks", json=task, headers=SERVICE)
            for _ in range(5)
        )
    )
    assert sorted(r.status_code for r in answers) == [200, 200, 200, 200, 201]
    assert len({r.json()["id"] for r in answers}) == 1
    assert len(await open_tasks(order, order_id)) == 1


async def test_task_kind_longer_than_its_column_is_422(order: RunningService) -> None:
    order_id = await place(order)
    r = await order.http.post(
        f"/internal/orders/{order_id}/tasks",
        json={"kind": "k" * 33, "detail": "x"},
        headers=SERVICE,
    )
    assert r.status_code == 422, r.text


ATTENTION = {"reason": "too_many_parcels", "detail": "packs into 31 parcels", "key": "att:1"}


async def test_attention_releases_stock_and_asks_a_coordinator(
    order: RunningService, bus: Bus
) -> None:
    """Reservations go back on the shelf, the order waits in needs_attention with one task
    saying why, and a repeat with the same key changes nothing."""
    order_id = await place(order)
    await step(order, order_id, "reserve")
    assert (await availability(order, "MUG-CERAMIC"))["WH-NORTH"]["reserved"] == 3
    first = await step(order, order_id, "attention", ATTENTION)
    again = await step(order, order_id, "attention", ATTENTION)
    assert isinstance(first, dict) and first["status"] == "needs_attention"
    assert again == first
    assert (await availability(order, "MUG-CERAMIC"))["WH-NORTH"]["reserved"] == 0
    [task] = await open_tasks(order, order_id)
    assert task["kind"] == "needs_attention" and "packs into 31 parcels" in task["detail"]
    assert ("needs_attention", "too_many_parcels: packs into 31 parcels") in await timeline(
        order, order_id
    )
    [event] = await wait_events(bus, "order.order.attention_needed", 1)
    assert event["data"]["order_id"] == order_id
    assert event["data"]["reason"] == "too_many_parcels"


async def test_attention_on_a_finished_order_is_409(order: RunningService) -> None:
    order_id = await place(order)
    await step(order, order_id, "cancel", {"reason": "changed my mind"})
    r = await order.http.post(
        f"/internal/orders/{order_id}/attention", json=ATTENTION, headers=SERVICE
    )
    assert r.status_code == 409 and r.json()["code"] == "invalid_transition"


async def test_retry_puts_the_order_back_in_placed(order: RunningService, bus: Bus) -> None:
    """Only an order needing attention may be retried; the retry closes its task, is
    announced, and the workflow's steps accept the order again from the start."""
    order_id = await place(order)
    url = f"/orders/{order_id}/retry"
    refused = await order.http.post(url, headers=auth("coordinator"))
    assert refused.status_code == 409 and refused.json()["code"] == "not_needing_attention"
    await step(order, order_id, "reserve")
    await step(order, order_id, "attention", ATTENTION)
    assert (
        await order.http.post(url, headers=auth("customer", customer_id="c-1"))
    ).status_code == 403
    r = await order.http.post(url, headers=auth("coordinator", subject="ann"))
    assert r.status_code == 200 and r.json()["status"] == "placed"
    assert await open_tasks(order, order_id) == []
    assert ("retry_requested", "retry requested by ann") in await timeline(order, order_id)
    [event] = await wait_events(bus, "order.order.retry_requested", 1)
    assert event["data"] == {"order_id": order_id, "requested_by": "ann"}
    held = await step(order, order_id, "credit-hold", {"kind": "credit_hold", "detail": "limit"})
    assert isinstance(held, dict) and held["status"] == "credit_hold"
    await order.http.post(f"/orders/{order_id}/release-credit-hold", headers=auth("coordinator"))
    reserved = await step(order, order_id, "reserve")
    assert isinstance(reserved, dict) and reserved["status"] == "reserved"
    picked = await step(order, order_id, "issue", {"warehouse_id": "WH-NORTH"})
    assert isinstance(picked, list) and sum(p["quantity"] for p in picked) == 3


async def test_issue_sends_each_lots_catalogue_weight(order: RunningService) -> None:
    order_id = await place(order)
    await step(order, order_id, "reserve")
    picked = await step(order, order_id, "issue", {"warehouse_id": "WH-NORTH"})
    assert isinstance(picked, list)
    assert [(p["sku"], p["quantity"], p["unit_weight_grams"]) for p in picked] == [
        ("MUG-CERAMIC", 3, 350)
    ]


# --- expiry at pick (a lot may expire while its order waits) ---------------------------


async def coffee_order(stack: Stack, later: int, quantity: int) -> tuple[RunningService, str]:
    """WH-NORTH holds 3 of lot SOON (expires tomorrow) and `later` of lot LATER (in a
    month); an order for `quantity` of it is placed."""
    svc = await seeded(stack)
    for lot, days, units in (("SOON", 1, 3), ("LATER", 30, later)):
        r = await receive(svc, "WH-NORTH", "COFFEE-1KG", lot, units, in_days(days))
        assert r.status_code == 201, r.text
    r = await svc.http.post(
        "/orders",
        json=body(lines=[{"sku": "COFFEE-1KG", "quantity": quantity}]),
        headers={**auth("coordinator"), "Idempotency-Key": "coffee"},
    )
    assert r.status_code == 201, r.text
    return svc, str(r.json()["id"])


def days_pass(monkeypatch: pytest.MonkeyPatch, days: int) -> None:
    later = date.today() + timedelta(days=days)
    monkeypatch.setattr(stock, "today", lambda: later)


async def test_a_lot_expired_before_picking_is_swapped(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc, order_id = await coffee_order(stack, later=5, quantity=3)
    reserved = await step(svc, order_id, "reserve")
    assert isinstance(reserved, dict)
    assert [a["lot"] for a in reserved["allocations"]] == ["SOON"]
    days_pass(monkeypatch, 2)
    picked = await step(svc, order_id, "issue", {"warehouse_id": "WH-NORTH"})
    assert isinstance(picked, list)
    assert [(p["lot"], p["quantity"], p["unit_weight_grams"]) for p in picked] == [
        ("LATER", 3, 1000)
    ]
    lots = {x["lot"]: x for x in (await availability(svc, "COFFEE-1KG"))["WH-NORTH"]["lots"]}
    assert (lots["SOON"]["on_hand"], lots["SOON"]["reserved"]) == (3, 0)
    assert (lots["LATER"]["on_hand"], lots["LATER"]["reserved"]) == (2, 0)


async def test_a_lot_expired_before_picking_backorders_what_the_warehouse_lacks(
    stack: Stack, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing is picked, the short quantity waits as a backorder (the answer says so,
    the change stays), and the order picks once stock arrives."""
    svc, order_id = await coffee_order(stack, later=1, quantity=4)
    reserved = await step(svc, order_id, "reserve")
    assert isinstance(reserved, dict) and reserved["status"] == "reserved"
    days_pass(monkeypatch, 2)
    r = await svc.http.post(
        f"/internal/orders/{order_id}/issue", json={"warehouse_id": "WH-NORTH"}, headers=SERVICE
    )
    assert r.status_code == 409 and r.json()["code"] == "backordered_at_pick", r.text
    got = await svc.http.get(f"/orders/{order_id}", headers=auth("coordinator"))
    assert got.json()["status"] == "backordered"
    north = (await availability(svc, "COFFEE-1KG"))["WH-NORTH"]
    assert (north["on_hand"], north["reserved"]) == (4, 1)  # nothing picked
    r = await svc.http.get("/stock/backorders", params={"order_id": order_id}, headers=SERVICE)
    assert [(b["sku"], b["quantity"]) for b in r.json()["items"]] == [("COFFEE-1KG", 3)]
    await wait_events(bus, "order.order.backordered", 1)

    r = await receive(svc, "WH-NORTH", "COFFEE-1KG", "FRESH", 5, in_days(60))
    assert r.status_code == 201 and r.json()["backorders_filled"] == [order_id], r.text
    reserved = await step(svc, order_id, "reserve")
    assert isinstance(reserved, dict) and reserved["status"] == "reserved"
    picked = await step(svc, order_id, "issue", {"warehouse_id": "WH-NORTH"})
    assert isinstance(picked, list)
    assert sorted((p["lot"], p["quantity"]) for p in picked) == [("FRESH", 3), ("LATER", 1)]


# --- "where is my order?" for customers --------------------------------------------


async def test_customers_see_a_customer_safe_timeline(order: RunningService) -> None:
    """No coordinator free text, no "released by …", no task details for a customer;
    staff see every entry as written."""
    order_id = await place(order)
    await step(order, order_id, "credit-hold", {"kind": "credit_hold", "detail": "over 5000"})
    await order.http.post(
        f"/orders/{order_id}/release-credit-hold", headers=auth("coordinator", subject="ann")
    )
    await step(order, order_id, "notes", {"kind": "cancel_partial", "detail": "staff only"})
    await step(order, order_id, "tasks", {"kind": "shipment_exception", "detail": "dented"})
    await step(order, order_id, "reserve")

    staff = await timeline(order, order_id)
    assert ("credit_released", "released by ann") in staff
    assert ("cancel_partial", "staff only") in staff
    assert ("coordinator_task", "shipment_exception: dented") in staff

    r = await order.http.get(
        f"/orders/{order_id}/status", headers=auth("customer", customer_id="c-1")
    )
    assert r.status_code == 200, r.text
    seen = [(t["kind"], t["detail"], t["trace_id"]) for t in r.json()["timeline"]]
    assert seen == [
        ("placed", "Order received", None),
        ("credit_hold", "Your order is being reviewed", None),
        ("credit_released", "Your order was approved", None),
        ("confirmed", "Your items are reserved", None),
    ]


async def test_cancelling_an_order_needing_attention_closes_its_task(
    order: RunningService,
) -> None:
    order_id = await place(order)
    await step(order, order_id, "attention", ATTENTION)
    cancelled = await step(order, order_id, "cancel", {"reason": "customer gave up"})
    assert isinstance(cancelled, dict) and cancelled["status"] == "cancelled"
    assert await open_tasks(order, order_id) == []


async def test_completion_resolves_the_exception_task_of_a_delivered_shipment(
    order: RunningService, bus: Bus
) -> None:
    """A carrier exception the shipment got over (it was delivered) leaves no open task
    once the order completes; the task stays in the resolved list with why."""
    order_id = await place(order)
    await step(order, order_id, "reserve")
    await step(order, order_id, "issue", {"warehouse_id": "WH-NORTH"})
    shipment_id = "s-exc"
    await publish(bus, created(order_id, shipment_id), shipment_id)
    delivered = tracking(order_id, shipment_id, "delivered", "delivered", "2026-01-09T10:00Z", 3)
    await publish(bus, delivered, shipment_id)

    async def view_delivered() -> bool:
        r = await order.http.get(f"/orders/{order_id}/status", headers=auth("coordinator"))
        return [s["status"] for s in r.json()["shipments"]] == ["delivered"]

    await eventually(view_delivered, message="the read model saw the delivery")
    task = {"kind": "shipment_exception", "detail": "SIM123: damaged", "key": "exception:s-exc"}
    await step(order, order_id, "tasks", task)
    other = {"kind": "shipment_exception", "detail": "elsewhere", "key": "exception:s-other"}
    await step(order, order_id, "tasks", other)
    await step(order, order_id, "complete", {"outcome": "delivered"})
    assert [t["detail"] for t in await open_tasks(order, order_id)] == ["elsewhere"]
    r = await order.http.get(
        "/tasks", params={"order_id": order_id, "status": "resolved"}, headers=auth("coordinator")
    )
    [resolved] = r.json()["items"]
    assert resolved["detail"] == "SIM123: damaged"
    assert resolved["resolution"] == "delivered after the carrier exception"
