"""Ping activities: call the order service (idempotent: answering twice is a no-op)."""

from __future__ import annotations

from temporalio import activity

from workflows.ping.models import AnswerPing, PingResult
from workflows.services import ServiceClients


class PingActivities:
    def __init__(self, clients: ServiceClients) -> None:
        self.clients = clients

    @activity.defn(name="answer_ping")
    async def answer_ping(self, req: AnswerPing) -> PingResult:
        body = await self.clients.call(
            "order",
            "POST",
            f"/diagnostics/pings/{req.ping_id}/answer",
            json={"workflow_id": req.workflow_id},
        )
        return PingResult(ping_id=body["id"], status=body["status"])
