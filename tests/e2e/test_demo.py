"""The demo the README promises: seeded system, simulated carrier, three orders to the end."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import World
from workflows.demo import run_demo

pytestmark = pytest.mark.settings(
    shipment={"simulator_seconds_per_hour": 0.005, "simulator_poll_seconds": 0.1},
)


async def test_demo_orders_reach_the_end_with_their_story(world: World) -> None:
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
