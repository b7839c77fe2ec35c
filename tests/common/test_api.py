"""Every service: health, readiness, auth (401/403) and errors as problem details."""

from __future__ import annotations

import asyncio
import time
import uuid

import jwt
import pytest
from nats.js.errors import NotFoundError

from services.common.auth import issue_token
from services.common.bus import Bus
from services.common.envelope import Envelope
from tests.harness import JWT_SECRET, SERVICES, Stack, auth, eventually

PROBLEM = "application/problem+json"


@pytest.fixture
async def services(stack: Stack) -> Stack:
    for service in SERVICES:
        await stack.start(service)
    return stack


async def test_every_service_is_ready(services: Stack) -> None:
    """/healthz and /readyz answer 200 on all five services, with their checks."""
    for name, svc in services.services.items():
        assert (await svc.http.get("/healthz")).json() == {"status": "ok", "service": name}
        ready = await svc.http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "nats": "ok"}


async def test_unauthenticated_is_401_problem(services: Stack) -> None:
    """No bearer token: 401 with a problem body and a WWW-Authenticate challenge."""
    for svc in services.services.values():
        r = await svc.http.get("/ops/messaging")
        assert r.status_code == 401
        assert r.headers["content-type"] == PROBLEM
        assert r.headers["www-authenticate"].startswith("Bearer")
        body = r.json()
        assert body["code"] == "unauthenticated"
        assert body["type"].endswith("/unauthenticated")
        assert body["status"] == 401 and body["instance"] == "/ops/messaging"


async def test_bad_token_is_401(services: Stack) -> None:
    """A token signed with another secret, or garbage, is refused."""
    svc = services.services["order"]
    forged = issue_token("not-the-secret-" + "x" * 32, "ops")
    for value in (forged, "garbage"):
        r = await svc.http.get("/ops/messaging", headers={"Authorization": f"Bearer {value}"})
        assert r.status_code == 401
        assert r.json()["code"] == "invalid_token"


