"""Carrier pushes: read under a size cap, verified by the carrier's adapter, ingested.

The webhook needs no bearer token, so anyone can send it anything: the body is read
chunk by chunk and refused (413) the moment it passes `webhook_max_bytes`, whatever
`Content-Length` says or whether it is sent at all, so a huge or endless push costs at
most the cap in memory (the HTTP server discards what the sender still sends after the
answer, keeping the connection usable, so the sender sees the 413). A bad signature is
401, an unreadable body 422.
"""

from __future__ import annotations

from fastapi import Request

from services.common.app import Runtime
from services.common.problems import PayloadTooLarge, Unauthorized, Unprocessable
from services.shipment import domain
from services.shipment.carriers.base import (
    CarrierAdapter,
    WebhookPayloadError,
    WebhookSignatureError,
)
from services.shipment.schemas import WebhookEventResult, WebhookResult
from services.shipment.settings import ShipmentSettings


async def read_capped(request: Request, limit: int) -> bytes:
    """The request body, or PayloadTooLarge as soon as more than `limit` bytes arrive."""
    too_large = PayloadTooLarge(f"webhook bodies are limited to {limit} bytes")
    declared = request.headers.get("content-length", "")
    honest = declared.isascii() and declared.isdigit()
    if honest and (len(declared) > len(str(limit)) or int(declared) > limit):
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


async def receive(
    runtime: Runtime, adapter: CarrierAdapter, request: Request, settings: ShipmentSettings
) -> WebhookResult:
    """Verify and apply one push; the result says what became of each scan."""
    body = await read_capped(request, settings.webhook_max_bytes)
    try:
        scans = adapter.parse_webhook(request.headers, body)
    except WebhookSignatureError as exc:
        raise Unauthorized(str(exc), code="invalid_signature") from exc
    except WebhookPayloadError as exc:
        raise Unprocessable(str(exc), code="invalid_webhook", errors=exc.errors) from exc
    if len(scans) > settings.webhook_max_events:
        raise PayloadTooLarge(f"at most {settings.webhook_max_events} events per push")
    async with runtime.db.transaction() as session:
        outcomes = await domain.ingest(
            session, source=runtime.source, adapter=adapter, events=scans, channel="webhook"
        )
    accepted = sum(1 for o in outcomes if o.outcome == "accepted")
    duplicates = sum(1 for o in outcomes if o.outcome == "duplicate")
    return WebhookResult(
        received=len(outcomes),
        accepted=accepted,
        duplicates=duplicates,
        rejected=len(outcomes) - accepted - duplicates,
        results=[
            WebhookEventResult(
                index=o.index,
                tracking_number=o.tracking_number,
                event_id=o.event_id,
                outcome=o.outcome,
                status=o.status,
            )
            for o in outcomes
        ],
    )
