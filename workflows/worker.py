"""The Temporal worker process hosting every Waybill workflow and activity."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from services.common import telemetry
from services.common.tasks import Supervisor, with_deadline
from workflows.order.activities import OrderActivities
from workflows.order.workflow import OrderToDelivery
from workflows.ping.activities import PingActivities
from workflows.ping.workflow import Ping
from workflows.purchase.activities import PurchaseOrderActivities
from workflows.purchase.workflow import PurchaseOrderRun
from workflows.recall.activities import RecallActivities
from workflows.recall.workflow import Recall
from workflows.replenishment.activities import ReplenishmentActivities
from workflows.replenishment.schedule import ensure_review_schedule
from workflows.replenishment.workflow import ReplenishmentReview
from workflows.returns.activities import ReturnActivities
from workflows.returns.workflow import ReturnRun
from workflows.runtime import (
    Probes,
    WorkflowSettings,
    connect,
    get_settings,
    stop_on_signals,
    temporal_check,
    unless_stopped,
    until_connected,
)
from workflows.services import ServiceClients

log = logging.getLogger(__name__)

WORKFLOWS: Sequence[type] = (
    Ping,
    OrderToDelivery,
    Recall,
    ReturnRun,
    PurchaseOrderRun,
    ReplenishmentReview,
)


def activities(clients: ServiceClients) -> list[Callable[..., Any]]:
    ping = PingActivities(clients)
    return [
        ping.answer_ping,
        *OrderActivities(clients).all(),
        *RecallActivities(clients).all(),
        *ReturnActivities(clients).all(),
        *PurchaseOrderActivities(clients).all(),
        *ReplenishmentActivities(clients).all(),
    ]


def build_worker(
    client: Client,
    settings: WorkflowSettings,
    clients: ServiceClients,
    task_queue: str | None = None,
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue or settings.temporal_task_queue,
        workflows=list(WORKFLOWS),
        activities=activities(clients),
        max_concurrent_activities=settings.max_concurrent_activities,
        max_concurrent_local_activities=settings.max_concurrent_local_activities,
        max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
    )


async def run_worker(
    settings: WorkflowSettings, stop: asyncio.Event, task_queue: str | None = None
) -> None:
    """The worker process until `stop`: probes first, then Temporal (waiting for it if it
    is not up yet), then the Temporal worker under supervision (a crashed one is
    replaced by a new one after a back-off). Each start of the worker first makes the
    replenishment review's schedule match the settings."""
    cap = settings.restart_backoff_max_seconds
    supervisor = Supervisor(cap_seconds=cap)
    probes = Probes("worker", supervisor)
    async with probes.serving(settings.worker_host, settings.worker_port, settings):
        client = await unless_stopped(
            stop, until_connected("Temporal", lambda: connect(settings), cap)
        )
        if client is None:
            return
        clients = ServiceClients(settings)
        current: list[Worker] = []

        async def poll() -> None:
            await ensure_review_schedule(client, settings, task_queue)
            worker = build_worker(client, settings, clients, task_queue)
            current[:] = [worker]
            log.info("worker polling %s", task_queue or settings.temporal_task_queue)
            await worker.run()

        try:
            supervisor.start("worker", poll)
            probes.checks = {"temporal": temporal_check(client)}
            await stop.wait()
            if current:
                await with_deadline(current[0].shutdown(), 30, "worker shutdown")
        finally:
            await supervisor.stop()
            await clients.close()


async def main() -> None:
    settings = get_settings()
    telemetry.setup_tracing("worker", settings.var_dir)
    stop = asyncio.Event()
    stop_on_signals(stop)
    try:
        await run_worker(settings, stop)
    finally:
        telemetry.flush()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per activity call is noise
    asyncio.run(main())
