"""Catalogue and warehouses: GTIN check digits, SKU create/read/list/patch, replays, roles."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import pytest

from services.order.gtin import check_digit, to_gtin14, validate_gtin
from tests.harness import RunningService, Stack, auth

COORDINATOR = auth("coordinator", subject="carla")


def created(key: str | None = None) -> dict[str, str]:
    return {**COORDINATOR, "Idempotency-Key": key or uuid.uuid4().hex}


def sku_body(code: str = "TEA-GREEN-100", **fields: Any) -> dict[str, Any]:
    return {
        "code": code,
        "gtin": "4006381333931",
        "name": "Green tea 100 g",
        "unit_price": "4.90",
        "weight_grams": 120,
        **fields,
    }


# --- GTIN ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gtin", "digit"),
    [
        ("4006381333931", 1),  # GTIN-13 (EAN-13)
        ("5901234123457", 7),  # GTIN-13, the GS1 example
        ("10012345678902", 2),  # GTIN-14 (shipping container)
        ("00614141999996", 6),  # GTIN-14, the GS1 example
    ],
)
def test_valid_gtins(gtin: str, digit: int) -> None:
    """Well-formed GTIN-13/14 pass; the check digit is the GS1 mod-10 of the body."""
    assert check_digit(gtin[:-1]) == digit
    assert validate_gtin(gtin) == gtin
    assert len(to_gtin14(gtin)) == 14 and to_gtin14(gtin).endswith(gtin)


@pytest.mark.parametrize("gtin", ["4006381333932", "4006381333930", "10012345678901"])
def test_wrong_check_digit_is_refused(gtin: str) -> None:
    with pytest.raises(ValueError, match="wrong check digit"):
        validate_gtin(gtin)


@pytest.mark.parametrize("gtin", ["400638133393", "400638133393100", "4006381", ""])
def test_wrong_length_is_refused(gtin: str) -> None:
    with pytest.raises(ValueError, match=r"13 or 14 digits|digits only"):
        validate_gtin(gtin)


FULL_WIDTH = "".join(chr(0xFF10 + int(d)) for d in "4006381333931")


@pytest.mark.parametrize("gtin", ["40063813339X1", "4006381 33931", FULL_WIDTH])
def test_non_digits_are_refused(gtin: str) -> None:
    with pytest.raises(ValueError, match="digits only"):
        validate_gtin(gtin)


# --- SKUs ------------------------------------------------------------------------------


async def test_create_and_read_sku(stack: Stack) -> None:
    """A coordinator creates a SKU; any role reads it back, price as a two-decimal string."""
    order = await stack.start("order")
    r = await order.http.post(
        "/catalogue/skus", json=sku_body(unit_price="4.9", shelf_life=True), headers=created()
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["code"] == "TEA-GREEN-100"
    assert body["gtin"] == "4006381333931"
    assert body["unit_price"] == "4.90"
    assert body["currency"] == "EUR"
    assert body["shelf_life"] is True
    for role in (auth("customer", customer_id="c1"), auth("supplier", supplier_id="s1")):
        got = await order.http.get("/catalogue/skus/TEA-GREEN-100", headers=role)
        assert got.status_code == 200
        assert got.json() == body
    missing = await order.http.get("/catalogue/skus/NOPE", headers=auth("ops"))
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"


async def test_wrong_gtin_check_digit_is_422_problem(stack: Stack) -> None:
    order = await stack.start("order")
    r = await order.http.post(
        "/catalogue/skus", json=sku_body(gtin="4006381333932"), headers=created()
    )
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["code"] == "validation_error"
    [error] = problem["errors"]
    assert error["loc"][-1] == "gtin"
    assert "wrong check digit: expected 1, got 2" in error["msg"]
    short = await order.http.post(
        "/catalogue/skus", json=sku_body(gtin="400638133393"), headers=created()
    )
    assert short.status_code == 422
    [short_error] = short.json()["errors"]  # the documented pattern says 13 or 14 digits
    assert short_error["loc"][-1] == "gtin" and short_error["type"] == "string_pattern_mismatch"
    number = await order.http.post(
        "/catalogue/skus", json=sku_body(gtin=4006381333931), headers=created()
    )
    assert number.status_code == 422  # a GTIN is text: leading zeros matter


@pytest.mark.parametrize(
    "fields",
    [
        {"code": "tea-green"},  # lower case
        {"code": "X"},  # too short
        {"code": "-TEA"},  # must start with a letter or digit
        {"code": "T" * 65},
        {"unit_price": "-0.01"},
        {"unit_price": "1.005"},  # sub-cent
        {"unit_price": "1000000000000.00"},  # beyond Numeric(14,2)
        {"weight_grams": 0},
        {"currency": "eur"},
        {"name": ""},
        {"colour": "green"},  # unknown field
    ],
)
async def test_invalid_sku_is_422(stack: Stack, fields: dict[str, Any]) -> None:
    order = await stack.start("order")
    r = await order.http.post("/catalogue/skus", json=sku_body(**fields), headers=created())
    assert r.status_code == 422, r.text
    listed = await order.http.get("/catalogue/skus", headers=COORDINATOR)
    assert listed.json()["items"] == []


async def test_duplicate_code_or_gtin_is_409(stack: Stack) -> None:
    """The code is unique, and so is the item behind a GTIN (13- and 14-digit forms)."""
    order = await stack.start("order")
    assert (await order.http.post("/catalogue/skus", json=sku_body(), headers=created())).is_success
    again = await order.http.post(
        "/catalogue/skus", json=sku_body(name="other", gtin=None), headers=created()
    )
    assert again.status_code == 409
    assert again.json()["code"] == "sku_exists"
    same_item = await order.http.post(
        "/catalogue/skus", json=sku_body(code="TEA-2", gtin="04006381333931"), headers=created()
    )
    assert same_item.status_code == 409
    assert same_item.json()["code"] == "gtin_exists"
    no_gtin = await order.http.post(
        "/catalogue/skus", json=sku_body(code="TEA-3", gtin=None), headers=created()
    )
    assert no_gtin.status_code == 201
    assert no_gtin.json()["gtin"] is None


async def test_concurrent_creates_of_one_code_make_one_sku(stack: Stack) -> None:
    """Ten coordinators race to create the same code with different keys: one wins."""
    order = await stack.start("order")
    answers = await asyncio.gather(
        *(
            order.http.post("/catalogue/skus", json=sku_body(gtin=None), headers=created())
            for _ in range(10)
        )
    )
    assert sorted(r.status_code for r in answers) == [201] + [409] * 9
    listed = await order.http.get("/catalogue/skus", headers=COORDINATOR)
    assert [s["code"] for s in listed.json()["items"]] == ["TEA-GREEN-100"]


async def test_create_sku_replays_and_needs_a_key(stack: Stack) -> None:
    order = await stack.start("order")
    headers = created("sku-1")
    first = await order.http.post("/catalogue/skus", json=sku_body(), headers=headers)
    again = await order.http.post("/catalogue/skus", json=sku_body(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = await order.http.post("/catalogue/skus", json=sku_body(name="x"), headers=headers)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    keyless = await order.http.post(
        "/catalogue/skus", json=sku_body(code="TEA-9"), headers=COORDINATOR
    )
    assert keyless.status_code == 400
    assert keyless.json()["code"] == "idempotency_key_missing"


async def test_only_coordinators_change_the_catalogue(stack: Stack) -> None:
    order = await stack.start("order")
    for role in ("ops", "service", "customer"):
        claims = {"customer_id": "c1"} if role == "customer" else {}
        r = await order.http.post(
            "/catalogue/skus",
            json=sku_body(),
            headers={**auth(role, **claims), "Idempotency-Key": "k"},
        )
        assert r.status_code == 403, role
    assert (await order.http.get("/catalogue/skus")).status_code == 401


async def create_skus(order: RunningService, codes: list[str]) -> None:
    for code in codes:
        r = await order.http.post(
            "/catalogue/skus", json=sku_body(code=code, gtin=None), headers=created()
        )
        assert r.status_code == 201, r.text


async def test_list_is_keyset_paginated(stack: Stack) -> None:
    """Pages follow the code order; the last page has no cursor; nothing repeats."""
    order = await stack.start("order")
    codes = ["B-2", "A-1", "C-3", "E-5", "D-4"]
    await create_skus(order, codes)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        r = await order.http.get(
            "/catalogue/skus", params=params, headers=auth("customer", customer_id="c1")
        )
        assert r.status_code == 200
        page = r.json()
        pages += 1
        seen += [s["code"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(codes)
    assert pages == 3
    bad = await order.http.get("/catalogue/skus", params={"cursor": "%%%"}, headers=COORDINATOR)
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_cursor"
    too_big = await order.http.get("/catalogue/skus", params={"limit": 1000}, headers=COORDINATOR)
    assert too_big.status_code == 422


async def test_patch_changes_name_price_weight_only(stack: Stack) -> None:
    order = await stack.start("order")
    await create_skus(order, ["TEA-1"])
    r = await order.http.patch(
        "/catalogue/skus/TEA-1",
        json={"name": "Green tea, loose", "unit_price": "5.5", "weight_grams": 110},
        headers=COORDINATOR,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["name"], body["unit_price"], body["weight_grams"]) == (
        "Green tea, loose",
        "5.50",
        110,
    )
    assert datetime.fromisoformat(body["updated_at"]) > datetime.fromisoformat(body["created_at"])
    got = (await order.http.get("/catalogue/skus/TEA-1", headers=COORDINATOR)).json()
    assert got == body
    price_only = await order.http.patch(
        "/catalogue/skus/TEA-1", json={"unit_price": "0"}, headers=COORDINATOR
    )
    assert price_only.json()["unit_price"] == "0.00"
    assert price_only.json()["name"] == "Green tea, loose"
    for bad in ({"code": "TEA-2"}, {"shelf_life": True}, {}, {"name": None}, {"weight_grams": -1}):
        r = await order.http.patch("/catalogue/skus/TEA-1", json=bad, headers=COORDINATOR)
        assert r.status_code == 422, bad
    missing = await order.http.patch(
        "/catalogue/skus/NOPE", json={"name": "x"}, headers=COORDINATOR
    )
    assert missing.status_code == 404
    ops = await order.http.patch("/catalogue/skus/TEA-1", json={"name": "x"}, headers=auth("ops"))
    assert ops.status_code == 403


# --- warehouses ------------------------------------------------------------------------


async def test_warehouses(stack: Stack) -> None:
    """Create (idempotent, 409 on a taken id), read, list, deactivate; staff-only reads."""
    order = await stack.start("order")
    body = {"id": "WH-NORTH", "name": "North", "country": "DE"}
    headers = created("wh-1")
    first = await order.http.post("/warehouses", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert first.json()["active"] is True
    replay = await order.http.post("/warehouses", json=body, headers=headers)
    assert replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    taken = await order.http.post("/warehouses", json=body, headers=created())
    assert taken.status_code == 409
    assert taken.json()["code"] == "warehouse_exists"
    for bad in (
        {**body, "id": "wh-south"},
        {**body, "id": "WH SOUTH"},
        {**body, "id": "WH-S", "country": "Germany"},
    ):
        assert (
            await order.http.post("/warehouses", json=bad, headers=created())
        ).status_code == 422
    south = {"id": "WH-SOUTH", "name": "South", "country": "AT", "active": False}
    assert (await order.http.post("/warehouses", json=south, headers=created())).is_success

    listed = await order.http.get("/warehouses", headers=auth("ops"))
    assert [w["id"] for w in listed.json()] == ["WH-NORTH", "WH-SOUTH"]
    active = await order.http.get("/warehouses", params={"active": True}, headers=auth("service"))
    assert [w["id"] for w in active.json()] == ["WH-NORTH"]
    one = await order.http.get("/warehouses/WH-SOUTH", headers=COORDINATOR)
    assert one.json()["country"] == "AT"
    assert (await order.http.get("/warehouses/WH-X", headers=COORDINATOR)).status_code == 404

    patched = await order.http.patch(
        "/warehouses/WH-SOUTH", json={"active": True, "name": "South hub"}, headers=COORDINATOR
    )
    assert patched.status_code == 200
    assert (patched.json()["active"], patched.json()["name"]) == (True, "South hub")

    customer = auth("customer", customer_id="c1")
    assert (await order.http.get("/warehouses", headers=customer)).status_code == 403
    ops_create = await order.http.post(
        "/warehouses", json=body, headers={**auth("ops"), "Idempotency-Key": "x"}
    )
    assert ops_create.status_code == 403
