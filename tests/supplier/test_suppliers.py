"""Supplier master data through the routes: suppliers, items and replenishment policies,
their validation problems, idempotent creation, and who may see what."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.harness import RunningService, Stack, auth, create_service_app, settings_class
from tests.supplier.helpers import (
    COORD,
    add_item,
    create_supplier,
    key,
    put_policy,
    supplier,
)


@pytest.fixture
async def svc(stack: Stack) -> RunningService:
    return await stack.start("supplier")


async def test_a_supplier_is_created_read_changed_and_its_secret_rotated(
    svc: RunningService,
) -> None:
    created = await create_supplier(
        svc,
        "ACME_tea-1",
        contacts=[
            {"name": "Ann", "email": "ann@acme.example", "phone": "+44 20 1234", "role": "sales"}
        ],
        webhook_url="https://acme.example/hooks",
    )
    assert re.fullmatch(r"[0-9a-f]{64}", created["webhook_secret"])
    assert (created["version"], created["active"]) == (1, True)

    r = await svc.http.get("/suppliers/ACME_tea-1", headers=COORD)
    assert r.status_code == 200, r.text
    shown = r.json()
    assert "webhook_secret" not in shown
    assert shown["contacts"] == [
        {"name": "Ann", "email": "ann@acme.example", "phone": "+44 20 1234", "role": "sales"}
    ]

    r = await svc.http.patch(
        "/suppliers/ACME_tea-1", json={"name": "Acme Tea", "webhook_url": None}, headers=COORD
    )
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["webhook_url"], r.json()["version"]) == (
        "Acme Tea",
        None,
        2,
    )
    rotated = await svc.http.post("/suppliers/ACME_tea-1/webhook-secret", headers=COORD)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["webhook_secret"] != created["webhook_secret"]
    # The supplier may rotate its own secret too.
    own = await svc.http.post(
        "/suppliers/ACME_tea-1/webhook-secret", headers=supplier("ACME_tea-1")
    )
    assert own.status_code == 200, own.text

    listed = await svc.http.get("/suppliers", params={"limit": 1}, headers=COORD)
    assert [s["id"] for s in listed.json()["items"]] == ["ACME_tea-1"]


async def test_creation_replays_under_the_same_key(svc: RunningService) -> None:
    headers = {**COORD, "Idempotency-Key": "create-acme"}
    first = await svc.http.post("/suppliers", json={"id": "ACME", "name": "Acme"}, headers=headers)
    again = await svc.http.post("/suppliers", json={"id": "ACME", "name": "Acme"}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    other = await svc.http.post("/suppliers", json={"id": "ACME", "name": "B"}, headers=headers)
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    taken = await svc.http.post(
        "/suppliers", json={"id": "ACME", "name": "Acme"}, headers={**COORD, **key()}
    )
    assert (taken.status_code, taken.json()["code"]) == (409, "supplier_exists")


async def _problem(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


@pytest.mark.parametrize("bad_id", ["a.b", "a b", "x" * 65, "", "acme>"])
async def test_a_supplier_id_fits_a_nats_subject(svc: RunningService, bad_id: str) -> None:
    r = await svc.http.post(
        "/suppliers", json={"id": bad_id, "name": "X"}, headers={**COORD, **key()}
    )
    await _problem(r, 422, "validation_error")


async def test_validation_problems(svc: RunningService) -> None:
    await create_supplier(svc, "ACME")
    missing_key = await svc.http.post("/suppliers", json={"id": "B", "name": "B"}, headers=COORD)
    await _problem(missing_key, 400, "idempotency_key_missing")
    ftp = await svc.http.post(
        "/suppliers",
        json={"id": "B", "name": "B", "webhook_url": "ftp://b.example/x"},
        headers={**COORD, **key()},
    )
    await _problem(ftp, 422, "validation_error")

    item = {"sku": "TEA", "unit_cost": "1.50", "lead_time_days": 3}
    for bad in ({"moq": 0}, {"pack_multiple": 0}, {"lead_time_days": -1}, {"moq": True}):
        r = await svc.http.post(
            "/suppliers/ACME/items", json={**item, **bad}, headers={**COORD, **key()}
        )
        await _problem(r, 422, "validation_error")
    unknown = await svc.http.post("/suppliers/NOPE/items", json=item, headers={**COORD, **key()})
    await _problem(unknown, 404, "not_found")
    await _problem(await svc.http.get("/suppliers/NOPE", headers=COORD), 404, "not_found")
    await _problem(await svc.http.get("/suppliers/NOPE/items", headers=COORD), 404, "not_found")
    dates = await svc.http.post(
        "/suppliers/ACME/items",
        json={**item, "effective_from": "2026-03-01", "effective_to": "2026-02-01"},
        headers={**COORD, **key()},
    )
    await _problem(dates, 422, "invalid_dates")
    made = await add_item(svc, "ACME", "TEA", effective_from="2026-01-01")
    again = await svc.http.post(
        "/suppliers/ACME/items",
        json={**item, "effective_from": "2026-01-01"},
        headers={**COORD, **key()},
    )
    await _problem(again, 409, "item_exists")
    patched = await svc.http.patch(
        f"/supplier-items/{made['id']}", json={"effective_to": "2025-12-31"}, headers=COORD
    )
    await _problem(patched, 422, "invalid_dates")
    patched = await svc.http.patch(
        f"/supplier-items/{made['id']}", json={"moq": 24, "lead_time_sd_days": 1.5}, headers=COORD
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["moq"], patched.json()["lead_time_sd_days"]) == (24, 1.5)

    policy = "/replenishment-policies/TEA/WH-A"
    for bad in (
        {"service_level": 1.0},
        {"service_level": 0.5},
        {"review_mode": "periodic"},
        {"horizon_days": 0},
    ):
        await _problem(await svc.http.put(policy, json=bad, headers=COORD), 422, "validation_error")
    bounds = await svc.http.put(policy, json={"min_qty": 10, "max_qty": 5}, headers=COORD)
    await _problem(bounds, 422, "invalid_bounds")
    bad_sku = await svc.http.put("/replenishment-policies/tea/WH-A", json={}, headers=COORD)
    await _problem(bad_sku, 422, "validation_error")
    await _problem(await svc.http.get(policy, headers=COORD), 404, "not_found")


async def test_policies_are_created_replaced_and_listed(svc: RunningService) -> None:
    made = await put_policy(svc, "TEA", "WH-A")
    assert (made["review_mode"], made["service_level"], made["horizon_days"]) == (
        "continuous",
        0.95,
        365,
    )
    assert (made["ack_timeout_hours"], made["holding_rate"], made["version"]) == (48, 0.25, 1)
    replaced = await put_policy(
        svc,
        "TEA",
        "WH-A",
        review_mode="periodic",
        review_period_days=7,
        min_qty=5,
        max_qty=50,
        auto_approve_limit="500.00",
    )
    assert (replaced["review_mode"], replaced["version"], replaced["auto_approve_limit"]) == (
        "periodic",
        2,
        "500.00",
    )
    await put_policy(svc, "TEA", "WH-B")
    page = await svc.http.get(
        "/replenishment-policies", params={"limit": 1, "sku": "TEA"}, headers=COORD
    )
    assert [p["warehouse_id"] for p in page.json()["items"]] == ["WH-A"]
    rest = await svc.http.get(
        "/replenishment-policies",
        params={"limit": 1, "sku": "TEA", "cursor": page.json()["next_cursor"]},
        headers=COORD,
    )
    assert [p["warehouse_id"] for p in rest.json()["items"]] == ["WH-B"]
    periodic = await svc.http.get(
        "/replenishment-policies", params={"review_mode": "periodic"}, headers=COORD
    )
    assert [p["warehouse_id"] for p in periodic.json()["items"]] == ["WH-A"]
    bad = await svc.http.get("/replenishment-policies", params={"cursor": "nope"}, headers=COORD)
    await _problem(bad, 400, "invalid_cursor")


async def test_a_supplier_sees_only_its_own(svc: RunningService) -> None:
    await create_supplier(svc, "A")
    await create_supplier(svc, "B")
    item = await add_item(svc, "A", "TEA")
    alice, bob = supplier("A"), supplier("B")

    assert (await svc.http.get("/suppliers/A", headers=alice)).status_code == 200
    assert (await svc.http.get("/suppliers/A/items", headers=alice)).json()["items"][0][
        "id"
    ] == item["id"]
    assert (await svc.http.get(f"/supplier-items/{item['id']}", headers=alice)).status_code == 200
    listed = await svc.http.get("/suppliers", headers=bob)
    assert [s["id"] for s in listed.json()["items"]] == ["B"]
    for path in (
        "/suppliers/A",
        "/suppliers/A/items",
        f"/supplier-items/{item['id']}",
        "/suppliers/A/signals",
        "/suppliers/A/inventory",
        "/suppliers/A/webhook-deliveries",
    ):
        await _problem(await svc.http.get(path, headers=bob), 404, "not_found")
    await _problem(
        await svc.http.post("/suppliers/A/webhook-secret", headers=bob), 404, "not_found"
    )
    # Master data and policies are the coordinators'.
    await _problem(
        await svc.http.post("/suppliers", json={"id": "C", "name": "C"}, headers={**bob, **key()}),
        403,
        "forbidden",
    )
    await _problem(
        await svc.http.patch("/suppliers/B", json={"name": "Bee"}, headers=bob), 403, "forbidden"
    )
    await _problem(await svc.http.get("/replenishment-policies", headers=bob), 403, "forbidden")
    customer = auth("customer", customer_id="c1")
    await _problem(await svc.http.get("/suppliers/A", headers=customer), 403, "forbidden")


def test_every_link_names_an_operation_of_the_document() -> None:
    """The item links are stated by hand (`suppliers_api.ITEM_LINKS`): a renamed route
    must not leave them pointing nowhere."""
    doc = create_service_app("supplier", settings_class("supplier")(jwt_secret="x")).openapi()
    operations = {op["operationId"] for item in doc["paths"].values() for op in item.values()}
    links = [
        link["operationId"]
        for item in doc["paths"].values()
        for op in item.values()
        for answer in op["responses"].values()
        for link in answer.get("links", {}).values()
    ]
    assert "get_item_supplier_items__item_id__get" in links
    assert set(links) <= operations
