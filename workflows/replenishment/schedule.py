"""The Temporal schedule that runs the periodic replenishment review.

The worker calls `ensure_review_schedule` each time it starts polling: it creates the
schedule, or updates it to the current settings when it exists (two workers starting at
once: one creates, the other updates to the same), or deletes it when the interval is 0.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from services.common.workflow_names import ReplenishmentReviewWorkflow
from workflows.replenishment.models import ReviewInput
from workflows.replenishment.workflow import ReplenishmentReview
from workflows.runtime import WorkflowSettings

log = logging.getLogger(__name__)


def review_schedule(settings: WorkflowSettings, task_queue: str) -> Schedule:
    """Every `replenishment_review_seconds`, one review run (skipped while the last still
    runs; a run gives up when the next is due)."""
    every = timedelta(seconds=settings.replenishment_review_seconds)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ReplenishmentReview.run,
            ReviewInput(timeout_seconds=settings.replenishment_review_timeout_seconds),
            id=ReplenishmentReviewWorkflow.WORKFLOW_ID,
            task_queue=task_queue,
            execution_timeout=every,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_review_schedule(
    client: Client, settings: WorkflowSettings, task_queue: str | None = None
) -> None:
    """Create or update the schedule to the settings (delete it when the interval is 0)."""
    schedule_id = ReplenishmentReviewWorkflow.SCHEDULE_ID
    if settings.replenishment_review_seconds <= 0:
        try:
            await client.get_schedule_handle(schedule_id).delete()
            log.info("schedule %s removed (interval 0)", schedule_id)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
        return
    schedule = review_schedule(settings, task_queue or settings.temporal_task_queue)
    try:
        await client.create_schedule(schedule_id, schedule)
        log.info("schedule %s created", schedule_id)
    except ScheduleAlreadyRunningError:

        def update(current: ScheduleUpdateInput) -> ScheduleUpdate:
            # Keep the state (an operator's pause and its note); take spec and action.
            state = current.description.schedule.state
            return ScheduleUpdate(schedule=dataclasses.replace(schedule, state=state))

        await client.get_schedule_handle(schedule_id).update(update)
        log.info("schedule %s updated", schedule_id)
