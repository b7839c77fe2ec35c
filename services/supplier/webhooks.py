"""Webhook delivery of signals to suppliers: queued with the signal, posted by a
supervised loop, signed so the supplier can tell the post is ours and recent.

Every raised signal of a supplier with a `webhook_url` queues one `webhook_deliveries`
row in the signal's transaction (`queue`): the body is the CloudEvents envelope of the
copy published on `supplier.<id>.signals`. The sender (`WebhookSender`, supervised like
the outbox relay; woken by the commit, polls `webhook_poll_seconds`) leases due pending
rows (their next attempt moved `webhook_lease_seconds` ahead; `SKIP LOCKED` on
PostgreSQL) and POSTs each to the supplier's current URL with

    Content-Type: application/json
    Waybill-Event-Id: <the envelope's id>      (the same on every attempt: de-duplicate)
    Waybill-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">

signed with the supplier's current secret. A 2xx answer: `delivered`. Anything else (an
answer that is not 2xx, a refused connection, a timeout): attempts + 1, the status code
or error kept, the next attempt after `webhook_backoff_seconds · 2^(n-1)` capped at
`webhook_backoff_max_seconds` (1 s → 300 s), until the delivery is
`webhook_max_age_hours` (72) old: then `failed`, for a person to see on
`GET /suppliers/{id}/webhook-deliveries`. A crash between the supplier's answer and the
record posts again after the lease (same event id): at least once.

A receiver checks a post with `verify_signature(secret, header, body, now)`: some `v1`
must match the body signed at `t`, and `t` must be within `tolerance` seconds of now
(an old post replayed is refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import re
import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from services.common.auth import Principal
from services.common.db import Database
from services.common.envelope import Envelope
from services.common.pagination import decode_time_cursor, encode_time_cursor
from services.common.retry import RetryPolicy
from services.supplier import suppliers
from services.supplier.models import Supplier, WebhookDelivery
from services.supplier.schemas import DeliveryOut, DeliveryPage
from services.supplier.settings import SupplierSettings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Waybill-Signature"
EVENT_ID_HEADER = "Waybill-Event-Id"
WAKE_FLAG = "waybill_webhook_pending"
SIGNATURE_MAX_LENGTH = 1024
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


# --- signatures -----------------------------------------------------------------------


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """Hex HMAC-SHA256 of `"<timestamp>." + body` with `secret`."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    return f"t={timestamp},v1={sign(secret, body, timestamp)}"


def verify_signature(
    secret: str, header: str, body: bytes, now: float | datetime, tolerance: float = 300
) -> bool:
    """Whether `header` (`t=<unix>,v1=<hex>[,v1=<hex>...]`) signs `body` with `secret`
    and `t` is within `tolerance` seconds of `now` (unix seconds or an aware datetime)."""
    if len(header) > SIGNATURE_MAX_LENGTH:
        return False
    stamps: list[str] = []
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            stamps.append(value)
        elif key == "v1":
            signatures.append(value)
    if len(stamps) != 1 or not _TIMESTAMP.fullmatch(stamps[0]) or not signatures:
        return False
    timestamp = int(stamps[0])
    moment = now.timestamp() if isinstance(now, datetime) else float(now)
    if abs(moment - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp)
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)


# --- queueing -------------------------------------------------------------------------


