"""Helpers for the customer service tests: a running service, creating customers, events."""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any

import pytest
from nats.js.errors import NotFoundError

from services.common.bus import Bus
from services.common.envelope import Envelope
from services.common.events import OrderCancelled, OrderLineRef, OrderPlaced
from tests.harness import RunningService, Stack, auth, eventually

_keys = itertools.count()


@pytest.fixture
async def customer_svc(stack: Stack) -> RunningService:
    return await stack.start("customer")


def body(name: str = "Acme Logistics", **fields: Any) -> dict[str, Any]:
    return {"name": name, "kind": "b2b", **fields}


async def create(svc: RunningService, payload: dict[str, Any], **headers: str) -> dict[str, Any]:
    """Create a customer as a coordinator; fails the test unless it is a 201."""
    r = await svc.http.post(
        "/customers",
        json=payload,
        headers={**auth("coordinator"), "Idempotency-Key": f"key-{next(_keys)}", **headers},
    )
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def credit(svc: RunningService, customer_id: str) -> dict[str, Any]:
    r = await svc.http.get(f"/customers/{customer_id}/credit", headers=auth("ops"))
    assert r.status_code == 200, r.text
    status: dict[str, Any] = r.json()
    return status


async def stream_events(bus: Bus, stream: str, subject: str | None = None) -> list[Envelope]:
    """Every envelope stored on `stream` (optionally only one subject), oldest first."""
    try:
        info = await bus.js.stream_info(stream)
    except NotFoundError:
        return []
    out: list[Envelope] = []
    if not info.state.messages:
        return out
    for seq in range(max(info.state.first_seq, 1), info.state.last_seq + 1):
        try:
            msg = await bus.js.get_msg(stream, seq)
        except NotFoundError:
            continue
        if subject is None or msg.subject == subject:
            out.append(Envelope.model_validate(json.loads(msg.data or b"{}")))
    return out


def placed(order: str, customer_id: str, total: str) -> OrderPlaced:
    """An OrderPlaced event as the order service publishes it."""
    return OrderPlaced(
        order_id=order,
        customer_id=customer_id,
        lines=[OrderLineRef(line_no=1, sku="SKU-1", quantity=1, unit_price=total)],
        total=total,
        currency="EUR",
    )


def cancelled(order: str, customer_id: str, total: str) -> OrderCancelled:
    return OrderCancelled(order_id=order, customer_id=customer_id, total=total, reason="test")


async def publish(bus: Bus, event: Any, subject: str, msg_id: str | None = None) -> Envelope:
    """Publish `event` about entity `subject` to its domain's stream, as a service would."""
    envelope = Envelope.new(
        source="/tests", type=event.TYPE, subject=subject, data=event.model_dump(mode="json")
    )
    await bus.publish(
        envelope.nats_subject, envelope.model_dump_json().encode(), msg_id or envelope.id
    )
    return envelope


async def republish(bus: Bus, envelope: Envelope) -> None:
    """The same event again, under a message id the stream does not deduplicate."""
    await bus.publish(
        envelope.nats_subject, envelope.model_dump_json().encode(), f"copy-{uuid.uuid4()}"
    )


async def settled(svc: RunningService, processed: int) -> None:
    """Wait until the exposure consumer has processed `processed` distinct events and has
    nothing pending or unacknowledged."""

    async def check() -> bool:
        status = (await svc.http.get("/ops/messaging", headers=auth("ops"))).json()
        consumer = next(c for c in status["consumers"] if c["name"] == "customer-exposure")
        return (
            status["inbox"].get("customer-exposure", 0) == processed
            and consumer.get("pending") == 0
            and consumer.get("ack_pending") == 0
        )

    await eventually(check, message=f"{processed} order events processed")
