"""The one consumer that turns NATS events into workflow starts and signals.

Idempotency comes from Temporal itself: a start uses the deterministic workflow id
and refuses a duplicate; a signal carries the event id, and workflows ignore ids
they have already seen.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
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
from services.common.ops import consumers_router
from services.common.tasks import Supervisor
from services.common.workflow_names import (
    OrderWorkflow,
    PingWorkflow,
    PurchaseOrderWorkflow,
    RecallWorkflow,
    ReturnWorkflow,
)
from workflows.order.models import OrderInput, Policy, ShipmentSignal, Signal
from workflows.order.workflow import OrderToDelivery
from workflows.ping.models import PingInput
from workflows.ping.workflow import Ping
from workflows.purchase.models import ChangedSignal as PurchaseOrderChanged
from workflows.purchase.models import PurchaseOrderInput
from workflows.purchase.workflow import PurchaseOrderRun
from workflows.recall.models import RecallInput, RecallSignal
from workflows.recall.workflow import Recall
from workflows.returns.models import ChangedSignal, ReturnInput, ReturnShipmentSignal
from workflows.returns.workflow import ReturnRun
from workflows.runtime import (
    Probes,
    WorkflowSettings,
    connect,
    get_settings,
    nats_check,
    stop_on_signals,
    temporal_check,
    unless_stopped,
    until_connected,
)

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
    return OrderWorkflow.id(event.order_id)


def _signal(event: Any, envelope: Envelope) -> Signal:
    return Signal(event_id=envelope.id)


def _tracking(event: ev.ShipmentTrackingUpdated, envelope: Envelope) -> ShipmentSignal:
    """The shipment service's status after a scan, with its revision."""
    return ShipmentSignal(
        event_id=envelope.id,
        shipment_id=event.shipment_id,
        status=event.status,
        occurred_at=event.occurred_at,
        description=event.description,
        revision=event.revision,
    )


def _cancelled(event: ev.ShipmentCancelled, envelope: Envelope) -> ShipmentSignal:
    """A cancelled shipment (by its workflow or a coordinator) is one more status."""
    return ShipmentSignal(
        event_id=envelope.id,
        shipment_id=event.shipment_id,
        status=event.status,
        occurred_at=envelope.time.isoformat(),
        description=event.reason,
        revision=event.revision,
    )


def _recall_input(event: ev.RecallOpened, settings: WorkflowSettings) -> RecallInput:
    return RecallInput(
        recall_id=event.recall_id,
        sku=event.sku,
        lots=event.lots,
        reason=event.reason,
        report_interval_seconds=settings.recall_report_interval_seconds,
        page_size=settings.recall_page_size,
        history_limit=settings.recall_history_limit,
    )


def _recall(event: Any) -> str:
    return RecallWorkflow.id(event.recall_id)


def _recall_signal(event: Any, envelope: Envelope) -> RecallSignal:
    return RecallSignal(event_id=envelope.id)


def _return(event: Any) -> str:
    return ReturnWorkflow.id(event.return_id)


def _return_changed(event: Any, envelope: Envelope) -> ChangedSignal:
    return ChangedSignal(event_id=envelope.id, event_type=envelope.type)


def _return_parcel(
    event: ev.ReturnShipmentTrackingUpdated | ev.ReturnShipmentCancelled, envelope: Envelope
) -> ReturnShipmentSignal:
    """The return parcel's status after a scan or its cancel, with its revision."""
    occurred_at = getattr(event, "occurred_at", None) or envelope.time.isoformat()
    return ReturnShipmentSignal(
        event_id=envelope.id,
        shipment_id=event.shipment_id,
        status=event.status,
        revision=event.revision,
        occurred_at=occurred_at,
    )


# What others do to a return wakes its workflow, which reads the return again.
RETURN_CHANGES: tuple[type[Event], ...] = (
    ev.ReturnAuthorized,
    ev.ReturnRejected,
    ev.ReturnReceived,
    ev.ReturnInspected,
    ev.ReturnCancelled,
    ev.ReturnRetryRequested,
)

RETURN_ROUTES: dict[type[Event], Route] = {
    ev.ReturnRequested: StartWorkflow(
        ReturnRun.run, _return, lambda e, _: ReturnInput(return_id=e.return_id)
    ),
    **{
        event: SignalWorkflow(_return, ReturnWorkflow.SIGNAL_CHANGED, _return_changed)
        for event in RETURN_CHANGES
    },
    ev.ReturnShipmentTrackingUpdated: SignalWorkflow(
        _return, ReturnWorkflow.SIGNAL_RETURN_SHIPMENT, _return_parcel
    ),
    ev.ReturnShipmentCancelled: SignalWorkflow(
        _return, ReturnWorkflow.SIGNAL_RETURN_SHIPMENT, _return_parcel
    ),
}


def _po(event: Any) -> str:
    return PurchaseOrderWorkflow.id(event.po_id)


