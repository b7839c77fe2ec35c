"""Customer notices: what an event tells a customer, in their language, and the notice's
lifecycle.

An event the customer should hear about (a return authorized, a recall, a parcel out for
delivery...) becomes one `Notice` row per customer, rendered from the templates under
`templates/` (Jinja2, one file per kind and locale, autoescaped) in the consumer's
transaction. The sender loop (`mailer.py`) sends it; each outcome is one transition here:

    pending ──sent──────► sent      (interaction logged, `NoticeSent` staged)
       │ └──transient───► pending   (attempts + 1, next attempt after a capped back-off)
       └────permanent───► failed    (reason kept; a coordinator may requeue it)
    failed ──requeue────► pending   (address and language read again)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

import aiosmtplib
import sqlalchemy as sa
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.events import NoticeSent
from services.common.outbox import stage
from services.common.problems import Conflict, NotFound
from services.common.retry import Failure, RetryPolicy
from services.customer.models import Customer, Interaction, Notice

TEMPLATES = Path(__file__).parent / "templates"
LANGUAGES = ("en", "zh-Hans")
DEFAULT_LANGUAGE = "en"
# Set on a session that created a pending notice, so the commit wakes the sender.
WAKE_FLAG = "waybill_notice_pending"
RECORDED_BY = "customer:notices"


class NoticeKind(StrEnum):
    RETURN_AUTHORIZED = "return_authorized"
    RETURN_AWAITING_RECEIPT = "return_awaiting_receipt"
    RETURN_REJECTED = "return_rejected"
    RETURN_EXPIRED = "return_expired"
    RETURN_REFUNDED = "return_refunded"
    RECALL_NOTICE = "recall_notice"
    SHIPMENT_EXCEPTION = "shipment_exception"
    SHIPMENT_OUT_FOR_DELIVERY = "shipment_out_for_delivery"
    SHIPMENT_DELIVERED = "shipment_delivered"


class NoticeStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


# Which transitions each status allows (the functions below guard with it).
TRANSITIONS: dict[NoticeStatus, frozenset[NoticeStatus]] = {
    NoticeStatus.PENDING: frozenset({NoticeStatus.SENT, NoticeStatus.PENDING, NoticeStatus.FAILED}),
    NoticeStatus.FAILED: frozenset({NoticeStatus.PENDING}),
    NoticeStatus.SENT: frozenset(),
}

# What the notice is about, for the interaction log.
REFERENCE_KIND: dict[NoticeKind, str] = {
    NoticeKind.RETURN_AUTHORIZED: "return",
    NoticeKind.RETURN_AWAITING_RECEIPT: "return",
    NoticeKind.RETURN_REJECTED: "return",
    NoticeKind.RETURN_EXPIRED: "return",
    NoticeKind.RETURN_REFUNDED: "return",
    NoticeKind.RECALL_NOTICE: "recall",
    NoticeKind.SHIPMENT_EXCEPTION: "shipment",
    NoticeKind.SHIPMENT_OUT_FOR_DELIVERY: "shipment",
    NoticeKind.SHIPMENT_DELIVERED: "shipment",
}

# --- rendering ----------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


@lru_cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def language_of(preferred: str | None) -> str:
    """The locale a notice is written in: the customer's, when we ship templates for it."""
    return preferred if preferred in LANGUAGES else DEFAULT_LANGUAGE


def render(kind: NoticeKind, language: str, context: dict[str, Any]) -> Rendered:
    """Subject, text and HTML of a notice. The template's `subject` and `body` blocks are
    rendered autoescaped; the text part is that body unescaped, the HTML part wraps the
    escaped paragraphs in `layout.html.j2`."""
    env = _environment()
    template = env.get_template(f"{kind.value}.{language_of(language)}.j2")
    ctx = template.new_context(dict(context))
    subject = Markup("".join(template.blocks["subject"](ctx))).unescape()
    subject = " ".join(subject.split())[:300]
    body = "".join(template.blocks["body"](ctx)).strip()
    paragraphs = [Markup(p.strip().replace("\n", "<br>\n")) for p in body.split("\n\n")]
    html = env.get_template("layout.html.j2").render(
        subject=subject, paragraphs=[p for p in paragraphs if p], language=language
    )
    return Rendered(subject=subject, text=Markup(body).unescape() + "\n", html=html)


