"""Customer notices: real events in, real mail out through a real SMTP server, read back
from it; the language chosen, one mail per event, retries through an outage, refusals
visible, the interaction log and `NoticeSent`."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import aiosmtplib

from services.common.bus import Bus
from services.common.envelope import Envelope
from services.common.events import (
    NoticeSent,
    RecallNoticeIssued,
    ReturnAuthorized,
    ReturnRefunded,
    ReturnRejected,
    ShipmentCreated,
    ShipmentDelivered,
    ShipmentException,
    ShipmentTrackingUpdated,
)
from services.common.events import RefundedLine as Refunded
from services.common.retry import Failure
from services.customer.notices import NoticeKind, classify, render
from tests.customer.conftest import body, create, publish, republish, stream_events
from tests.harness import BIN, RunningService, SmtpServer, Stack, auth, eventually

FAST = {"notice_backoff_seconds": 0.2, "notice_backoff_max_seconds": 1.0}


async def _customer_svc(stack: Stack, smtp: SmtpServer) -> RunningService:
    stack.smtp_port = smtp.port
    return await stack.start("customer", notice_poll_seconds=0.2, **FAST)


def _email() -> str:
    return f"c-{uuid.uuid4().hex[:8]}@example.org"


async def _notices(svc: RunningService, customer_id: str, role: str = "ops") -> list[Any]:
    claims = {"customer_id": customer_id} if role == "customer" else {}
    r = await svc.http.get(f"/customers/{customer_id}/notices", headers=auth(role, **claims))
    assert r.status_code == 200, r.text
    items: list[Any] = r.json()["items"]
    return items


async def _settled(svc: RunningService, consumer: str) -> bool:
    status = (await svc.http.get("/ops/messaging", headers=auth("ops"))).json()
    entry = next(c for c in status["consumers"] if c["name"] == consumer)
    return entry.get("pending") == 0 and entry.get("ack_pending") == 0


def _recall(customer_id: str) -> RecallNoticeIssued:
    return RecallNoticeIssued(
        recall_id="RCL-1",
        return_id=str(uuid.uuid4()),
        customer_id=customer_id,
        order_id="ORD-7",
        shipment_id="SHP-7",
        sku="HONEY-250",
        lots=["L-2026-11", "L-2026-12"],
        quantity=4,
        reason="glass splinters <found> in jars",
        instructions="Stop using the product & keep it sealed",
        hazard_class="I",
    )


async def test_notice_in_the_customers_language_once_per_event(
    stack: Stack, smtp: SmtpServer, bus: Bus
) -> None:
    """A recall notice reaches a zh-Hans customer in Chinese and an English one in English,
    stating product, lots, reason, instructions and how to return; the same event again
    sends nothing more; the interaction is logged and `NoticeSent` published."""
    svc = await _customer_svc(stack, smtp)
    zh_mail, en_mail = _email(), _email()
    zh = await create(svc, body("Li Wei", email=zh_mail, preferred_language="zh-Hans"))
    en = await create(svc, body("Acme & Sons", email=en_mail))
    assert zh["preferred_language"] == "zh-Hans" and en["preferred_language"] == "en"

    zh_event = _recall(zh["id"])
    sent = await publish(bus, zh_event, zh_event.return_id)
    en_event = _recall(en["id"])
    await publish(bus, en_event, en_event.return_id)

    await eventually(lambda: smtp.messages(zh_mail) and smtp.messages(en_mail), 30, 0.1, "mail")
    [cn] = smtp.messages(zh_mail)
    assert cn.subject.startswith("产品召回") and "HONEY-250" in cn.subject
    text = cn.text()
    for fact in ("HONEY-250", "L-2026-11", "L-2026-12", "glass splinters <found> in jars"):
        assert fact in text
    assert "Stop using the product & keep it sealed" in text
    assert zh_event.return_id in text  # how to return: the recall return opened for them
    [english] = smtp.messages(en_mail)
    assert english.subject.startswith("Product recall: HONEY-250")
    assert "Dear Acme & Sons" in english.text() and "How to return" in english.text()
    html = english.html()
    assert html is not None and "glass splinters &lt;found&gt;" in html  # autoescaped
    assert "Acme &amp; Sons" in html

    await republish(bus, sent)
    await publish(bus, zh_event, zh_event.return_id, msg_id=f"again-{uuid.uuid4()}")
    await eventually(lambda: _settled(svc, "customer-return-notices"), 30, 0.1, "settled")
    assert len(smtp.messages(zh_mail)) == 1

    [notice] = await _notices(svc, zh["id"])
    assert notice["status"] == "sent" and notice["kind"] == "recall_notice"
    assert notice["language"] == "zh-Hans" and notice["to_address"] == zh_mail
    assert notice["reference"] == "RCL-1" and notice["attempts"] == 1
    assert cn.message["Message-ID"] == f"<notice-{notice['id']}@waybill.local>"

    r = await svc.http.get(f"/customers/{zh['id']}/interactions", headers=auth("coordinator"))
    assert r.status_code == 200, r.text
    [logged] = r.json()["items"]
    assert logged["channel"] == "email" and logged["direction"] == "outbound"
    assert logged["subject"] == cn.subject and logged["notice_id"] == notice["id"]
    assert logged["reference"] == "RCL-1" and logged["reference_kind"] == "recall"
    assert "L-2026-11" in logged["summary"]

    async def noticed() -> list[Envelope]:
        found = await stream_events(bus, "CUSTOMER", "customer.notice.sent")
        return [e for e in found if e.data["customer_id"] == zh["id"]]

    [event] = await eventually(noticed, 30, 0.1, "NoticeSent")
    published = NoticeSent.model_validate(event.data)
    assert published.notice_id == notice["id"] and published.source_event_id == sent.id
    assert published.kind == "recall_notice" and published.reference == "RCL-1"
    assert published.return_id == zh_event.return_id
    assert published.to == zh_mail and published.language == "zh-Hans"


async def test_smtp_outage_retried_and_sent_once_it_is_back(
    stack: Stack, smtp: SmtpServer, bus: Bus
) -> None:
    """With the mail server down the notice stays pending with its attempts, last error
    and next attempt visible; once the server is back it is sent, once."""
    svc = await _customer_svc(stack, smtp)
    mail = _email()
    customer = await create(svc, body("Outage Ltd", email=mail))
    smtp.stop()
    event = ReturnRejected(
        return_id="RET-1",
        order_id="ORD-1",
        customer_id=customer["id"],
        reason="outside the 30-day window",
        rejected_by="policy",
    )
    await publish(bus, event, event.return_id)

    async def retrying() -> Any:
        r = await svc.http.get("/notices", params={"status": "pending"}, headers=auth("ops"))
        items = [n for n in r.json()["items"] if n["customer_id"] == customer["id"]]
        return items and items[0]["attempts"] >= 2 and items[0]

    notice = await eventually(retrying, 30, 0.1, "attempts against the dead server")
    assert notice["last_error"] and notice["next_attempt_at"] is not None
    r = await svc.http.post(f"/notices/{notice['id']}/retry", headers=auth("coordinator"))
    assert r.status_code == 409 and r.json()["code"] == "notice_pending", r.text
    smtp.start()
    await eventually(lambda: smtp.messages(mail), 30, 0.1, "the mail after the outage")
    [received] = smtp.messages(mail)
    assert received.subject == "Your return RET-1 could not be accepted"
    assert "outside the 30-day window" in received.text()
    [sent] = await eventually(lambda: _sent(svc, customer["id"]), 30, 0.1, "the notice marked sent")
    assert sent["attempts"] >= 3 and sent["last_error"] is None
    assert len(smtp.messages(mail)) == 1


async def _sent(svc: RunningService, customer_id: str) -> list[Any]:
    return [n for n in await _notices(svc, customer_id) if n["status"] == "sent"]


async def test_deferred_recipient_is_retried(stack: Stack, smtp: SmtpServer, bus: Bus) -> None:
    """A 4xx answer for the recipient is transient: retried until the server takes it."""
    svc = await _customer_svc(stack, smtp)
    mail = _email()
    smtp.sink.defer.add(mail)
    customer = await create(svc, body("Greylisted GmbH", email=mail))
    event = ReturnAuthorized(
        return_id="RET-2", order_id="ORD-2", customer_id=customer["id"], authorized_by="policy"
    )
    await publish(bus, event, event.return_id)

    async def deferred() -> Any:
        items = await _notices(svc, customer["id"])
        return items and items[0]["attempts"] >= 2 and items[0]

    notice = await eventually(deferred, 30, 0.1, "deferred attempts")
    assert notice["status"] == "pending" and "451" in notice["last_error"]
    smtp.sink.defer.clear()
    await eventually(lambda: _sent(svc, customer["id"]), 30, 0.1, "sent after the deferral")
    [received] = smtp.messages(mail)
    assert received.subject == "Your return RET-2 is authorized"


async def test_permanent_refusal_is_failed_visible_and_can_be_sent_again(
    stack: Stack, smtp: SmtpServer, bus: Bus
) -> None:
    """A 550 for the recipient fails the notice with the reason, visible to ops; so does a
    customer without an email address; nothing is logged or published for them; after the
    address is fixed a coordinator's retry sends it."""
    svc = await _customer_svc(stack, smtp)
    refused = _email()
    smtp.sink.refuse.add(refused)
    customer = await create(svc, body("Bounce Inc", email=refused))
    silent = await create(svc, body("No Mail Co"))
    for who in (customer, silent):
        event = ReturnRefunded(
            return_id=f"RET-{who['id'][:8]}",
            order_id="ORD-3",
            customer_id=who["id"],
            refund_id="REF-1",
            amount="45.00",
            restocking_fee="5.00",
            currency="EUR",
            lines=[Refunded(line_no=1, sku="SKU-1", quantity=1, amount="45.00")],
        )
        await publish(bus, event, event.return_id)

    async def failed() -> Any:
        r = await svc.http.get("/notices", params={"status": "failed"}, headers=auth("ops"))
        assert r.status_code == 200, r.text
        items = {n["customer_id"]: n for n in r.json()["items"]}
        return customer["id"] in items and silent["id"] in items and items

    items = await eventually(failed, 30, 0.1, "both notices failed")
    bounced = items[customer["id"]]
    assert "550" in bounced["last_error"] and bounced["next_attempt_at"] is None
    assert bounced["attempts"] == 1
    assert items[silent["id"]]["last_error"].startswith("no_email_address")
    assert smtp.messages() == []
    r = await svc.http.get(f"/customers/{customer['id']}/interactions", headers=auth("ops"))
    assert r.json()["items"] == []
    assert await stream_events(bus, "CUSTOMER", "customer.notice.sent") == []

    # A notice that is not failed cannot be requeued.
    r = await svc.http.post(f"/notices/{uuid.uuid4()}/retry", headers=auth("coordinator"))
    assert r.status_code == 404, r.text
    fixed = _email()
    r = await svc.http.patch(
        f"/customers/{silent['id']}",
        json={"email": fixed, "preferred_language": "zh-Hans"},
        headers=auth("coordinator"),
    )
    assert r.status_code == 200 and r.json()["preferred_language"] == "zh-Hans", r.text
    notice_id = items[silent["id"]]["id"]
    r = await svc.http.post(f"/notices/{notice_id}/retry", headers=auth("coordinator"))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "pending" and r.json()["language"] == "zh-Hans"
    await eventually(lambda: smtp.messages(fixed), 30, 0.1, "the requeued notice")
    [received] = smtp.messages(fixed)
    assert "45.00 EUR" in received.subject and "退款" in received.subject
    assert "5.00" in received.text()
    r = await svc.http.post(f"/notices/{notice_id}/retry", headers=auth("coordinator"))
    assert r.status_code == 409 and r.json()["code"] in {"notice_pending", "notice_sent"}


