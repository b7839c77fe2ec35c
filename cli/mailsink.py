"""The local mail sink: an SMTP server (aiosmtpd) that keeps every message it receives,
one `.eml` file each under `var/mail/`, so a coordinator sees exactly what customers got
(`waybill mail list`, `waybill mail show ID`).

`waybill up` runs it as a supervised component (`python -m cli.mailsink`) and points the
customer service at it; the tests run the same `MailSink` in their own process.
A message's id is its file name without `.eml`: receipt time and a short random part,
so ids sort in the order messages arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

DEFAULT_PORT = 8025


@dataclass
class MailSink:
    """The aiosmtpd handler: stores each message in `directory`.

    `refuse` holds recipients answered `550` (a permanent refusal) and `defer` those
    answered `451` (try again later), both lower-case, for tests of the sender's failures.
    """

    directory: Path
    refuse: set[str] = field(default_factory=set)
    defer: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address.lower() in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        if address.lower() in self.defer:
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        if isinstance(content, str):
            content = content.encode()
        store(self.directory, content, envelope.mail_from or "", list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


def store(directory: Path, content: bytes, mail_from: str, rcpt_tos: list[str]) -> str:
    """Write one received message (with its envelope as `X-Sink-*` headers); its id."""
    message_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}"
    head = (
        f"X-Sink-Mail-From: {mail_from}\r\n"
        f"X-Sink-Rcpt-To: {', '.join(rcpt_tos)}\r\n"
        f"X-Sink-Received: {datetime.now(UTC).isoformat()}\r\n"
    ).encode()
    tmp = directory / f".{message_id}.tmp"
    tmp.write_bytes(head + content)
    os.replace(tmp, directory / f"{message_id}.eml")
    return message_id


def smtp_factory(sink: MailSink) -> SMTP:
    return SMTP(sink, enable_SMTPUTF8=True, hostname="waybill-mail-sink")


# --- reading what it got ------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    id: str
    to: str
    sender: str
    subject: str
    date: str
    message: EmailMessage

    def text(self) -> str:
        """The plain-text part (or the first text part)."""
        body = self.message.get_body(preferencelist=("plain", "html"))
        return body.get_content() if body is not None else ""

    def html(self) -> str | None:
        body = self.message.get_body(preferencelist=("html",))
        return body.get_content() if body is not None else None


def _parse(path: Path) -> Received:
    msg = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return Received(
        id=path.stem,
        to=str(msg.get("To", "")),
        sender=str(msg.get("From", "")),
        subject=str(msg.get("Subject", "")),
        date=str(msg.get("X-Sink-Received", "")),
        message=msg,
    )


def messages(directory: Path) -> list[Received]:
    """Every message received, oldest first."""
    if not directory.exists():
        return []
    return [_parse(p) for p in sorted(directory.glob("*.eml"))]


def message(directory: Path, message_id: str) -> Received | None:
    """One message by id (or by a unique prefix of it)."""
    if "/" in message_id or message_id.startswith("."):
        return None
    exact = directory / f"{message_id}.eml"
    if exact.exists():
        return _parse(exact)
    found = sorted(directory.glob(f"{message_id}*.eml")) if directory.exists() else []
    return _parse(found[0]) if len(found) == 1 else None


# --- the process ----------------------------------------------------------------------


async def serve(directory: Path, host: str, port: int) -> None:
    """Run the sink until SIGTERM or SIGINT."""
    sink = MailSink(directory)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: smtp_factory(sink), host=host, port=port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"mail sink: SMTP on {host}:{port}, messages in {directory}", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cli.mailsink", description=__doc__)
    parser.add_argument("--dir", required=True, type=Path, help="where messages are stored")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args: Any = parser.parse_args(argv)
    asyncio.run(serve(args.dir, args.host, args.port))


if __name__ == "__main__":
    main()
