"""Returns through the running system: the Return workflow drives each RMA from the
request to closed on real NATS, Temporal and services, with the carrier scanned by hand."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from temporalio.service import RPCError

from cli.demo import Api
from services.common.workflow_names import ReturnWorkflow
from tests.e2e.conftest import World
from tests.harness import eventually, token

pytestmark = pytest.mark.settings(
    shipment={"simulator_enabled": False},
    workflows={"backorder_timeout_seconds": 3600, "credit_hold_timeout_seconds": 3600},
)


async def delivered_order(
    world: World, customer_id: str, *lines: tuple[str, int], shipments: int = 1
) -> str:
    """An order placed, each of its `shipments` scanned to delivered, the order completed."""
    order_id = await world.place(customer_id, *lines)
    for shipment in await world.wait_shipments(order_id, shipments):
        await world.scan(shipment["tracking_number"], "IR", "PU", "OD", "DL")
    await world.wait_status(order_id, "completed")
    return order_id


def customer_api(world: World, customer_id: str) -> Api:
    urls = {name: svc.url for name, svc in world.stack.services.items()}
    return Api(urls, token("customer", customer_id=customer_id, subject=f"user-{customer_id}"))


async def request(
    api: Api, order_id: str, lines: list[dict[str, int]], **fields: Any
) -> dict[str, Any]:
    """POST /returns once the returns service's delivered-lines model knows the delivery."""
    body = {"order_id": order_id, "reason": "no_longer_needed", "lines": lines, **fields}
    key = str(uuid.uuid4())

    async def accepted() -> dict[str, Any] | None:
        try:
            return await api.call("returns", "POST", "/returns", body, key=key, ok=(201,))
        except RuntimeError as exc:
            if "order_not_found" in str(exc) or "not_delivered" in str(exc):
                return None
            raise

    result: dict[str, Any] = await eventually(accepted, 30, 0.2, "the order known to returns")
    return result


async def wait_return(
    world: World, return_id: str, test: Callable[[dict[str, Any]], Any], what: str
) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        body: dict[str, Any] = await world.api.call("returns", "GET", f"/returns/{return_id}")
        return body if test(body) else None

    result: dict[str, Any] = await eventually(reached, 45, 0.1, what)
    return result


async def line_no(world: World, order_id: str, sku: str) -> int:
    order = await world.api.call("order", "GET", f"/orders/{order_id}")
    return int(next(x["line_no"] for x in order["lines"] if x["sku"] == sku))


async def set_default_policy(world: World, **changes: Any) -> None:
    policy = await world.api.call("returns", "GET", "/return-policies/default")
    kept = set(policy) - {"id", "version", "created_at", "updated_at"}
    body = {k: policy[k] for k in kept}
    await world.api.call("returns", "PUT", "/return-policies/default", {**body, **changes})


async def workflow_result(world: World, return_id: str) -> str:
    handle = world.temporal.get_workflow_handle(ReturnWorkflow.id(return_id))
    result: str = await handle.result()
    return result