def summary(text: str, limit: int = 1000) -> str:
    """The body, shortened for the interaction log."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# --- creating -----------------------------------------------------------------------


@dataclass(frozen=True)
class Cause:
    """The event behind a notice."""

    event_id: str
    event_type: str


async def create(
    session: AsyncSession,
    *,
    customer_id: str,
    kind: NoticeKind,
    cause: Cause,
    reference: str | None,
    context: dict[str, Any],
    dedupe_key: str | None = None,
) -> Notice | None:
    """The notice `cause` owes `customer_id`, in the caller's transaction; None when that
    event, or another with the same `dedupe_key` (what the notice says, e.g. "shipment S
    is out for delivery", however many scans or re-issued events say it), already has one.

    A customer we do not know, or one without an email address, gets a failed notice
    saying so: visible to coordinators, who may fix the customer and requeue it.
    """
    same = Notice.source_event_id == cause.event_id
    if dedupe_key is not None:
        same = sa.or_(same, Notice.dedupe_key == dedupe_key)
    seen = sa.select(Notice.id).where(Notice.customer_id == customer_id, same)
    if await session.scalar(seen.limit(1)) is not None:
        return None
    customer = await session.get(Customer, customer_id)
    now = datetime.now(UTC)
    notice_id = str(uuid.uuid4())
    notice = Notice(
        id=notice_id,
        customer_id=customer_id,
        kind=kind.value,
        source_event_id=cause.event_id,
        source_type=cause.event_type,
        reference=reference,
        dedupe_key=dedupe_key,
        context=context,
        attempts=0,
        message_id=f"<notice-{notice_id}@waybill.local>",
        created_at=now,
        updated_at=now,
    )
    _address(notice, customer, now)
    session.add(notice)
    await session.flush()
    if notice.status == NoticeStatus.PENDING:
        session.info[WAKE_FLAG] = True
    return notice


def _address(notice: Notice, customer: Customer | None, now: datetime) -> None:
    """Render the notice for the customer as they are now and make it pending, or failed
    when there is nobody to send it to."""
    language = language_of(customer.preferred_language if customer else None)
    context = {**notice.context, "customer_name": customer.name if customer else ""}
    rendered = render(NoticeKind(notice.kind), language, context)
    notice.language = language
    notice.subject = rendered.subject
    notice.body_text = rendered.text
    notice.body_html = rendered.html
    notice.to_address = customer.email if customer else None
    notice.next_attempt_at = None
    if customer is None:
        notice.status = NoticeStatus.FAILED
        notice.last_error = f"unknown_customer: no customer {notice.customer_id} here"
    elif not customer.email:
        notice.status = NoticeStatus.FAILED
        notice.last_error = "no_email_address: the customer has no email address"
    else:
        notice.status = NoticeStatus.PENDING
        notice.last_error = None
        notice.next_attempt_at = now
    notice.updated_at = now


# --- transitions ----------------------------------------------------------------------


def _guard(notice: Notice, to: NoticeStatus) -> None:
    if to not in TRANSITIONS[NoticeStatus(notice.status)]:
        raise Conflict(
            f"notice {notice.id} is {notice.status}; it cannot become {to.value}",
            code=f"notice_{notice.status}",
        )


async def mark_sent(session: AsyncSession, source: str, notice: Notice) -> None:
    """Sent: record it on the customer's interaction log and stage `NoticeSent`."""
    _guard(notice, NoticeStatus.SENT)
    now = datetime.now(UTC)
    notice.status = NoticeStatus.SENT
    notice.attempts += 1
    notice.sent_at = now
    notice.next_attempt_at = None
    notice.last_error = None
    notice.updated_at = now
    kind = NoticeKind(notice.kind)
    session.add(
        Interaction(
            id=str(uuid.uuid4()),
            customer_id=notice.customer_id,
            channel="email",
            direction="outbound",
            subject=notice.subject,
            summary=summary(notice.body_text),
            reference=notice.reference,
            reference_kind=REFERENCE_KIND[kind],
            notice_id=notice.id,
            recorded_by=RECORDED_BY,
            occurred_at=now,
        )
    )
    await stage(
        session,
        source,
        NoticeSent(
            notice_id=notice.id,
            customer_id=notice.customer_id,
            kind=notice.kind,
            source_event_id=notice.source_event_id,
            reference=notice.reference,
            return_id=notice.context.get("return_id"),
            channel="email",
            to=notice.to_address or "",
            language=notice.language,
            sent_at=now.isoformat(),
        ),
        subject=notice.customer_id,
    )


def mark_retry(notice: Notice, error: str, policy: RetryPolicy) -> None:
    """A transient failure: try again after the capped back-off, for ever."""
    _guard(notice, NoticeStatus.PENDING)
    now = datetime.now(UTC)
    notice.attempts += 1
    notice.last_error = error[:500]
    notice.next_attempt_at = now + timedelta(seconds=policy.delay(notice.attempts))
    notice.updated_at = now


def mark_failed(notice: Notice, error: str) -> None:
    """A permanent failure (the recipient refused): kept, with the reason, for a person."""
    _guard(notice, NoticeStatus.FAILED)
    notice.status = NoticeStatus.FAILED
    notice.attempts += 1
    notice.last_error = error[:500]
    notice.next_attempt_at = None
    notice.updated_at = datetime.now(UTC)


async def requeue(session: AsyncSession, notice_id: str) -> Notice:
    """A failed notice goes out again, rendered for the customer as they are now (a
    coordinator fixed the address, say); 409 `notice_pending` / `notice_sent` otherwise."""
    notice = await session.get(Notice, notice_id, with_for_update=True)
    if notice is None:
        raise NotFound(f"notice {notice_id} not found")
    if notice.status != NoticeStatus.FAILED:
        raise Conflict(
            f"notice {notice.id} is {notice.status}; only a failed notice is sent again",
            code=f"notice_{notice.status}",
        )
    customer = await session.get(Customer, notice.customer_id)
    _address(notice, customer, datetime.now(UTC))
    if notice.status == NoticeStatus.PENDING:
        session.info[WAKE_FLAG] = True
    return notice


# --- failures -----------------------------------------------------------------------


def classify(exc: BaseException) -> Failure:
    """PERMANENT when the mail server refused the message for good (5xx for every
    recipient, or for the data); TRANSIENT for everything else: refused or dropped
    connections, timeouts, 4xx answers, and answers about our own configuration
    (authentication, sender), which a fix makes pass."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        return Failure.PERMANENT if codes and all(c >= 500 for c in codes) else Failure.TRANSIENT
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPDataError):
        return Failure.PERMANENT if exc.code >= 500 else Failure.TRANSIENT
    return Failure.TRANSIENT


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]
