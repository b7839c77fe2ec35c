"""The review activity: one call to the supplier service, which evaluates every periodic
policy in chunks and raises the signals needed (repeat-safe: a pair with an open signal
is not signalled twice)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from workflows.replenishment.models import ReviewInput, ReviewResult
from workflows.services import ServiceClients


class ReplenishmentActivities:
    def __init__(self, clients: ServiceClients) -> None:
        self.clients = clients

    def all(self) -> list[Callable[..., Any]]:
        return [self.review]

    @activity.defn(name="replenishment.review")
    async def review(self, req: ReviewInput) -> ReviewResult:
        body = await self.clients.call(
            "supplier", "POST", "/internal/replenishment/review", time_limit=req.timeout_seconds
        )
        return ReviewResult(
            evaluated=body["evaluated"],
            skipped=len(body["skipped"]),
            raised=[str(s["id"]) for s in body["raised"]],
        )
