"""Idempotency-Key on creating POSTs: missing, replay, reuse with another body, races."""

from __future__ import annotations

import asyncio
import time

import jwt

from services.common.auth import SUBJECT_MAX_LENGTH
from tests.harness import JWT_SECRET, Stack, auth, token


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


async def test_a_retry_with_a_refreshed_token_replays(stack: Stack) -> None:
    """The same user retrying with a new token (another expiry, so another token) gets the
    first answer back instead of a second creation; so does a default staff token."""
    order = await stack.start("order")
    for claims in ({"subject": "alice"}, {}):
        first, refreshed = (token("ops", ttl_seconds=ttl, **claims) for ttl in (60, 120))
        assert first != refreshed
        key = {"Idempotency-Key": f"refresh-{bool(claims)}"}
        a = await order.http.post(
            "/diagnostics/pings", json={"message": "x"}, headers={**bearer(first), **key}
        )
        b = await order.http.post(
            "/diagnostics/pings", json={"message": "x"}, headers={**bearer(refreshed), **key}
        )
        assert a.status_code == b.status_code == 202, b.text
        assert b.json()["id"] == a.json()["id"], claims
        assert b.headers["idempotent-replayed"] == "true"


async def test_one_subject_in_two_roles_is_two_callers(stack: Stack) -> None:
    """The stored answer belongs to subject + role (+ tenant): another role with the same
    subject, key and body gets its own creation, never the first caller's answer."""
    order = await stack.start("order")
    headers = {"Idempotency-Key": "shared"}
    ops = await order.http.post(
        "/diagnostics/pings",
        json={"message": "x"},
        headers={**auth("ops", subject="alice"), **headers},
    )
    coordinator = await order.http.post(
        "/diagnostics/pings",
        json={"message": "x"},
        headers={**auth("coordinator", subject="alice"), **headers},
    )
    assert ops.status_code == coordinator.status_code == 202, coordinator.text
    assert coordinator.json()["id"] != ops.json()["id"]
    assert "idempotent-replayed" not in coordinator.headers


async def test_the_longest_subject_still_fits_the_scope(stack: Stack) -> None:
    """The scope stores a fixed-length digest of the caller, so a subject of the longest
    allowed length is no 500 (on PostgreSQL the scope column is 128 characters); a longer
    subject is an invalid token."""
    order = await stack.start("order")
    headers = {**auth("ops", subject="u" * SUBJECT_MAX_LENGTH), "Idempotency-Key": "long"}
    first = await order.http.post("/diagnostics/pings", json={"message": "x"}, headers=headers)
    again = await order.http.post("/diagnostics/pings", json={"message": "x"}, headers=headers)
    assert first.status_code == again.status_code == 202, first.text
    assert again.json()["id"] == first.json()["id"]

    claims = {"sub": "u" * (SUBJECT_MAX_LENGTH + 1), "role": "ops", "exp": time.time() + 60}
    forged = jwt.encode({**claims, "iss": "waybill"}, JWT_SECRET, algorithm="HS256")
    r = await order.http.get("/ops/messaging", headers=bearer(forged))
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}
