"""The one consumer that turns NATS events into workflow starts and signals.

Idempotency comes from Temporal itself: a start uses the deterministic workflow id
and refuses a duplicate; a signal carries the event id, and workflows ignore ids
they have already seen.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nats.aio.msg import Msg
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from services.common import events as ev
from services.common import telemetry
from services.common.bus import Bus
from services.common.envelope import Envelope
from services.common.events import Event, parse, stream_name
from services.common.inbox import JetStreamWorker
from services.common.tasks import stop_tasks
from workflows.order.models import OrderInput, Policy, ShipmentSignal, Signal
from workflows.order.workflow import OrderToDelivery
from workflows.ping.models import PingInput
from workflows.ping.workflow import PingWorkflow
from workflows.runtime import WorkflowSettings, connect, get_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StartWorkflow:
    """Start `workflow` with id `workflow_id(event)` and argument `arg(event, settings)`."""

    workflow: Any
    workflow_id: Callable[[Any], str]
    arg: Callable[[Any, WorkflowSettings], Any]


@dataclass(frozen=True)
class SignalWorkflow:
    """Signal the workflow with id `workflow_id(event)`."""

    workflow_id: Callable[[Any], str]
    signal: str
    arg: Callable[[Any, Envelope], Any]


Route = StartWorkflow | SignalWorkflow


def _order_input(event: ev.OrderPlaced, settings: WorkflowSettings) -> OrderInput:
    return OrderInput(
        order_id=event.order_id,
        customer_id=event.customer_id,
        total=event.total,
        policy=Policy(
            credit_hold_timeout_seconds=settings.credit_hold_timeout_seconds,
            backorder_timeout_seconds=settings.backorder_timeout_seconds,
            ship_partial_on_backorder_timeout=settings.ship_partial_on_backorder_timeout,
        ),
    )


def _order(event: Any) -> str:
    return f"order-{event.order_id}"


ROUTES: dict[type[Event], Route] = {
    ev.PingRequested: StartWorkflow(
        PingWorkflow.run,
        lambda e: f"ping-{e.ping_id}",
        lambda e, _: PingInput(ping_id=e.ping_id, message=e.message),
    ),
    ev.OrderPlaced: StartWorkflow(OrderToDelivery.run, _order, _order_input),
    ev.OrderCreditReleased: SignalWorkflow(
        _order, "credit_released", lambda e, env: Signal(event_id=env.id)
    ),
    ev.OrderBackorderFilled: SignalWorkflow(
        _order, "backorder_filled", lambda e, env: Signal(event_id=env.id)
    ),
    ev.ShipmentTrackingUpdated: SignalWorkflow(
        _order,
        "shipment_status",
        lambda e, env: ShipmentSignal(
            event_id=env.id,
            shipment_id=e.shipment_id,
            status=e.status,
            occurred_at=e.occurred_at,
            description=e.description,
        ),
    ),
}


class Bridge(JetStreamWorker):
    """Bridge for one domain stream."""

    def __init__(
        self,
        *,
        client: Client,
        settings: WorkflowSettings,
        task_queue: str,
        routes: dict[type[Event], Route],
        **kwargs: Any,
    ) -> None:
        self.client = client
        self.settings = settings
        self.task_queue = task_queue
        self.routes = {event.TYPE: route for event, route in routes.items()}
        super().__init__(service="bridge", subjects=sorted({e.subject() for e in routes}), **kwargs)

    async def process(self, envelope: Envelope, msg: Msg) -> None:
        route = self.routes.get(envelope.type)
        if route is None:
            return
        event = parse(envelope)
        if isinstance(route, StartWorkflow):
            try:
                await self.client.start_workflow(
                    route.workflow,
                    route.arg(event, self.settings),
                    id=route.workflow_id(event),
                    task_queue=self.task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                )
            except WorkflowAlreadyStartedError:
                log.info(
                    "workflow %s already ran; event %s is a redelivery",
                    route.workflow_id(event),
                    envelope.id,
                )
        else:
            handle = self.client.get_workflow_handle(route.workflow_id(event))
            try:
                await handle.signal(route.signal, route.arg(event, envelope))
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
                # The workflow has finished: nothing is waiting for this any more.
                log.info("no running workflow %s for %s", handle.id, envelope.type)


def bridges(
    bus: Bus,
    client: Client,
    settings: WorkflowSettings,
    task_queue: str | None = None,
    routes: dict[type[Event], Route] | None = None,
) -> list[Bridge]:
    """One bridge consumer per domain that has routes."""
    routes = ROUTES if routes is None else routes
    by_domain: dict[str, dict[type[Event], Route]] = {}
    for event, route in routes.items():
        by_domain.setdefault(event.domain(), {})[event] = route
    return [
        Bridge(
            bus=bus,
            client=client,
            settings=settings,
            task_queue=task_queue or settings.temporal_task_queue,
            routes=domain_routes,
            name=domain,
            stream=stream_name(domain),
        )
        for domain, domain_routes in by_domain.items()
    ]


async def main() -> None:
    settings = get_settings()
    telemetry.setup_tracing("bridge", settings.var_dir)
    client = await connect(settings)
    bus = Bus(settings.nats_url, "waybill-bridge")
    await bus.connect()
    workers = bridges(bus, client, settings)
    for worker in workers:
        await bus.ensure_domain_stream(worker.stream.lower())
    await bus.ensure_deadletter_stream()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(w.run()) for w in workers]
    await stop.wait()
    await stop_tasks(tasks)
    await bus.close()
    telemetry.flush()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bridge %(levelname)s %(message)s")
    asyncio.run(main())
