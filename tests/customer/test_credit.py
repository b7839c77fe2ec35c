"""Credit checks: approve, hold on the flag, hold over the limit; one decision per order."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from services.common.bus import Bus
from tests.customer.conftest import body, cancelled, create, credit, placed, publish, settled
from tests.harness import RunningService, Stack, auth


def order_id() -> str:
    return str(uuid.uuid4())


async def check(
    svc: RunningService, customer_id: str, order: str, amount: str, expect: int = 200
) -> dict[str, Any]:
    r = await svc.http.post(
        f"/customers/{customer_id}/credit-checks",
        json={"order_id": order, "amount": amount},
        headers=auth("service"),
    )
    assert r.status_code == expect, r.text
    result: dict[str, Any] = r.json()
    return result


async def test_no_limit_is_approved(customer_svc: RunningService) -> None:
    customer = await create(customer_svc, body())
    o = order_id()
    result = await check(customer_svc, customer["id"], o, "1000000")
    assert result["order_id"] == o and result["customer_id"] == customer["id"]
    assert result["decision"] == "approved"
    assert result["reason_code"] == "no_limit"
    assert result["amount"] == "1000000.00"
    assert result["credit_limit"] is None and result["available"] is None
    assert result["open_order_value"] == "0.00"


async def test_credit_hold_flag_holds_any_order(customer_svc: RunningService) -> None:
    customer = await create(customer_svc, body(credit_hold=True, credit_limit="5000"))
    result = await check(customer_svc, customer["id"], order_id(), "0.01")
    assert result["decision"] == "hold"
    assert result["reason_code"] == "credit_hold"
    assert result["reason"]
    assert result["available"] == "5000.00"


async def test_over_limit_counts_the_other_open_orders(stack: Stack, bus: Bus) -> None:
    svc = await stack.start("customer")
    customer = await create(svc, body(credit_limit="1000"))
    cid = customer["id"]
    first = order_id()
    await publish(bus, placed(first, cid, "600.00"), subject=first)
    await settled(svc, 1)
    assert (await credit(svc, cid))["open_order_value"] == "600.00"

    # The order being checked is not counted against itself (its placement is known).
    itself = await check(svc, cid, first, "600.00")
    assert itself["decision"] == "approved"
    assert itself["open_order_value"] == "0.00"

    over = await check(svc, cid, order_id(), "400.01")
    assert over["decision"] == "hold"
    assert over["reason_code"] == "over_limit"
    assert "600.00" in over["reason"] and "1000.00" in over["reason"]
    assert (over["open_order_value"], over["available"]) == ("600.00", "400.00")

    # A customer that is already over its limit has negative headroom.
    await svc.http.patch(
        f"/customers/{cid}", json={"credit_limit": "500"}, headers=auth("coordinator")
    )
    status = await credit(svc, cid)
    assert (status["open_order_value"], status["pending_value"]) == ("600.00", "400.01")
    assert status["available"] == "-500.01"
    squeezed = await check(svc, cid, order_id(), "1")
    assert (squeezed["decision"], squeezed["available"]) == ("hold", "-500.01")


async def test_exactly_up_to_the_limit_is_approved(customer_svc: RunningService) -> None:
    customer = await create(customer_svc, body(credit_limit="1000"))
    at_limit = await check(customer_svc, customer["id"], order_id(), "1000")
    assert (at_limit["decision"], at_limit["reason_code"]) == ("approved", "within_limit")
    assert (at_limit["open_order_value"], at_limit["available"]) == ("0.00", "1000.00")


async def test_checked_orders_count_before_their_placement_arrives(stack: Stack, bus: Bus) -> None:
    """Two orders checked back to back, before either `order.placed` reached the customer
    service, cannot both take the same headroom."""
    svc = await stack.start("customer")
    cid = (await create(svc, body(credit_limit="100")))["id"]
    a, b = order_id(), order_id()
    assert (await check(svc, cid, a, "70"))["decision"] == "approved"
    second = await check(svc, cid, b, "70")
    assert second["decision"] == "hold"
    assert (second["open_order_value"], second["available"]) == ("70.00", "30.00")
    status = await credit(svc, cid)
    assert (status["open_order_value"], status["pending_value"]) == ("0.00", "140.00")

    # Placement moves an order from pending to open; the sum does not change.
    await publish(bus, placed(a, cid, "70.00"), subject=a)
    await settled(svc, 1)
    status = await credit(svc, cid)
    assert (status["open_order_value"], status["pending_value"]) == ("70.00", "70.00")
    assert status["available"] == "-40.00"

    # An order that ends before its placement is seen stops counting at once.
    await publish(bus, cancelled(b, cid, "70.00"), subject=b)
    await settled(svc, 2)
    status = await credit(svc, cid)
    assert (status["open_order_value"], status["pending_value"]) == ("70.00", "0.00")
    # ... and its late placement does not count it again.
    await publish(bus, placed(b, cid, "70.00"), subject=b)
    await settled(svc, 3)
    assert (await credit(svc, cid))["available"] == "30.00"


async def test_concurrent_checks_of_one_customer_never_exceed_the_limit(
    customer_svc: RunningService,
) -> None:
    customer = await create(customer_svc, body(credit_limit="100"))
    answers = await asyncio.gather(
        *(check(customer_svc, customer["id"], order_id(), "30") for _ in range(8))
    )
    approved = [a for a in answers if a["decision"] == "approved"]
    assert len(approved) == 3
    assert (await credit(customer_svc, customer["id"]))["pending_value"] == "240.00"


async def test_one_decision_per_order(customer_svc: RunningService) -> None:
    customer = await create(customer_svc, body(credit_limit="100"))
    cid = customer["id"]
    o = order_id()
    first = await check(customer_svc, cid, o, "150")
    assert first["decision"] == "hold"

    # Raising the limit changes decisions for new orders, not the stored one.
    r = await customer_svc.http.patch(
        f"/customers/{cid}", json={"credit_limit": "1000"}, headers=auth("coordinator")
    )
    assert r.status_code == 200
    again = await customer_svc.http.post(
        f"/customers/{cid}/credit-checks",
        json={"order_id": o, "amount": "150.00"},
        headers=auth("service"),
    )
    assert again.status_code == 200
    assert again.json() == first
    assert again.headers["idempotent-replayed"] == "true"
    assert (await check(customer_svc, cid, order_id(), "150"))["decision"] == "approved"

    # The same order with another amount or customer is a caller bug, not a new check.
    other = await create(customer_svc, body("Other"))
    for target, amount in ((cid, "151"), (other["id"], "150")):
        mismatch = await check(customer_svc, target, o, amount, expect=409)
        assert mismatch["code"] == "credit_check_mismatch"


async def test_concurrent_checks_of_one_order_agree(customer_svc: RunningService) -> None:
    customer = await create(customer_svc, body(credit_limit="100"))
    o = order_id()
    answers = await asyncio.gather(
        *(
            customer_svc.http.post(
                f"/customers/{customer['id']}/credit-checks",
                json={"order_id": o, "amount": "99"},
                headers=auth("service"),
            )
            for _ in range(6)
        )
    )
    assert {r.status_code for r in answers} == {200}
    assert len({r.json()["checked_at"] for r in answers}) == 1
    assert sum(1 for r in answers if "idempotent-replayed" not in r.headers) == 1


async def test_credit_check_errors(customer_svc: RunningService) -> None:
    customer = await create(customer_svc, body(credit_limit="100"))
    o = order_id()
    missing = await check(customer_svc, str(uuid.uuid4()), o, "10", expect=404)
    assert missing["code"] == "not_found"
    for amount in ("-5", "1.234", "abc"):
        invalid = await check(customer_svc, customer["id"], o, amount, expect=422)
        assert invalid["code"] == "validation_error"
    for role in ("coordinator", "ops"):
        r = await customer_svc.http.post(
            f"/customers/{customer['id']}/credit-checks",
            json={"order_id": o, "amount": "10"},
            headers=auth(role),
        )
        assert r.status_code == 403
    # None of the failures stored a decision for the order.
    assert (await check(customer_svc, customer["id"], o, "10"))["decision"] == "approved"


async def test_a_free_order_is_approved(customer_svc: RunningService) -> None:
    """Amount 0 takes no credit: approved even for a customer over its limit or on hold."""
    customer = await create(customer_svc, body(credit_limit="100"))
    await check(customer_svc, customer["id"], order_id(), "100")  # the limit is used up
    free = await check(customer_svc, customer["id"], order_id(), "0")
    assert (free["decision"], free["reason_code"], free["amount"]) == (
        "approved",
        "free_order",
        "0.00",
    )
    r = await customer_svc.http.patch(
        f"/customers/{customer['id']}",
        json={"credit_hold": True},
        headers={**auth("coordinator"), "If-Match": f'"{customer["version"]}"'},
    )
    assert r.status_code == 200, r.text
    held = await check(customer_svc, customer["id"], order_id(), "0.00")
    assert held["decision"] == "approved"


async def test_customer_reads_its_own_credit(customer_svc: RunningService) -> None:
    customer = await create(customer_svc, body(credit_limit="250.5"))
    r = await customer_svc.http.get(
        f"/customers/{customer['id']}/credit",
        headers=auth("customer", customer_id=customer["id"]),
    )
    assert r.status_code == 200
    assert r.json() == {
        "customer_id": customer["id"],
        "credit_limit": "250.50",
        "credit_hold": False,
        "open_order_value": "0.00",
        "pending_value": "0.00",
        "available": "250.50",
        "open_orders": [],
    }


async def test_checks_racing_their_placement_never_stay_pending(stack: Stack, bus: Bus) -> None:
    """Each order's credit check and its `order.placed` arrive at the same moment (as
    they do: the workflow checks credit right after the order is placed); whichever
    commits first, no check stays pending once its order is counted."""
    svc = await stack.start("customer")
    cid = (await create(svc, body(credit_limit="100000")))["id"]
    orders = [order_id() for _ in range(20)]

    async def both(o: str) -> None:
        await asyncio.gather(
            check(svc, cid, o, "10"), publish(bus, placed(o, cid, "10.00"), subject=o)
        )

    await asyncio.gather(*(both(o) for o in orders))
    await settled(svc, len(orders))
    status = await credit(svc, cid)
    assert (status["open_order_value"], status["pending_value"]) == ("200.00", "0.00")