async def test_shipment_notices_find_the_customer_without_customer_id(
    stack: Stack, smtp: SmtpServer, bus: Bus
) -> None:
    """Out for delivery (once per shipment, however many scans say it), exceptions and
    delivery notify the shipment's customer, known from `ShipmentCreated` when an event
    does not carry `customer_id`; other scans notify nobody."""
    svc = await _customer_svc(stack, smtp)
    mail = _email()
    customer = await create(svc, body("Parcel Fan", email=mail))
    shipment = "SHP-42"
    await publish(
        bus,
        ShipmentCreated(
            shipment_id=shipment,
            order_id="ORD-42",
            customer_id=customer["id"],
            warehouse_id="WH-1",
            carrier="simulated",
            service_level="standard",
            tracking_number="TRK42",
            promised_date="2026-12-05",
            lots=[],
        ),
        shipment,
    )

    def scan(status: str, revision: int) -> ShipmentTrackingUpdated:
        return ShipmentTrackingUpdated(
            shipment_id=shipment,
            order_id="ORD-42",
            tracking_number="TRK42",
            event_id=f"scan-{revision}",
            event_status=status,
            status=status,
            occurred_at="2026-12-04T08:00:00Z",
            revision=revision,
        )

    await publish(bus, scan("in_transit", 1), shipment)
    await publish(bus, scan("out_for_delivery", 2), shipment)
    await publish(bus, scan("out_for_delivery", 3), shipment)
    await publish(
        bus,
        ShipmentException(
            shipment_id=shipment,
            order_id="ORD-42",
            status="exception",
            description="Address <unclear>",
        ),
        shipment,
    )
    await publish(
        bus,
        ShipmentDelivered(
            shipment_id=shipment,
            order_id="ORD-42",
            customer_id=customer["id"],
            delivered_at="2026-12-04T15:00:00Z",
        ),
        shipment,
    )
    await eventually(lambda: len(smtp.messages(mail)) >= 3, 30, 0.1, "three mails")
    await eventually(lambda: _settled(svc, "customer-shipment-notices"), 30, 0.1, "settled")
    subjects = sorted(m.subject for m in smtp.messages(mail))
    assert subjects == [
        "A problem with your shipment for order ORD-42",
        "Your order ORD-42 is out for delivery",
        "Your order ORD-42 was delivered",
    ]
    [out] = [m for m in smtp.messages(mail) if "out for delivery" in m.subject]
    assert "TRK42" in out.text()
    [problem] = [m for m in smtp.messages(mail) if "problem" in m.subject]
    assert "Address <unclear>" in problem.text()
    kinds = {n["kind"] for n in await _notices(svc, customer["id"])}
    assert kinds == {"shipment_out_for_delivery", "shipment_exception", "shipment_delivered"}


