"""The demo the README promises: seeded system, simulated carrier, three orders to the end."""

from __future__ import annotations

import re

import pytest

from cli.demo import delivered_line, run_demo
from tests import harness
from tests.e2e.conftest import World
from tests.harness import SmtpServer, Stack, token

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
    # As `waybill demo` has them: supplier users' tokens and the NATS the supplier reads.
    world.api.supplier_token = lambda sid: token("supplier", supplier_id=sid)
    world.api.nats_url = world.stack.nats_url
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
    if "[return] skipped" not in story:  # only when the carrier sent every parcel back
        assert re.search(r"\[return\] refund: [\d.]+ EUR \(restocking fee [\d.]+\); closed", story)
        assert re.search(r"\[return\] [A-Z0-9-]+ back on the shelf", story), story
    if "1 x GRINDER-BURR" in story:  # the grinder, unless its parcel went back
        assert "[return] refund: 116.10 EUR (restocking fee 12.90); closed" in story
    # Every customer who kept a mug of the lot: the carrier sends a few parcels back.
    kept = {
        result["order_id"]
        for result in (one, split)
        for shipment in result["shipments"]
        if shipment["status"] == "delivered"
        and any(lot["sku"] == "MUG-CERAMIC" for lot in shipment["lots"])
    }
    if kept:
        assert f"[recall] report: {len(kept)}/{len(kept)} notified" in story, story
    # The backorder was filled by the supplier: signalled on its subject, acknowledged,
    # shipped and received; the PO closed and counted on the scorecard.
    assert re.search(
        r"\[replenish\] supplier\.PAPERWORKS\.signals supplier\.signal\.raised\.v1: "
        r"FILTER-PAPER@WH-SOUTH position -5 \(backordered 5\) below reorder point 10: 25 by",
        story,
    ), story
    assert (
        "[replenish] PAPERWORKS's webhook got it: POST /hooks/waybill, signature verified" in story
    )
    assert "[replenish] PAPERWORKS acknowledges 25 for" in story
    assert re.search(r"\[replenish\] PAPERWORKS ships lot PW-[0-9A-F]{6} \(ASN\)", story)
    assert re.search(r"closed by its workflow: received 25 of 25, shortfall 0", story)
    assert re.search(
        r"\[replenish\] PAPERWORKS scorecard: 1 PO closed, 0 open; fill rate 100%", story
    )
    assert any("recall" in m.subject.lower() or "召回" in m.subject for m in smtp.messages())


def test_the_demo_returns_a_delivered_line_the_grinder_first() -> None:
    """A parcel the carrier sent back cannot be returned: the demo picks a delivered one."""

    def status(*shipments: tuple[str, str]) -> dict[str, object]:
        return {
            "shipments": [
                {"status": st, "lots": [{"line_no": i + 1, "sku": sku}]}
                for i, (sku, st) in enumerate(shipments)
            ]
        }

    split = status(("MUG-CERAMIC", "delivered"), ("GRINDER-BURR", "returned_to_sender"))
    one = status(("COFFEE-1KG", "delivered"))
    order_a, order_b = {"id": "a"}, {"id": "b"}
    picked = delivered_line([(order_a, "jane", split), (order_b, "acme", one)])
    assert picked == (order_a, "jane", 1, "MUG-CERAMIC")
    split = status(("MUG-CERAMIC", "delivered"), ("GRINDER-BURR", "delivered"))
    assert delivered_line([(order_a, "jane", split)]) == (order_a, "jane", 2, "GRINDER-BURR")
    back = status(("COFFEE-1KG", "returned_to_sender"))
    assert delivered_line([(order_b, "acme", back)]) is None