def _po_changed(event: Any, envelope: Envelope) -> PurchaseOrderChanged:
    return PurchaseOrderChanged(event_id=envelope.id, event_type=envelope.type)


# Everything that moves a PO wakes its workflow, which reads the PO again.
PURCHASE_ORDER_CHANGES: tuple[type[Event], ...] = (
    ev.PurchaseOrderApproved,
    ev.PurchaseOrderAcknowledged,
    ev.PurchaseOrderShipped,
    ev.PurchaseOrderReceived,
    ev.PurchaseOrderCancelled,
)

PURCHASE_ORDER_ROUTES: dict[type[Event], Route] = {
    ev.PurchaseOrderCreated: StartWorkflow(
        PurchaseOrderRun.run,
        _po,
        lambda e, _: PurchaseOrderInput(po_id=e.po_id, ack_timeout_hours=e.ack_timeout_hours),
    ),
    **{
        event: SignalWorkflow(_po, PurchaseOrderWorkflow.SIGNAL_CHANGED, _po_changed)
        for event in PURCHASE_ORDER_CHANGES
    },
}

ROUTES: dict[type[Event], Route] = {
    ev.PingRequested: StartWorkflow(
        Ping.run,
        lambda e: PingWorkflow.id(e.ping_id),
        lambda e, _: PingInput(ping_id=e.ping_id, message=e.message),
    ),
    ev.OrderPlaced: StartWorkflow(OrderToDelivery.run, _order, _order_input),
    ev.OrderCreditReleased: SignalWorkflow(_order, OrderWorkflow.SIGNAL_CREDIT_RELEASED, _signal),
    ev.OrderBackorderFilled: SignalWorkflow(_order, OrderWorkflow.SIGNAL_BACKORDER_FILLED, _signal),
    ev.OrderRetryRequested: SignalWorkflow(_order, OrderWorkflow.SIGNAL_RETRY, _signal),
    ev.ShipmentTrackingUpdated: SignalWorkflow(
        _order, OrderWorkflow.SIGNAL_SHIPMENT_STATUS, _tracking
    ),
    ev.ShipmentCancelled: SignalWorkflow(_order, OrderWorkflow.SIGNAL_SHIPMENT_STATUS, _cancelled),
    ev.RecallOpened: StartWorkflow(Recall.run, _recall, _recall_input),
    ev.RecallConsigneeResponded: SignalWorkflow(
        _recall, RecallWorkflow.SIGNAL_RESPONDED, _recall_signal
    ),
    ev.RecallClosed: SignalWorkflow(_recall, RecallWorkflow.SIGNAL_CLOSED, _recall_signal),
    **RETURN_ROUTES,
    **PURCHASE_ORDER_ROUTES,
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
            retry=settings.retry_policy(),
            ack_wait_seconds=settings.consumer_ack_wait_seconds,
        )
        for domain, domain_routes in by_domain.items()
    ]


async def run_bridge(
    settings: WorkflowSettings, stop: asyncio.Event, task_queue: str | None = None
) -> None:
    """The bridge process until `stop`: probes first, then Temporal and NATS (waiting
    for them if they are not up yet), then one supervised consumer per domain."""
    cap = settings.restart_backoff_max_seconds
    supervisor = Supervisor(cap_seconds=cap)
    probes = Probes("bridge", supervisor)
    bus = Bus(settings.nats_url, "waybill-bridge")
    workers: list[Bridge] = []
    probes.routers.append(consumers_router(lambda: (bus if workers else None, workers)))
    async with probes.serving(settings.bridge_host, settings.bridge_port, settings):
        client = await unless_stopped(
            stop, until_connected("Temporal", lambda: connect(settings), cap)
        )
        if client is None or not await unless_stopped(
            stop, until_connected("NATS", _connected(bus), cap)
        ):
            return
        try:
            await bus.ensure_deadletter_stream()
            workers.extend(bridges(bus, client, settings, task_queue))
            for worker in workers:
                supervisor.start(worker.durable, _with_stream(bus, worker))
            probes.checks = {"temporal": temporal_check(client), "nats": nats_check(bus)}
            await stop.wait()
        finally:
            await supervisor.stop()
            await bus.close()


def _connected(bus: Bus) -> Callable[[], Awaitable[bool]]:
    async def attempt() -> bool:
        await bus.connect()
        return True

    return attempt


def _with_stream(bus: Bus, worker: Bridge) -> Callable[[], Awaitable[None]]:
    """The worker's loop, making sure its stream exists first (again after a crash)."""

    async def run() -> None:
        await bus.ensure_domain_stream(worker.stream.lower())
        await worker.run()

    return run


async def main() -> None:
    settings = get_settings()
    telemetry.setup_tracing("bridge", settings.var_dir)
    stop = asyncio.Event()
    stop_on_signals(stop)
    try:
        await run_bridge(settings, stop)
    finally:
        telemetry.flush()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bridge %(levelname)s %(message)s")
    asyncio.run(main())
