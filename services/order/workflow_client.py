"""The order service's line to its order-to-delivery workflow (cancel update, live step)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from services.common.problems import Conflict, Unavailable
from services.common.settings import ServiceSettings
from services.common.temporal import interceptors
from services.common.workflow_names import OrderWorkflow


class WorkflowGateway:
    """Connects lazily, so the service starts (and reads work) while Temporal is down."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await Client.connect(
                        self.settings.temporal_address,
                        namespace=self.settings.temporal_namespace,
                        data_converter=pydantic_data_converter,
                        interceptors=interceptors(),
                    )
                except RuntimeError as exc:
                    raise Unavailable(
                        "the workflow engine is unreachable; try again shortly",
                        headers={"Retry-After": "5"},
                    ) from exc
            return self._client

    async def cancel(self, order_id: str, reason: str) -> dict[str, Any] | None:
        """Ask the workflow to cancel; None when no workflow runs for the order."""
        handle = (await self.client()).get_workflow_handle(OrderWorkflow.id(order_id))
        try:
            result: dict[str, Any] = await handle.execute_update(
                OrderWorkflow.UPDATE_CANCEL, {"reason": reason}, result_type=dict
            )
            return result
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError):
                raise Conflict(cause.message, code=cause.type or "cancel_refused") from exc
            raise
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            if exc.status == RPCStatusCode.FAILED_PRECONDITION:
                return None  # the workflow already finished
            raise Unavailable(
                f"the workflow engine did not take the cancel: {exc.message}",
                headers={"Retry-After": "5"},
            ) from exc

    async def live_step(self, order_id: str) -> dict[str, Any] | None:
        """The workflow's own view (query `status`), or None when it is not reachable."""
        try:
            handle = (await self.client()).get_workflow_handle(OrderWorkflow.id(order_id))
            result: dict[str, Any] = await asyncio.wait_for(
                handle.query(
                    OrderWorkflow.QUERY_STATUS, result_type=dict, rpc_timeout=timedelta(seconds=2)
                ),
                timeout=3,
            )
            return result
        except Exception:
            return None