async def test_a_return_goes_from_request_to_refund_and_restock(world: World) -> None:
    """Requested by the customer, authorized by the policy, a label bought, the parcel
    scanned to the warehouse (a scan pushed twice changes nothing), received and
    inspected by a coordinator, restocked into its lot and refunded in full (damaged in
    transit: the merchant's fault, no fee); the workflow ends `closed`."""
    order_id = await delivered_order(world, world.acme, ("COFFEE-1KG", 2))
    before = await world.availability("COFFEE-1KG")
    jane_api = customer_api(world, world.acme)
    try:
        line = await line_no(world, order_id, "COFFEE-1KG")
        ret = await request(
            jane_api, order_id, [{"line_no": line, "quantity": 1}], reason="damaged.in_transit"
        )
        rid = ret["id"]
        assert ret["status"] == "requested" and ret["customer_id"] == world.acme
        labelled = await wait_return(
            world, rid, lambda r: r["status"] == "awaiting_receipt", "label bought"
        )
        assert labelled["tracking_number"] and labelled["receipt_deadline"]
        shipment = await world.return_shipment(rid)
        assert shipment["id"] == labelled["return_shipment_id"]
        assert shipment["lines"] == [
            {
                "line_no": line,
                "sku": "COFFEE-1KG",
                "quantity": 1,
                "unit_weight_grams": shipment["lines"][0]["unit_weight_grams"],
            }
        ]
        ids = [str(uuid.uuid4()) for _ in range(4)]
        await world.scan(shipment["tracking_number"], "IR", "PU", "OD", "DL", ids=ids)
        await world.scan(shipment["tracking_number"], "IR", "PU", "OD", "DL", ids=ids)
        arrived = await wait_return(world, rid, lambda r: r["arrived_at"], "parcel arrived")
        assert arrived["status"] == "awaiting_receipt"  # the count is the coordinator's

        lots = [
            {"line_no": x["line_no"], "lot": x["lot"], "good": x["expected"], "damaged": 0}
            for x in arrived["lots"]
        ]
        await world.api.call("returns", "POST", f"/returns/{rid}/receipt", {"lots": lots})
        await world.api.call(
            "returns",
            "POST",
            f"/returns/{rid}/inspection",
            {
                "lots": [
                    {**{k: x[k] for k in ("line_no", "lot")}, "disposition": "restock"}
                    for x in lots
                ]
            },
        )
        closed = await wait_return(world, rid, lambda r: r["status"] == "closed", "closed")
        assert await workflow_result(world, rid) == "closed"
        assert closed["resolution"] == "refund"
        assert Decimal(closed["refund_total"]) == Decimal(closed["lines"][0]["unit_price"])
        assert Decimal(closed["restocking_fee"]) == 0
        statuses = [h["status"] for h in closed["history"]]
        for step in ("requested", "authorized", "awaiting_receipt", "received", "inspected"):
            assert step in statuses
        assert statuses[-2:] == ["resolved", "closed"]

        async def restocked() -> dict[str, int] | None:
            now = await world.availability("COFFEE-1KG")
            return now if sum(now.values()) == sum(before.values()) + 1 else None

        await eventually(restocked, 30, 0.1, "the coffee back on the shelf")
        # The customer sees their return without internal notes; another customer not at all.
        own = await jane_api.call("returns", "GET", f"/returns/{rid}")
        assert own["attention"] is None
        assert all(h["note"] is None or "policy" not in h["by"] for h in own["history"])
    finally:
        await jane_api.close()
    other = customer_api(world, world.globex)
    try:
        await other.call("returns", "GET", f"/returns/{rid}", ok=(404,))
        page = await other.call("returns", "GET", "/returns")
        assert page["items"] == []
    finally:
        await other.close()


async def test_keep_it_refunds_without_a_parcel(world: World) -> None:
    """Below the policy's keep-it threshold the refund is granted with no return: no
    label is bought and nothing goes back on the shelf."""
    await set_default_policy(world, keep_it_threshold="50.00")
    order_id = await delivered_order(world, world.globex, ("MUG-CERAMIC", 1))
    line = await line_no(world, order_id, "MUG-CERAMIC")
    ret = await request(
        world.api, order_id, [{"line_no": line, "quantity": 1}], customer_id=world.globex
    )
    closed = await wait_return(world, ret["id"], lambda r: r["status"] == "closed", "closed")
    assert closed["keep_it"] and closed["resolution"] == "refund"
    assert closed["return_shipment_id"] is None
    assert Decimal(closed["refund_total"]) > 0
    page = await world.api.call(
        "shipment", "GET", "/return-shipments", params={"return_id": ret["id"]}
    )
    assert page["items"] == []
    assert await workflow_result(world, ret["id"]) == "closed"


async def test_review_waits_for_a_coordinator_and_a_replacement_is_ordered(
    world: World,
) -> None:
    """A policy that does not authorize by itself leaves the return `requested` until a
    coordinator authorizes it; the replacement is a new order through order-to-delivery,
    linked both ways."""
    await set_default_policy(world, auto_authorize=False)
    order_id = await delivered_order(world, world.acme, ("COFFEE-1KG", 1))
    line = await line_no(world, order_id, "COFFEE-1KG")
    ret = await request(
        world.api,
        order_id,
        [{"line_no": line, "quantity": 1}],
        customer_id=world.acme,
        reason="defective",
        requested_resolution="replacement",
    )
    rid = ret["id"]
    handle = world.temporal.get_workflow_handle(ReturnWorkflow.id(rid))

    async def waiting() -> str | None:
        try:
            step: str = await handle.query(ReturnWorkflow.QUERY_STATUS)
        except RPCError:  # the bridge has not started it yet
            return None
        return step if step == "awaiting_decision" else None

    await eventually(waiting, 30, 0.1, "the workflow waiting for a decision")
    assert (await world.api.call("returns", "GET", f"/returns/{rid}"))["status"] == "requested"
    await world.api.call("returns", "POST", f"/returns/{rid}/authorize", {"note": "ok"})
    labelled = await wait_return(
        world, rid, lambda r: r["status"] == "awaiting_receipt", "label after authorization"
    )
    await world.scan_return(rid, "IR", "PU", "OD", "DL")
    await wait_return(world, rid, lambda r: r["arrived_at"], "parcel arrived")
    lots = [
        {"line_no": x["line_no"], "lot": x["lot"], "good": 0, "damaged": x["expected"]}
        for x in labelled["lots"]
    ]
    await world.api.call("returns", "POST", f"/returns/{rid}/receipt", {"lots": lots})
    await world.api.call(
        "returns",
        "POST",
        f"/returns/{rid}/inspection",
        {
            "lots": [
                {"line_no": x["line_no"], "lot": x["lot"], "disposition": "scrap", "reason": "dead"}
                for x in lots
            ]
        },
    )
    closed = await wait_return(world, rid, lambda r: r["status"] == "closed", "closed")
    assert closed["resolution"] == "replacement"
    replacement = closed["replacement_order_id"]
    order = await world.api.call("order", "GET", f"/orders/{replacement}")
    assert [(x["sku"], x["quantity"]) for x in order["lines"]] == [("COFFEE-1KG", 1)]
    assert Decimal(order["total"]) == 0
    # The replacement runs through order-to-delivery like any order.
    await world.wait_status(replacement, "shipping", "completed")


