"""A Temporal outage during order intake loses and parks nothing: every order placed
while Temporal is down reaches delivery once it is back.

The test has its own `temporal server start-dev` (the session's is shared), stops it
for longer than the old retry budget and starts it again on the same port and database
file. The old budget was 5 attempts with 0.5-8 s pauses; with refused connections the
Temporal client itself retries each call for about 10 s, so here it ran out after about
60 s: the default outage is 70 s (the old policy dead-letters every start in it; checked
by making Temporal errors count as unknown with 5 attempts), the slow one 4 minutes.
The worker and the bridge run as in `waybill up` (`run_worker`, `run_bridge`): they
wait, retry and report not-ready meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from cli.demo import Api, seed
from cli.launcher import free_port
from services.common.bus import Bus
from services.common.deadletters import DeadLetters
from tests import harness
from tests.e2e.conftest import World
from tests.harness import Databases, Stack, TemporalDevServer, auth, eventually, token
from workflows.bridge import run_bridge
from workflows.runtime import WorkflowSettings, connect
from workflows.worker import run_worker

DELIVER = ("IR", "PU", "AR", "OD", "DL")


@pytest.fixture
async def temporal_dev(tmp_path: Path) -> AsyncIterator[TemporalDevServer]:
    server = TemporalDevServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def readiness_is(port: int, wanted: int) -> Callable[[], Awaitable[bool]]:
    """A check for `eventually`: the process on `port` answers /readyz with `wanted`."""

    async def check() -> bool:
        async with httpx.AsyncClient() as http:
            try:
                r = await http.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            except httpx.HTTPError:
                return False
            return r.status_code == wanted

    return check


async def outage_during_intake(
    temporal_dev: TemporalDevServer,
    nats_url: str,
    databases: Databases,
    tmp_path: Path,
    outage_seconds: float,
    orders: int,
) -> None:
    stack = Stack(
        nats_url=nats_url,
        temporal_address=temporal_dev.address,
        databases=databases,
        var_dir=tmp_path,
    )
    stack.service_overrides = {"shipment": {"simulator_enabled": False}}
    bridge_port, worker_port = free_port(), free_port()
    settings = WorkflowSettings(
        **stack.shared(),
        bridge_port=bridge_port,
        worker_port=worker_port,
        restart_backoff_max_seconds=2.0,
        consumer_backoff_seconds=0.2,
        consumer_backoff_max_seconds=2.0,
    )
    stop = asyncio.Event()
    processes = [
        asyncio.create_task(run_worker(settings, stop, stack.task_queue)),
        asyncio.create_task(run_bridge(settings, stop, stack.task_queue)),
    ]
    api: Api | None = None
    bus = Bus(nats_url, "outage-test")
    await bus.connect()
    try:
        for service in harness.SERVICES:
            await stack.start(service)
        urls = {name: svc.url for name, svc in stack.services.items()}
        api = Api(urls, token("coordinator", subject="outage"))
        customers = await seed(api)
        client: Client = await connect(settings)
        world = World(stack, api, customers, client)
        for port in (bridge_port, worker_port):
            await eventually(readiness_is(port, 200), 60, 0.2, "ready")

        temporal_dev.stop()
        began = time.monotonic()
        await eventually(readiness_is(bridge_port, 503), 30, 0.2, "bridge not ready")
        placed = [
            await world.place(world.acme, ("COFFEE-1KG", 1), ("MUG-CERAMIC", 1))
            for _ in range(orders)
        ]
        left = outage_seconds - (time.monotonic() - began)
        await asyncio.sleep(max(0.0, left))  # the outage itself: nothing to wait for
        temporal_dev.start()

        for order_id in placed:
            [shipment] = await world.wait_shipments(order_id, 1)
            await world.scan(shipment["tracking_number"], *DELIVER)
        for order_id in placed:
            final = await world.wait_status(order_id, "completed", seconds=120)
            assert final["outcome"] == "delivered"
        assert await DeadLetters(bus).find(all_states=True) == []
        for port in (bridge_port, worker_port):
            await eventually(readiness_is(port, 200), 60, 0.2, "ready again")
        async with httpx.AsyncClient() as http:
            bridge_ops = (
                await http.get(f"http://127.0.0.1:{bridge_port}/ops/messaging", headers=auth("ops"))
            ).json()
        order_bridge = next(c for c in bridge_ops["consumers"] if c["name"] == "bridge-order")
        assert order_bridge["failures"] > 0, "the outage was seen and retried"
        assert order_bridge["dead_lettered"] == 0
    finally:
        stop.set()
        await asyncio.wait(processes, timeout=60)
        if api is not None:
            await api.close()
        await bus.close()
        await stack.close()


@pytest.mark.timeout(300)  # the outage alone is 70 s of the default 120
async def test_temporal_outage_of_70s_during_intake(
    temporal_dev: TemporalDevServer, nats_url: str, databases: Databases, tmp_path: Path
) -> None:
    """Longer than the old give-up time: every order placed meanwhile is delivered."""
    await outage_during_intake(temporal_dev, nats_url, databases, tmp_path, 70, orders=3)


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_temporal_outage_of_several_minutes_during_intake(
    temporal_dev: TemporalDevServer, nats_url: str, databases: Databases, tmp_path: Path
) -> None:
    """Four minutes: the back-off reaches its cap, and still nothing is lost or parked."""
    await outage_during_intake(temporal_dev, nats_url, databases, tmp_path, 240, orders=5)
