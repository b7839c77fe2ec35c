"""Webhook delivery of signals to a real local HTTP server: retried after a 500, signed
so the receiver can verify it, failed (visibly) once too old; and `verify_signature`."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from cli.webhook_receiver import WebhookReceiver as Receiver
from services.common.bus import Bus
from services.supplier.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, sign, verify_signature
from tests.harness import RunningService, Stack, eventually
from tests.supplier.helpers import (
    COORD,
    inventory,
    publish_confirmed,
    publish_inventory,
    settled,
    signals_of,
    supplier,
    tea_setup,
)

BODY = b'{"id":"e1"}'


def test_verify_signature_accepts_ours_and_nothing_else() -> None:
    now = 1_800_000_000
    good = f"t={now},v1={sign('s3cret', BODY, now)}"
    assert verify_signature("s3cret", good, BODY, now)
    assert verify_signature("s3cret", good, BODY, datetime.fromtimestamp(now + 299, UTC))
    assert not verify_signature("other", good, BODY, now)  # wrong secret
    assert not verify_signature("s3cret", good, BODY + b" ", now)  # body changed
    assert not verify_signature("s3cret", good, BODY, now + 301)  # too old: a replay
    assert not verify_signature("s3cret", good, BODY, now - 301)  # from the future
    assert verify_signature("s3cret", good, BODY, now + 500, tolerance=600)
    # While a secret rotates a sender may sign with both: any v1 may match.
    both = f"t={now},v1={sign('old', BODY, now)},v1={sign('s3cret', BODY, now)}"
    assert verify_signature("s3cret", both, BODY, now)
    for broken in (
        "",
        f"v1={sign('s3cret', BODY, now)}",
        f"t={now}",
        f"t=abc,v1={sign('s3cret', BODY, now)}",
        f"t={now},t={now},v1={sign('s3cret', BODY, now)}",
        good + ",v1=" + "0" * 2000,
    ):
        assert not verify_signature("s3cret", broken, BODY, now), broken


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver(failures=1).start()
    yield server
    await server.stop()


@pytest.mark.settings(supplier={"webhook_backoff_seconds": 0.2, "webhook_poll_seconds": 0.2})
async def test_a_signal_is_posted_again_after_a_500_and_its_signature_verifies(
    stack: Stack, bus: Bus, receiver: Receiver
) -> None:
    svc = await stack.start("supplier")
    secret = await _signalled(svc, bus, receiver.url)
    [signal] = await signals_of(svc, "ACME")

    deliveries = await eventually(
        lambda: _deliveries(svc, "delivered"), timeout=30, message="the delivery delivered"
    )
    [delivery] = deliveries
    assert (delivery["signal_id"], delivery["attempts"], delivery["last_status_code"]) == (
        signal["id"],
        2,
        200,
    )
    assert delivery["url"] == receiver.url
    failed, posted = receiver.requests
    assert (failed.answered, posted.answered) == (500, 200)
    assert posted.path == "/hooks/waybill"
    assert posted.headers["content-type"] == "application/json"
    assert posted.headers[EVENT_ID_HEADER.lower()] == failed.headers[EVENT_ID_HEADER.lower()]
    assert posted.headers[EVENT_ID_HEADER.lower()] == delivery["event_id"]
    for request in (failed, posted):
        header = request.headers[SIGNATURE_HEADER.lower()]
        assert verify_signature(secret, header, request.body, time.time())
        assert not verify_signature("not-the-secret", header, request.body, time.time())
    envelope = json.loads(posted.body)
    assert envelope["type"] == "supplier.signal.raised.v1"
    assert (envelope["data"]["signal_id"], envelope["data"]["quantity"]) == (signal["id"], 36)

    # The supplier sees its deliveries; another supplier does not.
    own = await svc.http.get("/suppliers/ACME/webhook-deliveries", headers=supplier("ACME"))
    assert [d["id"] for d in own.json()["items"]] == [delivery["id"]]


@pytest.mark.settings(
    supplier={
        "webhook_backoff_seconds": 0.2,
        "webhook_poll_seconds": 0.2,
        "webhook_max_age_hours": 0.0005,  # 1.8 s
    }
)
async def test_a_delivery_that_never_succeeds_fails_visibly(stack: Stack, bus: Bus) -> None:
    refusing = await Receiver(failures=1_000).start()
    try:
        svc = await stack.start("supplier")
        await _signalled(svc, bus, refusing.url)
        [delivery] = await eventually(
            lambda: _deliveries(svc, "failed"), timeout=30, message="the delivery failed"
        )
        assert delivery["attempts"] >= 2
        assert (delivery["last_status_code"], delivery["next_attempt_at"]) == (500, None)
        assert delivery["last_error"].startswith("HTTP 500")
        assert len(refusing.requests) == delivery["attempts"]
    finally:
        await refusing.stop()


async def _signalled(svc: RunningService, bus: Bus, url: str) -> str:
    """The hand-checked TEA signal of supplier ACME (webhook at `url`); its secret."""
    await tea_setup(svc, webhook_url=url)
    rotated = await svc.http.post("/suppliers/ACME/webhook-secret", headers=COORD)
    secret: str = rotated.json()["webhook_secret"]
    await publish_confirmed(bus, "o-1", ("TEA", "WH-A", 50))
    await settled(svc, 1)
    await publish_inventory(bus, inventory("TEA", "WH-A", on_hand=100, reserved=50))
    await settled(svc, 2)
    return secret


async def _deliveries(svc: RunningService, status: str) -> list[dict[str, object]]:
    r = await svc.http.get(
        "/suppliers/ACME/webhook-deliveries", params={"status": status}, headers=COORD
    )
    assert r.status_code == 200, r.text
    items: list[dict[str, object]] = r.json()["items"]
    return items