async def test_a_step_that_fails_for_good_waits_for_a_coordinator(world: World) -> None:
    """Lines that left from two warehouses cannot go back on one label: the return is
    marked for a coordinator with the reason (not failed, not silent); a retry runs the
    step again; receiving the goods by hand moves it on to closed."""
    order_id = await delivered_order(
        world, world.jane, ("MUG-CERAMIC", 1), ("GRINDER-BURR", 1), shipments=2
    )
    lines = [
        {"line_no": await line_no(world, order_id, sku), "quantity": 1}
        for sku in ("MUG-CERAMIC", "GRINDER-BURR")
    ]
    ret = await request(world.api, order_id, lines, customer_id=world.jane, reason="wrong_item")
    rid = ret["id"]
    marked = await wait_return(world, rid, lambda r: r["attention"], "attention")
    assert marked["attention"] == "several_warehouses" and marked["status"] == "authorized"
    assert "WH-NORTH" in marked["attention_detail"] and "WH-SOUTH" in marked["attention_detail"]
    step = await world.temporal.get_workflow_handle(ReturnWorkflow.id(rid)).query(
        ReturnWorkflow.QUERY_STATUS
    )
    assert step == "needs_attention"

    retried = await world.api.call("returns", "POST", f"/returns/{rid}/retry")
    assert retried["attention"] is None
    again = await wait_return(world, rid, lambda r: r["attention"], "attention after retry")
    assert any(h["note"] == "retry requested" for h in again["history"])
    await world.api.call("returns", "POST", f"/returns/{rid}/retry")
    await world.api.call("returns", "POST", f"/returns/{rid}/retry", ok=(409,))

    lots = [
        {"line_no": x["line_no"], "lot": x["lot"], "good": x["expected"], "damaged": 0}
        for x in again["lots"]
    ]
    await world.api.call("returns", "POST", f"/returns/{rid}/receipt", {"lots": lots})
    await world.api.call(
        "returns",
        "POST",
        f"/returns/{rid}/inspection",
        {
            "lots": [
                {"line_no": x["line_no"], "lot": x["lot"], "disposition": "restock"} for x in lots
            ]
        },
    )
    closed = await wait_return(world, rid, lambda r: r["status"] == "closed", "closed")
    assert closed["attention"] is None and closed["resolution"] == "refund"


async def test_a_cancelled_return_voids_its_unused_label(world: World) -> None:
    """The customer cancels before sending the parcel: the workflow ends `cancelled` and
    the return label is voided at the carrier."""
    order_id = await delivered_order(world, world.acme, ("COFFEE-1KG", 1))
    line = await line_no(world, order_id, "COFFEE-1KG")
    acme_api = customer_api(world, world.acme)
    try:
        ret = await request(acme_api, order_id, [{"line_no": line, "quantity": 1}])
        rid = ret["id"]
        await wait_return(world, rid, lambda r: r["status"] == "awaiting_receipt", "label")
        await acme_api.call(
            "returns", "POST", f"/returns/{rid}/cancel", {"reason": "kept it after all"}
        )
    finally:
        await acme_api.close()
    assert await workflow_result(world, rid) == "cancelled"

    async def voided() -> dict[str, Any] | None:
        page = await world.api.call(
            "shipment", "GET", "/return-shipments", params={"return_id": rid}
        )
        return page if page["items"][0]["status"] == "cancelled" else None

    await eventually(voided, 30, 0.1, "the label voided")
    # What was returned is returnable again.
    again = await request(
        world.api, order_id, [{"line_no": line, "quantity": 1}], customer_id=world.acme
    )
    assert again["status"] == "requested"
