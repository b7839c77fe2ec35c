"""Ping workflow (`ping-{id}`): one activity that answers the ping in the order service."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from services.common.workflow_names import PingWorkflow
    from workflows.ping.activities import PingActivities
    from workflows.ping.models import AnswerPing, PingInput, PingResult


@workflow.defn(name=PingWorkflow.NAME)
class Ping:
    @workflow.run
    async def run(self, ping: PingInput) -> PingResult:
        return await workflow.execute_activity_method(
            PingActivities.answer_ping,
            AnswerPing(ping_id=ping.ping_id, workflow_id=workflow.info().workflow_id),
            start_to_close_timeout=timedelta(seconds=30),
        )
