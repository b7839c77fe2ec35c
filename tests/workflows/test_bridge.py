"""The bridge and worker processes: probes, and waiting out the servers they need."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from temporalio.testing import WorkflowEnvironment

from cli.launcher import free_port
from services.common.tasks import stop_tasks
from tests import harness
from tests.harness import auth, eventually
from workflows.bridge import run_bridge
from workflows.runtime import WorkflowSettings
from workflows.worker import run_worker


def settings_for(temporal: WorkflowEnvironment, nats_url: str, **extra: object) -> WorkflowSettings:
    values: dict[str, object] = {
        "temporal_address": temporal.client.service_client.config.target_host,
        "nats_url": nats_url,
        "jwt_secret": harness.JWT_SECRET,
        "restart_backoff_max_seconds": 1.0,
        **extra,
    }
    return WorkflowSettings(**values)  # type: ignore[arg-type]


async def readiness(url: str) -> tuple[int, dict[str, object]]:
    async with httpx.AsyncClient() as http:
        try:
            r = await http.get(url + "/readyz", timeout=5)
        except httpx.HTTPError:
            return 0, {}
        return r.status_code, r.json()


async def test_bridge_is_ready_with_nats_and_temporal_and_says_when_not(
    temporal: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Started before NATS exists, the bridge is alive but not ready; once NATS is up
    it is ready and serves its consumers' lag; when NATS goes, /readyz names it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    nats_port = free_port()
    settings = settings_for(temporal, f"nats://127.0.0.1:{nats_port}", bridge_port=port)
    stop = asyncio.Event()
    task = asyncio.create_task(run_bridge(settings, stop, task_queue="probe-tq"))
    try:

        async def answers() -> bool:
            code, _ = await readiness(url)
            return code == 503

        await eventually(answers, message="bridge answers 503 before NATS is up")
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/healthz")).status_code == 200
        with harness.nats_server(tmp_path, port=nats_port):

            async def ready() -> bool:
                code, body = await readiness(url)
                return code == 200 and body.get("status") == "ready"

            await eventually(ready, timeout=30, message="bridge ready once NATS is up")
            async with httpx.AsyncClient(base_url=url) as http:
                ops = (await http.get("/ops/messaging", headers=auth("ops"))).json()
            assert {c["name"] for c in ops["consumers"]} >= {"bridge-order", "bridge-shipment"}

        async def not_ready() -> dict[str, object] | None:
            code, body = await readiness(url)
            return body if code == 503 else None

        body = await eventually(not_ready, timeout=30, message="503 once NATS is gone")
        assert "nats" in str(body["detail"])
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_worker_probes(temporal: WorkflowEnvironment, nats_url: str) -> None:
    """The worker is ready when Temporal answers and its polling loop runs."""
    port = free_port()
    settings = settings_for(temporal, nats_url, worker_port=port)
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(settings, stop, task_queue="probe-worker"))
    try:

        async def ready() -> bool:
            code, body = await readiness(f"http://127.0.0.1:{port}")
            return code == 200 and body.get("status") == "ready"

        await eventually(ready, timeout=30, message="worker ready")
    finally:
        stop.set()
        done, _ = await asyncio.wait({task}, timeout=40)
        if not done:
            await stop_tasks([task])
        assert done, "worker stopped"
