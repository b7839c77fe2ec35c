"""The demo the README promises: seeded system, simulated carrier, three orders to the end."""

from __future__ import annotations

import pytest

from cli.demo import run_demo
from tests import harness
from tests.e2e.conftest import World
from tests.harness import SmtpServer, Stack

pytestmark = pytest.mark.settings(
    shipment={"simulator_seconds_per_hour": 0.005, "simulator_poll_seconds": 0.1},
    customer={"notice_poll_seconds": 0.2},
)


@pytest.fixture
async def system(stack: Stack, worker: None, bridge: None, smtp: SmtpServer) -> Stack:
    """The whole system as `waybill up` runs it, mail sink included."""
    stack.smtp_port = smtp.port
    for service in harness.SERVICES:
        await stack.start(service)
    return stack


@pytest.mark.timeout(300)
async def test_demo_orders_reach_the_end_with_their_story(world: World, smtp: SmtpServer) -> None:
    lines: list[str] = []
    results = await run_demo(world.api, lines.append)
    assert [r["status"] for r in results] == ["completed"] * 3
    one, split, back = results
    assert len(one["shipments"]) == 1
    # The answer waited until the read model held every shipment the workflow made.
    assert len(split["workflow"]["shipments"]) == 2
    assert sorted(s["warehouse_id"] for s in split["shipments"]) == ["WH-NORTH", "WH-SOUTH"]
    assert "backordered" in [t["kind"] for t in back["timeline"]]
    for result in results:
        for shipment in result["shipments"]:
            assert shipment["status"] in ("delivered", "returned_to_sender")
            assert shipment["events"], "tracking history is part of the status"
    assert any("trace=" in line for line in lines)
    # The return went from request to refund by itself but for the coordinator's hands,
    # and the recall reached both customers who had the mug lot.
    story = "\n".join(lines)
    assert "[return] refund: 116.10 EUR (restocking fee 12.90); closed" in story
    assert "[return] GRINDER-BURR back on the shelf" in story
    assert "[recall] report: 2/2 notified" in story
    assert any("recall" in m.subject.lower() or "召回" in m.subject for m in smtp.messages())
