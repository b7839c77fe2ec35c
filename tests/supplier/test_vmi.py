"""The VMI view of a supplier's items (stock, backorder shares, position, forecast,
demand) and supplier proposals held to the policy."""

from __future__ import annotations

from typing import Any

import pytest

from services.common import events as ev
from services.common.bus import Bus
from tests.customer.conftest import publish
from tests.harness import RunningService, Stack
from tests.supplier.helpers import (
    COORD,
    add_item,
    create_supplier,
    inventory,
    key,
    publish_confirmed,
    publish_inventory,
    put_policy,
    settled,
    signals_of,
    supplier,
    tea_setup,
)

ACME = supplier("ACME")


@pytest.fixture
async def svc(stack: Stack) -> RunningService:
    return await stack.start("supplier")


async def test_the_inventory_view_shows_the_suppliers_own_items(
    svc: RunningService, bus: Bus
) -> None:
    await create_supplier(svc, "ACME")
    await create_supplier(svc, "OTHER")
    await add_item(svc, "ACME", "TEA", lead_time_days=5)
    await add_item(svc, "OTHER", "MUG")
    await put_policy(
        svc, "TEA", "WH-A", horizon_days=10, review_mode="periodic", review_period_days=7
    )
    await put_policy(
        svc, "TEA", "WH-B", horizon_days=10, review_mode="periodic", review_period_days=7
    )
    await put_policy(svc, "MUG", "WH-A")
    await publish_confirmed(bus, "o-1", ("TEA", "WH-A", 30), ("TEA", "WH-B", 10))
    # An order's backorder filled, then the order confirmed with all it holds: the filled
    # units are counted once.
    filled = ev.OrderBackorderFilled(
        order_id="o-2",
        allocations=[ev.LotQuantity(sku="TEA", warehouse_id="WH-A", lot="L2", quantity=6)],
    )
    await publish(bus, filled, "o-2")
    await publish_confirmed(bus, "o-2", ("TEA", "WH-A", 10))
    await publish_inventory(bus, inventory("TEA", "WH-A", on_hand=40, reserved=40, backordered=5))
    await publish_inventory(bus, inventory("TEA", "WH-B", on_hand=7, held=2, backordered=5))
    await publish_inventory(bus, inventory("TEA", "WH-C", on_hand=3, backordered=5))
    await publish_inventory(bus, inventory("MUG", "WH-A", on_hand=9))
    await settled(svc, 7)

    r = await svc.http.get("/suppliers/ACME/inventory", headers=ACME)
    assert r.status_code == 200, r.text
    view = r.json()
    rows = {row["warehouse_id"]: row for row in view["items"]}
    assert {row["sku"] for row in view["items"]} == {"TEA"}  # not OTHER's mugs
    assert set(rows) == {"WH-A", "WH-B", "WH-C"}
    # 5 backordered units shared by the two warehouses with a policy: 3 and 2.
    assert [(w, rows[w]["backordered"]) for w in sorted(rows)] == [
        ("WH-A", 3),
        ("WH-B", 2),
        ("WH-C", 0),
    ]
    a = rows["WH-A"]
    assert (a["on_hand"], a["reserved"], a["available"], a["position"]) == (40, 40, 0, -3)
    assert (a["demand_30d"], a["demand_90d"], a["has_policy"]) == (40, 40, True)
    # d = 4/day, sigma = 12 over 10 days; ss = 1.6449 * sqrt(5 * 144) = 44.14;
    # rop = 20 + 44.14 -> 65; target = 64.14 + 28 -> 93.
    assert (a["forecast_method"], a["forecast_daily_mean"]) == ("mean", 4.0)
    assert (a["reorder_point"], a["target"]) == (65, 93)
    b = rows["WH-B"]
    assert (b["held"], b["position"], b["demand_30d"]) == (2, 3, 10)
    c = rows["WH-C"]
    assert (c["has_policy"], c["reorder_point"], c["forecast_method"]) == (False, None, None)

    hidden = await svc.http.get("/suppliers/ACME/inventory", headers=supplier("OTHER"))
    assert (hidden.status_code, hidden.json()["code"]) == (404, "not_found")
    staff = await svc.http.get("/suppliers/OTHER/inventory", headers=COORD)
    assert [row["sku"] for row in staff.json()["items"]] == ["MUG"]


