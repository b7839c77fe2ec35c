"""Idempotency-Key on creating POSTs: missing, replay, reuse with another body, races."""

from __future__ import annotations

import asyncio

from tests.harness import Stack, auth


async def test_missing_key_is_400(stack: Stack) -> None:
    order = await stack.start("order")
    r = await order.http.post("/diagnostics/pings", json={"message": "x"}, headers=auth("ops"))
    assert r.status_code == 400
    assert r.json()["code"] == "idempotency_key_missing"


async def test_same_key_same_body_returns_the_first_response(stack: Stack) -> None:
    order = await stack.start("order")
    headers = {**auth("ops", subject="alice"), "Idempotency-Key": "same"}
    first = await order.http.post("/diagnostics/pings", json={"message": "x"}, headers=headers)
    again = await order.http.post("/diagnostics/pings", json={"message": "x"}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"


async def test_same_key_other_body_is_422(stack: Stack) -> None:
    order = await stack.start("order")
    headers = {**auth("ops", subject="alice"), "Idempotency-Key": "k"}
    await order.http.post("/diagnostics/pings", json={"message": "x"}, headers=headers)
    r = await order.http.post("/diagnostics/pings", json={"message": "y"}, headers=headers)
    assert r.status_code == 422
    assert r.json()["code"] == "idempotency_key_reused"


async def test_keys_are_scoped_per_caller(stack: Stack) -> None:
    """Two callers using the same key create two objects."""
    order = await stack.start("order")
    a = await order.http.post(
        "/diagnostics/pings",
        json={"message": "x"},
        headers={**auth("ops", subject="alice"), "Idempotency-Key": "k"},
    )
    b = await order.http.post(
        "/diagnostics/pings",
        json={"message": "x"},
        headers={**auth("ops", subject="bob"), "Idempotency-Key": "k"},
    )
    assert a.json()["id"] != b.json()["id"]


async def test_concurrent_retries_create_one_object(stack: Stack) -> None:
    """Twenty simultaneous retries with one key: one ping, one event, twenty equal answers."""
    order = await stack.start("order", relay_enabled=False)
    headers = {**auth("ops", subject="alice"), "Idempotency-Key": "race"}
    answers = await asyncio.gather(
        *(
            order.http.post("/diagnostics/pings", json={"message": "x"}, headers=headers)
            for _ in range(20)
        )
    )
    assert {r.status_code for r in answers} == {202}
    assert len({r.json()["id"] for r in answers}) == 1
    status = await order.http.get("/ops/messaging", headers=auth("ops"))
    assert status.json()["outbox"]["pending"] == 1