async def test_who_may_read_notices(stack: Stack, smtp: SmtpServer, bus: Bus) -> None:
    """A customer reads only their own notices (another's is a 404); the all-customer
    list and the interaction log are staff only; bad filters are problem details."""
    svc = await _customer_svc(stack, smtp)
    a = await create(svc, body("Alpha", email=_email()))
    b = await create(svc, body("Beta", email=_email()))
    event = _recall(a["id"])
    await publish(bus, event, event.return_id)
    await eventually(lambda: _sent(svc, a["id"]), 30, 0.1, "A's notice sent")
    assert len(await _notices(svc, a["id"], role="customer")) == 1
    as_b = auth("customer", customer_id=b["id"])
    r = await svc.http.get(f"/customers/{a['id']}/notices", headers=as_b)
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    for path in ("/notices", f"/customers/{a['id']}/interactions"):
        r = await svc.http.get(path, headers=as_b)
        assert r.status_code == 403, (path, r.text)
    r = await svc.http.get("/notices", params={"status": "lost"}, headers=auth("ops"))
    assert r.status_code == 422
    r = await svc.http.get("/notices", params={"cursor": "nonsense"}, headers=auth("ops"))
    assert r.status_code == 400 and r.json()["code"] == "invalid_cursor"
    r = await svc.http.get(f"/customers/{uuid.uuid4()}/notices", headers=auth("ops"))
    assert r.status_code == 404
    r = await svc.http.post(
        "/customers",
        json=body("Klingon", preferred_language="tlh"),
        headers={**auth("coordinator"), "Idempotency-Key": str(uuid.uuid4())},
    )
    assert r.status_code == 422