async def _propose(svc: RunningService, headers: dict[str, str], **body: Any) -> Any:
    return await svc.http.post(
        "/suppliers/ACME/proposals",
        json={"sku": "TEA", "warehouse_id": "WH-A", **body},
        headers={**headers, **key()},
    )


async def test_a_supplier_proposes_within_the_policy(svc: RunningService, bus: Bus) -> None:
    """Policy: reorder point and target 81 (see test_signals); position 100 - 60 = 40."""
    await tea_setup(svc)
    await put_policy(svc, "TEA", "WH-A", service_level=0.95, horizon_days=10, min_qty=81)
    await add_item(svc, "ACME", "CUP")
    await publish_confirmed(bus, "o-1", ("TEA", "WH-A", 50))
    await publish_inventory(bus, inventory("TEA", "WH-A", on_hand=200, reserved=60))
    await settled(svc, 2)
    assert await signals_of(svc, "ACME") == []  # position 140: nothing needed

    r = await _propose(svc, ACME, quantity=12)
    assert (r.status_code, r.json()["code"]) == (422, "not_needed")
    await publish_inventory(bus, inventory("TEA", "WH-A", on_hand=100, reserved=60))
    await settled(svc, 3)
    [policy_signal] = await signals_of(svc, "ACME")  # continuous: raised on its own
    [po] = (await svc.http.get("/purchase-orders", headers=COORD)).json()["items"]
    assert (po["signal_id"], po["status"]) == (policy_signal["id"], "pending_approval")
    cancel = await svc.http.post(
        f"/purchase-orders/{po['id']}/cancel", json={"reason": "ACME proposes"}, headers=COORD
    )
    assert cancel.status_code == 200, cancel.text

    # Allowed: 81 - 40 = 41, in packs of 12: 48. 49 would be 60.
    too_much = await _propose(svc, ACME, quantity=49)
    assert (too_much.status_code, too_much.json()["code"]) == (422, "quantity_exceeds_policy")
    for body, code in (
        ({"sku": "CUP"}, "no_policy"),
        ({"sku": "MUG"}, "not_supplied"),
    ):
        wrong = await _propose(svc, ACME, quantity=12, **body)
        assert (wrong.status_code, wrong.json()["code"]) == (422, code)
    coordinator = await _propose(svc, COORD, quantity=12)
    assert coordinator.status_code == 403
    missing_key = await svc.http.post(
        "/suppliers/ACME/proposals",
        json={"sku": "TEA", "warehouse_id": "WH-A", "quantity": 12},
        headers=ACME,
    )
    assert (missing_key.status_code, missing_key.json()["code"]) == (400, "idempotency_key_missing")
    await create_supplier(svc, "OTHER")
    elsewhere = await _propose(svc, supplier("OTHER"), quantity=12)
    assert elsewhere.status_code == 404

    headers = {**ACME, "Idempotency-Key": "acme-proposal-1"}
    body = {"sku": "TEA", "warehouse_id": "WH-A", "quantity": 13, "note": "truck has room"}
    made = await svc.http.post("/suppliers/ACME/proposals", json=body, headers=headers)
    assert made.status_code == 201, made.text
    signal = made.json()
    assert (signal["origin"], signal["status"], signal["quantity"], signal["note"]) == (
        "supplier",
        "ordered",
        24,
        "truck has room",
    )
    assert signal["raised_by"] == "ACME"
    replay = await svc.http.post("/suppliers/ACME/proposals", json=body, headers=headers)
    assert (replay.status_code, replay.json()["id"]) == (201, signal["id"])
    assert replay.headers["Idempotent-Replayed"] == "true"
    # Its PO (24, waiting for approval) is on order now: position 64, at most 17 -> 24 more.
    second = await _propose(svc, ACME, quantity=25)
    assert (second.status_code, second.json()["code"]) == (422, "quantity_exceeds_policy")
    assert [s["id"] for s in await signals_of(svc, "ACME", status="ordered")] == [
        signal["id"],
        policy_signal["id"],
    ]
