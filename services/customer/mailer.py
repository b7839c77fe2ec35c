"""The notice sender: pending notices out over SMTP (aiosmtplib), outcomes back as
transitions (`notices.py`).

The loop wakes when a transaction commits a pending notice and polls every
`notice_poll_seconds`. It takes due notices oldest first and leases each (its next
attempt moved `notice_lease_seconds` ahead, in a short transaction) before it talks to
the mail server, so another replica leaves it alone; then it records the outcome in a
second transaction. A crash between the server's acceptance and that record sends the
notice again after the lease: at least once, with the same `Message-ID`, so a mail
client shows one message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

import aiosmtplib
import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.common.db import Database
from services.common.retry import Failure, RetryPolicy
from services.customer import notices
from services.customer.models import Notice
from services.customer.notices import NoticeStatus
from services.customer.settings import CustomerSettings

log = logging.getLogger(__name__)


def message(notice: Notice, sender: str) -> EmailMessage:
    """The notice as a MIME message: text, with the HTML part as its alternative."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = notice.to_address or ""
    msg["Subject"] = notice.subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = notice.message_id
    msg["Content-Language"] = notice.language
    msg["X-Waybill-Notice"] = notice.id
    msg["X-Waybill-Kind"] = notice.kind
    if notice.reference:
        msg["X-Waybill-Reference"] = notice.reference
    msg.set_content(notice.body_text)
    msg.add_alternative(notice.body_html, subtype="html")
    return msg


class NoticeSender:
    """Sends due notices until cancelled (run under `services.common.tasks.supervise`)."""

    def __init__(self, db: Database, settings: CustomerSettings, source: str) -> None:
        self.db = db
        self.settings = settings
        self.source = source
        self.policy = RetryPolicy(
            initial_seconds=settings.notice_backoff_seconds,
            cap_seconds=settings.notice_backoff_max_seconds,
        )
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def commit_hook(self, session: Session) -> None:
        """For `Database.commit_hooks`: a commit that made a notice pending wakes the loop."""
        if session.info.pop(notices.WAKE_FLAG, False):
            self.wake()

    async def run(self) -> None:
        while True:
            handled = await self.send_due()
            if handled >= self.settings.notice_batch:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.notice_poll_seconds)

    async def send_due(self) -> int:
        """Send one batch of due notices; how many were tried."""
        due = await self._lease()
        for notice in due:
            await self._deliver(notice)
        return len(due)

    async def _lease(self) -> list[Notice]:
        now = datetime.now(UTC)
        async with self.db.transaction() as session:
            stmt = (
                sa.select(Notice)
                .where(Notice.status == NoticeStatus.PENDING, Notice.next_attempt_at <= now)
                .order_by(Notice.next_attempt_at, Notice.id)
                .limit(self.settings.notice_batch)
                .with_for_update(skip_locked=True)
            )
            due = list((await session.execute(stmt)).scalars())
            until = now + timedelta(seconds=self.settings.notice_lease_seconds)
            for notice in due:
                notice.next_attempt_at = until
        return due

    async def _deliver(self, notice: Notice) -> None:
        error: BaseException | None = None
        try:
            await self.send(message(notice, self.settings.mail_from), notice.to_address or "")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = exc
        async with self.db.transaction() as session:
            current = await session.get(Notice, notice.id, with_for_update=True)
            if current is None or current.status != NoticeStatus.PENDING:
                return
            if error is None:
                await notices.mark_sent(session, self.source, current)
            elif notices.classify(error) is Failure.PERMANENT:
                log.warning("notice %s refused for good: %s", notice.id, error)
                notices.mark_failed(current, notices.describe(error))
            else:
                log.info("notice %s not sent yet: %s", notice.id, error)
                notices.mark_retry(current, notices.describe(error), self.policy)

    async def send(self, msg: EmailMessage, to: str) -> None:
        """One message to the configured SMTP server."""
        s = self.settings
        password = s.smtp_password.get_secret_value()
        await aiosmtplib.send(
            msg,
            sender=_address_of(s.mail_from),
            recipients=[to],
            hostname=s.smtp_host,
            port=s.smtp_port,
            use_tls=s.smtp_tls == "tls",
            start_tls=s.smtp_tls == "starttls",
            username=s.smtp_username or None,
            password=password or None,
            timeout=s.smtp_timeout_seconds,
        )


def _address_of(mailbox: str) -> str:
    """`Name <a@b>` -> `a@b` (the envelope sender)."""
    return parseaddr(mailbox)[1] or mailbox
