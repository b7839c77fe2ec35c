"""The Temporal worker process hosting every Waybill workflow and activity."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from services.common import telemetry
from workflows.order.activities import OrderActivities
from workflows.order.workflow import OrderToDelivery
from workflows.ping.activities import PingActivities
from workflows.ping.workflow import PingWorkflow
from workflows.runtime import WorkflowSettings, connect, get_settings
from workflows.services import ServiceClients

WORKFLOWS: Sequence[type] = (PingWorkflow, OrderToDelivery)


def activities(clients: ServiceClients) -> list[Callable[..., Any]]:
    ping = PingActivities(clients)
    return [ping.answer_ping, *OrderActivities(clients).all()]


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


async def main() -> None:
    settings = get_settings()
    telemetry.setup_tracing("worker", settings.var_dir)
    client = await connect(settings)
    clients = ServiceClients(settings)
    worker = build_worker(client, settings, clients)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(worker.shutdown()))
    logging.getLogger(__name__).info("worker polling %s", settings.temporal_task_queue)
    try:
        await worker.run()
    finally:
        await clients.close()
        telemetry.flush()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per activity call is noise
    asyncio.run(main())
