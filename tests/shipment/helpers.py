"""Helpers for the shipment tests: request bodies, signed webhook pushes, event readers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import sqlalchemy as sa

from services.common.bus import Bus
from services.common.db import Database
from services.common.tables import outbox
from services.shipment.carriers.base import sign
from tests.harness import RunningService, auth

SHIP_TO: dict[str, Any] = {
    "name": "Ada Lovelace",
    "line1": "12 Analytical Engine Street",
    "line2": "Flat 3",
    "city": "Utrecht",
    "region": "UT",
    "postal_code": "3511 AB",
    "country": "nl",
}


def shipment_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "order_id": f"ord-{uuid.uuid4().hex[:8]}",
        "customer_id": "cust-1",
        "warehouse_id": "wh-ams",
        "service_level": "standard",
        "ship_to": dict(SHIP_TO),
        "lines": [
            {
                "line_no": 1,
                "sku": "SKU-A",
                "quantity": 30,
                "unit_weight_grams": 1000,
                "lots": [{"lot": "LOT-A1", "quantity": 20}, {"lot": "LOT-A2", "quantity": 10}],
            },
            {
                "line_no": 2,
                "sku": "SKU-B",
                "quantity": 2,
                "lots": [{"lot": "LOT-B1", "quantity": 2}],
            },
        ],
        "simulation": {"scenario": "manual"},
    }
    body.update(overrides)
    return body


async def create_shipment(
    svc: RunningService,
    body: dict[str, Any] | None = None,
    *,
    key: str | None = None,
    role: str = "service",
    **claims: Any,
) -> httpx.Response:
    claims.setdefault("subject", f"{role}-tests")  # keys are scoped per caller
    headers = {**auth(role, **claims), "Idempotency-Key": key or uuid.uuid4().hex}
    return await svc.http.post("/shipments", json=body or shipment_body(), headers=headers)


async def created(svc: RunningService, body: dict[str, Any] | None = None) -> dict[str, Any]:
    r = await create_shipment(svc, body)
    assert r.status_code == 201, r.text
    shipment: dict[str, Any] = r.json()
    return shipment


def scan(
    tracking_number: str,
    code: str,
    at: datetime,
    *,
    event_id: str | None = "auto",
    city: str | None = "Rotterdam",
    country: str | None = "NL",
    description: str | None = None,
) -> dict[str, Any]:
    """One simulated-carrier webhook scan; `event_id=None` sends none (dedupe by code+time)."""
    item: dict[str, Any] = {
        "tracking_number": tracking_number,
        "code": code,
        "occurred_at": at.astimezone(UTC).isoformat(),
        "location": {"city": city, "region": None, "postal_code": None, "country": country},
    }
    if event_id == "auto":
        item["id"] = f"evt-{uuid.uuid4().hex}"
    elif event_id is not None:
        item["id"] = event_id
    if description is not None:
        item["description"] = description
    return item


def webhook_secret(svc: RunningService) -> str:
    secret: str = svc.app.state.settings.resolved_webhook_secret()
    return secret


async def push(
    svc: RunningService,
    scans: Sequence[dict[str, Any]],
    *,
    secret: str | None = None,
    carrier: str = "simulated",
    signature: str | None = None,
) -> httpx.Response:
    """POST a signed webhook batch exactly as a carrier would (raw bytes, HMAC header)."""
    body = json.dumps({"events": list(scans)}).encode()
    sig = signature or sign(secret or webhook_secret(svc), body)
    return await svc.http.post(
        f"/carriers/{carrier}/webhook",
        content=body,
        headers={"X-Waybill-Signature": sig, "Content-Type": "application/json"},
    )


async def accepted(svc: RunningService, scans: Sequence[dict[str, Any]]) -> dict[str, Any]:
    r = await push(svc, scans)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def get_shipment(svc: RunningService, shipment_id: str) -> dict[str, Any]:
    r = await svc.http.get(f"/shipments/{shipment_id}", headers=auth("ops"))
    assert r.status_code == 200, r.text
    shipment: dict[str, Any] = r.json()
    return shipment


async def outbox_events(db_url: str, type_suffix: str | None = None) -> list[dict[str, Any]]:
    """Envelopes staged in the service's outbox (committed), optionally of one type."""
    db = Database(db_url)
    try:
        async with db.reading() as s:
            rows = (
                await s.execute(sa.select(outbox.c.type, outbox.c.envelope).order_by(outbox.c.seq))
            ).all()
    finally:
        await db.dispose()
    return [
        json.loads(r.envelope)
        for r in rows
        if type_suffix is None or r.type == f"shipment.shipment.{type_suffix}.v1"
    ]


async def stream_events(bus: Bus, subject: str) -> list[dict[str, Any]]:
    """Every envelope on `subject` in the SHIPMENT stream."""
    try:
        info = await bus.js.stream_info("SHIPMENT")
    except Exception:
        return []
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await bus.js.get_msg("SHIPMENT", seq)
        except Exception:
            continue
        if msg.subject == subject:
            out.append(json.loads(msg.data or b""))
    return out


async def streamed_push(
    port: int, path: str, total: int, *, declared: int | None = None
) -> tuple[int, str, int]:
    """POST `total` bytes as a streaming client does: reading the answer while sending,
    and stopping once it arrives (httpx reads only after the whole body is sent).
    Chunked, or with a `Content-Length: declared` that need not be true.
    Returns (status, problem code, bytes sent when the answer came)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    framing = "Transfer-Encoding: chunked" if declared is None else f"Content-Length: {declared}"
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{framing}\r\n"
        "Content-Type: application/json\r\nX-Waybill-Signature: t=1,v1=00\r\n\r\n".encode()
    )
    chunk, sent = b" " * 65536, 0

    async def send() -> None:
        nonlocal sent
        while sent < total:
            size = min(len(chunk), total - sent)
            piece = chunk[:size]
            writer.write(piece if declared is not None else b"%x\r\n%s\r\n" % (size, piece))
            await writer.drain()
            sent += size
        if declared is None:
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    sender = asyncio.create_task(send())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
        so_far = sent
        lines = head.decode("latin-1").split("\r\n")
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length:")
        )
        problem = json.loads(await reader.readexactly(length))
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sender
        writer.close()
    return int(lines[0].split()[1]), str(problem.get("code")), so_far
