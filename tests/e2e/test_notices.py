"""Notices from the running system: an order delivered through the real shipment service
and carrier webhook mails its customer "out for delivery" and "delivered", in their
language, once each, through a real SMTP server."""

from __future__ import annotations

import pytest

from tests import harness
from tests.e2e.conftest import World
from tests.harness import SmtpServer, Stack, auth, eventually

pytestmark = pytest.mark.settings(
    shipment={"simulator_enabled": False},
    customer={"notice_poll_seconds": 0.2},
    workflows={"backorder_timeout_seconds": 3600, "credit_hold_timeout_seconds": 3600},
)


@pytest.fixture
async def system(stack: Stack, worker: None, bridge: None, smtp: SmtpServer) -> Stack:
    """All five services, the customer service sending to this test's SMTP server."""
    stack.smtp_port = smtp.port
    for service in harness.SERVICES:
        await stack.start(service)
    return stack


async def test_a_delivered_order_mails_its_customer(world: World, smtp: SmtpServer) -> None:
    """Scans reach the customer as two mails in Chinese (out for delivery, delivered),
    logged on the interaction log; the other scans send nothing."""
    jane = world.jane
    customer = world.stack.services["customer"]
    r = await customer.http.patch(
        f"/customers/{jane}", json={"preferred_language": "zh-Hans"}, headers=auth("coordinator")
    )
    assert r.status_code == 200, r.text
    order_id = await world.place(jane, ("MUG-CERAMIC", 1))
    [shipment] = await world.wait_shipments(order_id, 1)
    await world.scan(shipment["tracking_number"], "IR", "PU", "AR", "OD", "DL")
    await world.wait_status(order_id, "completed")

    await eventually(
        lambda: len(smtp.messages("jane@example.org")) >= 2, 60, 0.1, "two mails to Jane"
    )
    subjects = sorted(m.subject for m in smtp.messages("jane@example.org"))
    assert subjects == [f"您的订单 {order_id} 已送达", f"您的订单 {order_id} 正在派送"]
    [out] = [m for m in smtp.messages("jane@example.org") if "派送" in m.subject]
    assert shipment["tracking_number"] in out.text()

    async def logged() -> list[dict[str, str]] | None:
        r = await customer.http.get(f"/customers/{jane}/interactions", headers=auth("ops"))
        items: list[dict[str, str]] = r.json()["items"]
        return items if len(items) == 2 else None

    items = await eventually(logged, 30, 0.1, "two interactions")
    assert {i["reference"] for i in items} == {shipment["shipment_id"]}
    assert len(smtp.messages()) == 2  # nobody else was mailed