def queue(
    session: AsyncSession, supplier: Supplier, signal_id: str, envelope: Envelope
) -> WebhookDelivery | None:
    """Queue the post of `envelope` to the supplier's webhook in the caller's transaction
    (None: the supplier has no webhook)."""
    if not supplier.webhook_url:
        return None
    now = datetime.now(UTC)
    delivery = WebhookDelivery(
        id=str(uuid.uuid4()),
        signal_id=signal_id,
        supplier_id=supplier.id,
        event_id=envelope.id,
        url=supplier.webhook_url,
        body=envelope.model_dump_json(),
        status=DeliveryStatus.PENDING.value,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(delivery)
    session.info[WAKE_FLAG] = True
    return delivery


# --- outcomes -------------------------------------------------------------------------


def mark_delivered(delivery: WebhookDelivery, status_code: int) -> None:
    now = datetime.now(UTC)
    delivery.status = DeliveryStatus.DELIVERED.value
    delivery.attempts += 1
    delivery.last_status_code = status_code
    delivery.last_error = None
    delivery.delivered_at = now
    delivery.next_attempt_at = None
    delivery.updated_at = now


def mark_retry(
    delivery: WebhookDelivery,
    status_code: int | None,
    error: str,
    policy: RetryPolicy,
    max_age: timedelta,
) -> None:
    """Not delivered: try again after the capped back-off, or `failed` once the delivery
    is `max_age` old."""
    now = datetime.now(UTC)
    delivery.attempts += 1
    delivery.last_status_code = status_code
    delivery.last_error = error[:500]
    delivery.updated_at = now
    if now - delivery.created_at >= max_age:
        delivery.status = DeliveryStatus.FAILED.value
        delivery.next_attempt_at = None
        return
    delivery.next_attempt_at = now + timedelta(seconds=policy.delay(delivery.attempts))


# --- the sender -----------------------------------------------------------------------


class WebhookSender:
    """Posts due deliveries until cancelled (run under `services.common.tasks.supervise`)."""

    def __init__(self, db: Database, settings: SupplierSettings) -> None:
        self.db = db
        self.settings = settings
        self.policy = RetryPolicy(
            initial_seconds=settings.webhook_backoff_seconds,
            cap_seconds=settings.webhook_backoff_max_seconds,
        )
        self.max_age = timedelta(hours=settings.webhook_max_age_hours)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def commit_hook(self, session: Session) -> None:
        """For `Database.commit_hooks`: a commit that queued a delivery wakes the loop."""
        if session.info.pop(WAKE_FLAG, False):
            self.wake()

    async def run(self) -> None:
        async with httpx.AsyncClient(
            timeout=self.settings.webhook_timeout_seconds, follow_redirects=False
        ) as http:
            while True:
                handled = await self.send_due(http)
                if handled >= self.settings.webhook_batch:
                    continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.webhook_poll_seconds)

    async def send_due(self, http: httpx.AsyncClient) -> int:
        """Post one batch of due deliveries; how many were tried."""
        due = await self._lease()
        await asyncio.gather(*(self._deliver(http, delivery_id) for delivery_id in due))
        return len(due)

    async def _lease(self) -> list[str]:
        now = datetime.now(UTC)
        async with self.db.transaction() as session:
            rows = list(
                (
                    await session.execute(
                        sa.select(WebhookDelivery)
                        .where(
                            WebhookDelivery.status == DeliveryStatus.PENDING.value,
                            WebhookDelivery.next_attempt_at <= now,
                        )
                        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                        .limit(self.settings.webhook_batch)
                        .with_for_update(skip_locked=True)
                    )
                ).scalars()
            )
            until = now + timedelta(seconds=self.settings.webhook_lease_seconds)
            for row in rows:
                row.next_attempt_at = until
        return [row.id for row in rows]

    async def _deliver(self, http: httpx.AsyncClient, delivery_id: str) -> None:
        async with self.db.reading() as session:
            delivery = await session.get(WebhookDelivery, delivery_id)
            supplier = await session.get(Supplier, delivery.supplier_id) if delivery else None
        if delivery is None or supplier is None:
            return
        url = supplier.webhook_url
        status_code: int | None = None
        error: str | None = None
        if not url:
            error = "the supplier has no webhook_url"
        else:
            body = delivery.body.encode()
            headers = {
                "Content-Type": "application/json",
                EVENT_ID_HEADER: delivery.event_id,
                SIGNATURE_HEADER: signature_header(
                    supplier.webhook_secret, body, int(datetime.now(UTC).timestamp())
                ),
            }
            try:
                response = await http.post(url, content=body, headers=headers)
                status_code = response.status_code
                if not 200 <= status_code < 300:
                    error = f"HTTP {status_code}: {response.text[:200]}"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
        async with self.db.transaction() as session:
            current = await session.get(WebhookDelivery, delivery_id, with_for_update=True)
            if current is None or current.status != DeliveryStatus.PENDING:
                return
            if url:
                current.url = url
            if error is None and status_code is not None:
                mark_delivered(current, status_code)
            else:
                log.info("webhook delivery %s not delivered yet: %s", delivery_id, error)
                mark_retry(current, status_code, error or "", self.policy, self.max_age)


# --- listing --------------------------------------------------------------------------


async def page(
    session: AsyncSession,
    caller: Principal,
    supplier_id: str,
    *,
    status: DeliveryStatus | None,
    limit: int,
    cursor: str | None,
) -> DeliveryPage:
    """The supplier's deliveries, newest first."""
    await suppliers.load(session, supplier_id, caller)
    query = (
        sa.select(WebhookDelivery)
        .where(WebhookDelivery.supplier_id == supplier_id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        .limit(limit + 1)
    )
    if status is not None:
        query = query.where(WebhookDelivery.status == status.value)
    if cursor:
        at, last_id = decode_time_cursor(cursor)
        query = query.where(
            sa.tuple_(WebhookDelivery.created_at, WebhookDelivery.id)
            < sa.tuple_(sa.literal(at), sa.literal(last_id))
        )
    rows = list((await session.execute(query)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return DeliveryPage(
        items=[DeliveryOut.model_validate(row) for row in rows],
        next_cursor=encode_time_cursor(rows[-1].created_at, rows[-1].id) if more else None,
    )