async def test_a_token_accepted_before_is_refused_once_expired(stack: Stack) -> None:
    """Verified tokens are remembered only until they expire; a token signed with another
    secret is refused even when the same string was accepted by a service that has it."""
    svc = await stack.start("order")
    short = issue_token(JWT_SECRET, "ops", ttl_seconds=2)  # exp counts from a whole second
    headers = {"Authorization": f"Bearer {short}"}
    assert (await svc.http.get("/ops/messaging", headers=headers)).status_code == 200
    assert (await svc.http.get("/ops/messaging", headers=headers)).status_code == 200
    await asyncio.sleep(max(0.0, jwt_expiry(short) - time.time()) + 0.05)
    r = await svc.http.get("/ops/messaging", headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"
    assert "expired" in r.json()["detail"]

    other = await stack.start("customer", jwt_secret="another-secret-" + "y" * 32)
    valid = issue_token(JWT_SECRET, "ops")
    assert (await svc.http.get("/ops/messaging", headers=auth_with(valid))).status_code == 200
    assert (await other.http.get("/ops/messaging", headers=auth_with(valid))).status_code == 401


def auth_with(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def jwt_expiry(token: str) -> float:
    return float(jwt.decode(token, options={"verify_signature": False})["exp"])


async def test_wrong_role_is_403_problem(services: Stack) -> None:
    """A customer token on an ops endpoint: 403 problem on every service."""
    for svc in services.services.values():
        r = await svc.http.get("/ops/messaging", headers=auth("customer", customer_id="c1"))
        assert r.status_code == 403
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["code"] == "forbidden"


async def test_right_role_sees_messaging_status(services: Stack) -> None:
    for name, svc in services.services.items():
        r = await svc.http.get("/ops/messaging", headers=auth("ops"))
        assert r.status_code == 200
        assert r.json()["service"] == name
        assert r.json()["outbox"]["pending"] == 0


async def test_validation_error_is_422_problem_with_fields(services: Stack) -> None:
    """Bad input: 422 with machine-readable `errors`, and nothing written."""
    svc = services.services["order"]
    r = await svc.http.post(
        "/diagnostics/pings",
        json={"message": ""},
        headers={**auth("ops"), "Idempotency-Key": "v1"},
    )
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "validation_error"
    assert body["errors"][0]["loc"] == ["body", "message"]
    assert "trace_id" in body
    r = await svc.http.get("/ops/messaging", headers=auth("ops"))
    assert r.json()["outbox"]["pending"] == 0


async def test_unknown_route_is_404_problem(services: Stack) -> None:
    r = await services.services["customer"].http.get("/nope")
    assert r.status_code == 404
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["code"] == "not_found"


async def test_openapi_is_served(services: Stack) -> None:
    for svc in services.services.values():
        r = await svc.http.get("/openapi.json")
        assert r.status_code == 200
        assert "/readyz" in r.json()["paths"]


async def test_correlation_id_is_echoed_and_carried_by_the_event(stack: Stack, bus: Bus) -> None:
    """The caller's X-Correlation-ID comes back on the response and rides on the event
    the request staged; without one the service makes one up."""
    svc = await stack.start("order")
    r = await svc.http.post(
        "/diagnostics/pings",
        json={"message": "hi"},
        headers={**auth("ops"), "Idempotency-Key": "k1", "X-Correlation-ID": "ticket-4711"},
    )
    assert r.status_code == 202, r.text
    assert r.headers["x-correlation-id"] == "ticket-4711"

    envelope = await eventually(lambda: last_ping_event(bus), message="ping event on the stream")
    assert envelope.subject == r.json()["id"]
    assert envelope.correlationid == "ticket-4711"

    other = await svc.http.get("/healthz")
    generated = other.headers["x-correlation-id"]
    assert generated and generated != "ticket-4711"
    assert (await svc.http.get("/healthz")).headers["x-correlation-id"] != generated


@pytest.mark.parametrize(
    "unusable",
    ["x" * 129, "ticket 4711", "tick\u00e9t", "a,b", "<script>"],
    ids=["too-long", "space", "non-ascii", "comma", "markup"],
)
async def test_an_unusable_correlation_id_is_replaced(
    stack: Stack, bus: Bus, unusable: str
) -> None:
    """An X-Correlation-ID longer than 128 characters or outside `[A-Za-z0-9._:@/+=-]` is
    ignored: the response and the staged event carry a fresh id instead, so nothing a
    caller sends grows every event of the unit of work."""
    svc = await stack.start("order")
    r = await svc.http.post(
        "/diagnostics/pings",
        json={"message": "hi"},
        headers={
            **auth("ops"),
            "Idempotency-Key": "k1",
            "X-Correlation-ID": unusable.encode(),
        },
    )
    assert r.status_code == 202, r.text
    replaced = r.headers["x-correlation-id"]
    assert replaced != unusable and len(replaced) <= 128
    uuid.UUID(replaced)

    envelope = await eventually(lambda: last_ping_event(bus), message="ping event on the stream")
    assert envelope.correlationid == replaced


async def test_the_longest_correlation_id_is_kept(stack: Stack) -> None:
    """128 characters of the allowed set (a W3C traceparent, say) still pass through."""
    svc = await stack.start("order")
    longest = "00-" + "a" * 32 + "-" + "b" * 16 + "-01:" + "T" * 72
    assert len(longest) == 128
    r = await svc.http.get("/healthz", headers={"X-Correlation-ID": longest})
    assert r.headers["x-correlation-id"] == longest


async def last_ping_event(bus: Bus) -> Envelope | None:
    """The newest `order.ping.requested` envelope on the stream, if any."""
    try:
        msg = await bus.js.get_last_msg("ORDER", "order.ping.requested")
    except NotFoundError:
        return None
    return Envelope.model_validate_json(msg.data or b"")