async def test_waybill_mail_lists_and_shows_what_the_sink_got(
    stack: Stack, smtp: SmtpServer, bus: Bus, tmp_path: Path
) -> None:
    """`waybill mail list` and `waybill mail show ID` print what the mail sink received."""
    svc = await _customer_svc(stack, smtp)
    mail = _email()
    customer = await create(svc, body("Cli User", email=mail, preferred_language="zh-Hans"))
    event = _recall(customer["id"])
    await publish(bus, event, event.return_id)
    [received] = await eventually(lambda: smtp.messages(mail), 30, 0.1, "the mail")
    assert smtp.sink.directory == tmp_path / "mail"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAYBILL_")}
    env["WAYBILL_VAR_DIR"] = str(tmp_path)

    def waybill(*args: str) -> str:
        done = subprocess.run(
            [str(BIN / "waybill"), "mail", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    listing = waybill("list")
    assert received.id in listing and mail in listing and "产品召回" in listing
    shown = waybill("show", received.id)
    assert f"To:      {mail}" in shown and "L-2026-12" in shown
    assert "Stop using the product & keep it sealed" in shown


def test_smtp_failures_are_classified() -> None:
    """A 5xx refusal of every recipient, or of the data, is permanent; 4xx answers,
    authentication and connection trouble are transient (a fix or time makes them pass)."""
    refused = aiosmtplib.SMTPRecipientRefused
    permanent = [
        aiosmtplib.SMTPRecipientsRefused([refused(550, "no such user", "a@example.org")]),
        aiosmtplib.SMTPDataError(554, "rejected as spam"),
    ]
    transient = [
        aiosmtplib.SMTPRecipientsRefused([refused(451, "greylisted", "a@example.org")]),
        aiosmtplib.SMTPRecipientsRefused(
            [refused(550, "no", "a@example.org"), refused(452, "full", "b@example.org")]
        ),
        aiosmtplib.SMTPDataError(451, "try later"),
        aiosmtplib.SMTPAuthenticationError(535, "bad credentials"),
        aiosmtplib.SMTPSenderRefused(550, "sender refused", "notices@waybill.example"),
        aiosmtplib.SMTPConnectError("connection refused"),
        aiosmtplib.SMTPTimeoutError("timed out"),
        ConnectionRefusedError(111, "refused"),
    ]
    assert [classify(e) for e in permanent] == [Failure.PERMANENT] * len(permanent)
    assert [classify(e) for e in transient] == [Failure.TRANSIENT] * len(transient)


def test_a_language_without_templates_falls_back_to_english() -> None:
    context = {**_recall("C-1").model_dump(mode="json"), "customer_name": "X"}
    assert render(NoticeKind.RECALL_NOTICE, "fr", context).subject.startswith("Product recall")
    assert render(NoticeKind.RECALL_NOTICE, "zh-Hans", context).subject.startswith("产品召回")
