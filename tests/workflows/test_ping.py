"""The spine end to end: HTTP -> outbox -> NATS -> bridge -> Temporal -> activity -> HTTP."""

from __future__ import annotations

import uuid

from temporalio.testing import WorkflowEnvironment

from services.common import telemetry
from services.common.envelope import Envelope
from services.common.events import PingRequested
from tests.conftest import TRACE_DIR
from tests.harness import Stack, auth, eventually


async def start_ping(system: Stack, key: str) -> dict[str, object]:
    order = system.services["order"]
    r = await order.http.post(
        "/diagnostics/pings",
        json={"message": "through the spine"},
        headers={**auth("ops"), "Idempotency-Key": key},
    )
    assert r.status_code == 202, r.text
    ping: dict[str, object] = r.json()
    return ping


async def wait_answered(system: Stack, ping_id: object) -> dict[str, object]:
    order = system.services["order"]

    async def answered() -> dict[str, object] | None:
        body: dict[str, object] = (
            await order.http.get(f"/diagnostics/pings/{ping_id}", headers=auth("ops"))
        ).json()
        return body if body["status"] == "answered" else None

    result: dict[str, object] = await eventually(answered, timeout=30, message="ping answered")
    return result


async def test_workflow_started_through_bridge_shares_the_request_trace(system: Stack) -> None:
    """The ping completes, and every span it caused, across NATS and Temporal, carries
    the trace id of the HTTP request that started it."""
    ping = await start_ping(system, str(uuid.uuid4()))
    done = await wait_answered(system, ping["id"])
    assert done["workflow_id"] == f"ping-{ping['id']}"
    trace_id = ping["trace_id"]
    assert isinstance(trace_id, str) and len(trace_id) == 32

    def spans_seen() -> list[str] | None:
        telemetry.flush()
        names = [s["name"] for s in telemetry.load_spans(TRACE_DIR, trace_id)]
        return names if "CompleteWorkflow:Ping" in names else None

    names = await eventually(spans_seen, message="workflow spans exported")
    for expected in (
        "POST /diagnostics/pings",
        "order.ping.requested publish",
        "order.ping.requested process",
        "StartWorkflow:Ping",
        "RunWorkflow:Ping",
        "RunActivity:answer_ping",
        "POST /diagnostics/pings/{ping_id}/answer",
        "order.ping.answered publish",
    ):
        assert expected in names, f"{expected} missing from {names}"
    tree = telemetry.render_tree(telemetry.load_spans(TRACE_DIR, trace_id))
    assert tree.splitlines()[0].startswith("POST /diagnostics/pings")


async def test_redelivered_start_event_does_not_run_the_workflow_twice(
    system: Stack, temporal: WorkflowEnvironment
) -> None:
    """The bridge gets the same event again after the workflow finished: no second run."""
    ping = await start_ping(system, str(uuid.uuid4()))
    await wait_answered(system, ping["id"])
    event = PingRequested(ping_id=str(ping["id"]), message="again")
    copy = Envelope.new(
        source="/tests", type=event.TYPE, subject=event.ping_id, data=event.model_dump()
    )
    bus = system.services["order"].runtime.bus
    await bus.publish(copy.nats_subject, copy.model_dump_json().encode(), copy.id)
    marker = await start_ping(system, str(uuid.uuid4()))
    await wait_answered(system, marker["id"])

    async def runs() -> list[object]:
        query = f"WorkflowId = 'ping-{ping['id']}'"
        return [wf async for wf in temporal.client.list_workflows(query)]

    assert len(await eventually(runs, message="visibility")) == 1
