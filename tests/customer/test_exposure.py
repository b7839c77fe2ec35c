"""Open order exposure from order events: any order, duplicates once, credit events out.

The relay publishes a batch concurrently, so these tests compare the credit events as a
set, after the outbox is drained, rather than in stream order.
"""

from __future__ import annotations

import uuid
from typing import Any

from services.common.bus import Bus
from services.common.events import OrderCompleted
from tests.customer.conftest import (
    body,
    cancelled,
    create,
    credit,
    placed,
    publish,
    republish,
    settled,
    stream_events,
)
from tests.harness import RunningService, Stack, auth, eventually


def new_id() -> str:
    return str(uuid.uuid4())


def completed(order: str, customer_id: str, total: str) -> OrderCompleted:
    return OrderCompleted(order_id=order, customer_id=customer_id, total=total, outcome="delivered")


async def credit_events(svc: RunningService, bus: Bus, customer_id: str) -> list[dict[str, Any]]:
    """The CustomerCreditChanged payloads about a customer, once the outbox is empty."""

    async def drained() -> bool:
        status = (await svc.http.get("/ops/messaging", headers=auth("ops"))).json()
        return bool(status["outbox"]["pending"] == 0)

    await eventually(drained, message="outbox drained")
    events = await stream_events(bus, "CUSTOMER", "customer.credit.changed")
    return [e.data for e in events if e.subject == customer_id]


async def test_placed_orders_add_exposure_once(stack: Stack, bus: Bus) -> None:
    svc = await stack.start("customer")
    customer = await create(svc, body(credit_limit="1000"))
    cid = customer["id"]
    a, b = new_id(), new_id()
    first = await publish(bus, placed(a, cid, "250.10"), subject=a)
    await republish(bus, first)  # a redelivered copy: same event id
    await publish(bus, placed(a, cid, "250.10"), subject=a)  # another event, same order
    await publish(bus, placed(b, cid, "100"), subject=b)
    await settled(svc, 3)

    status = await credit(svc, cid)
    assert status["open_order_value"] == "350.10"
    assert status["available"] == "649.90"
    assert sorted((o["order_id"], o["amount"]) for o in status["open_orders"]) == sorted(
        [(a, "250.10"), (b, "100.00")]
    )
    events = await credit_events(svc, bus, cid)
    values = sorted(e["open_order_value"] for e in events)
    # One event per order that changed the exposure, whichever was handled first.
    assert values in (["250.10", "350.10"], ["100.00", "350.10"])
    assert all(e["credit_limit"] == "1000.00" and e["credit_hold"] is False for e in events)


async def test_cancel_and_complete_close_orders(stack: Stack, bus: Bus) -> None:
    svc = await stack.start("customer")
    customer = await create(svc, body())
    cid = customer["id"]
    a, b, c = new_id(), new_id(), new_id()
    for order, total in ((a, "10"), (b, "20"), (c, "30")):
        await publish(bus, placed(order, cid, total), subject=order)
    await settled(svc, 3)
    assert (await credit(svc, cid))["open_order_value"] == "60.00"

    cancel = await publish(bus, cancelled(a, cid, "10"), subject=a)
    await publish(bus, completed(b, cid, "20"), subject=b)
    await republish(bus, cancel)
    await publish(bus, cancelled(a, cid, "10"), subject=a)  # cancelled again: no effect
    await publish(bus, completed(a, cid, "10"), subject=a)  # closed already: no effect
    await settled(svc, 7)

    status = await credit(svc, cid)
    assert status["open_order_value"] == "30.00"
    assert [o["order_id"] for o in status["open_orders"]] == [c]
    assert status["available"] is None
    values = [e["open_order_value"] for e in await credit_events(svc, bus, cid)]
    assert len(values) == 5  # three placements, one cancellation, one completion
    assert {"60.00", "30.00"} <= set(values)


async def test_close_before_placed_never_counts(stack: Stack, bus: Bus) -> None:
    svc = await stack.start("customer")
    customer = await create(svc, body(credit_limit="100"))
    cid = customer["id"]
    late, done_first = new_id(), new_id()
    await publish(bus, cancelled(late, cid, "70"), subject=late)
    await publish(bus, completed(done_first, cid, "20"), subject=done_first)
    await settled(svc, 2)
    await publish(bus, placed(late, cid, "70"), subject=late)
    await publish(bus, placed(done_first, cid, "20"), subject=done_first)
    await settled(svc, 4)

    status = await credit(svc, cid)
    assert status["open_order_value"] == "0.00"
    assert status["open_orders"] == []
    # They do not count against new orders either.
    r = await svc.http.post(
        f"/customers/{cid}/credit-checks",
        json={"order_id": new_id(), "amount": "100"},
        headers=auth("service"),
    )
    assert r.json()["decision"] == "approved"
    # Exposure never changed, so no credit event until a real placement.
    assert await credit_events(svc, bus, cid) == []
    live = new_id()
    await publish(bus, placed(live, cid, "5"), subject=live)
    await settled(svc, 5)
    events = await eventually(lambda: stream_events(bus, "CUSTOMER", "customer.credit.changed"))
    assert [e.data["open_order_value"] for e in events] == ["5.00"]


async def test_orders_of_unknown_customers_are_recorded_quietly(stack: Stack, bus: Bus) -> None:
    """No customer to report on: no event, no retries, nothing dead-lettered."""
    svc = await stack.start("customer")
    stranger = new_id()
    o = new_id()
    await publish(bus, placed(o, stranger, "12"), subject=o)
    await settled(svc, 1)
    assert await credit_events(svc, bus, stranger) == []
    assert await stream_events(bus, "DEADLETTER") == []


async def test_invalid_total_is_dead_lettered(stack: Stack, bus: Bus) -> None:
    svc = await stack.start("customer")
    customer = await create(svc, body())
    o = new_id()
    bad = await publish(bus, placed(o, customer["id"], "a lot"), subject=o)
    parked = await eventually(
        lambda: stream_events(bus, "DEADLETTER"), message="dead-lettered order event"
    )
    assert [p.id for p in parked] == [bad.id]
    assert (await credit(svc, customer["id"]))["open_order_value"] == "0.00"
