"""The periodic replenishment review: the worker keeps its Temporal schedule, and a run
of it reviews the supplier service's periodic policies."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio.client import Client, ScheduleActionStartWorkflow, ScheduleHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from services.common.tasks import stop_tasks
from services.common.workflow_names import ReplenishmentReviewWorkflow
from tests.harness import Stack, eventually
from tests.supplier.helpers import add_item, create_supplier, put_policy, signals_of
from workflows.replenishment.schedule import ensure_review_schedule
from workflows.replenishment.workflow import ReplenishmentReview
from workflows.runtime import WorkflowSettings
from workflows.worker import run_worker


def settings_for(stack: Stack, **extra: object) -> WorkflowSettings:
    values: dict[str, object] = {**stack.shared(), "worker_port": 0, **extra}
    return WorkflowSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def schedule(temporal: WorkflowEnvironment) -> AsyncIterator[ScheduleHandle]:
    """The schedule's handle, with no schedule before or after the test (the Temporal
    server is shared by the session: any worker started by `run_worker` makes one)."""
    handle = temporal.client.get_schedule_handle(ReplenishmentReviewWorkflow.SCHEDULE_ID)
    with contextlib.suppress(RPCError):
        await handle.delete()
    yield handle
    with contextlib.suppress(RPCError):
        await handle.delete()


async def interval_of(handle: ScheduleHandle) -> timedelta | None:
    try:
        description = await handle.describe()
    except RPCError:
        return None
    return description.schedule.spec.intervals[0].every


async def test_the_worker_keeps_the_schedule_and_a_run_reviews_periodic_policies(
    stack: Stack, temporal: WorkflowEnvironment, schedule: ScheduleHandle
) -> None:
    svc = await stack.start("supplier")
    await create_supplier(svc, "ACME")
    await add_item(svc, "ACME", "TEA")
    await put_policy(
        svc, "TEA", "WH-A", review_mode="periodic", review_period_days=7, min_qty=10, max_qty=40
    )
    assert await signals_of(svc, "ACME") == [], "periodic: raised only by a review"

    stop = asyncio.Event()
    settings = settings_for(stack, replenishment_review_seconds=3600)
    task = asyncio.create_task(run_worker(settings, stop))
    try:
        every = await eventually(lambda: interval_of(schedule), 30, 0.2, "the schedule")
        assert every == timedelta(hours=1)  # WAYBILL_REPLENISHMENT_REVIEW_SECONDS
        description = await schedule.describe()
        action = description.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert (action.workflow, action.task_queue) == ("ReplenishmentReview", stack.task_queue)

        await schedule.trigger()

        async def started() -> str | None:
            recent = (await schedule.describe()).info.recent_actions
            return recent[0].action.workflow_id if recent else None

        workflow_id = await eventually(started, 30, 0.2, "the triggered run")
        run = temporal.client.get_workflow_handle_for(ReplenishmentReview.run, workflow_id)
        result = await asyncio.wait_for(run.result(), 60)
        assert result.evaluated == 1
        [signal] = await signals_of(svc, "ACME")
        assert result.raised == [signal["id"]]
        assert (signal["sku"], signal["review_mode"]) == ("TEA", "periodic")
    finally:
        stop.set()
        done, _ = await asyncio.wait({task}, timeout=40)
        if not done:
            await stop_tasks([task])


async def test_ensuring_the_schedule_again_updates_it_and_keeps_a_pause(
    stack: Stack, temporal: WorkflowEnvironment, schedule: ScheduleHandle
) -> None:
    client: Client = temporal.client
    await ensure_review_schedule(client, settings_for(stack))
    assert await interval_of(schedule) == timedelta(days=1), "daily by default"
    await schedule.pause(note="supplier master data migration")

    await ensure_review_schedule(client, settings_for(stack, replenishment_review_seconds=600))
    description = await schedule.describe()
    assert description.schedule.spec.intervals[0].every == timedelta(minutes=10)
    assert description.schedule.state.paused, "an operator's pause survives a restart"

    await ensure_review_schedule(client, settings_for(stack, replenishment_review_seconds=0))
    assert await interval_of(schedule) is None, "interval 0 removes the schedule"
