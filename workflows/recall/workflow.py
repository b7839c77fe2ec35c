"""Recall workflow (`recall-{id}`), started by the bridge on `returns.recall.opened`.

1. quarantine: each lot becomes `recalled` in the order service's ledger (only released
   lots are reserved or picked; open reservations move);
2. trace: each lot's forward trace a page at a time (`recall.trace_page`: stops the
   page's undispatched shipments, then the returns service records consignees, recall
   returns and notices in one transaction); only cursors and counts enter the history,
   so 10,000 consignees are 20 activities of 500;
3. `recall.fanned_out` (`open → in_progress`);
4. follow: every `report_interval_seconds`, or at once when a consignee responds, the
   report is computed and stored; the recall closes itself when the effectiveness target
   is met; the coordinator's close (`returns.recall.closed`, a signal) ends the run.

The run continues as new when Temporal suggests it or the history passes
`history_limit` events (5,000), carrying its phase and cursor. A step that fails for good puts
the reason on the recall (`attention`) and the run waits for the coordinator to close it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from services.common.statuses import RecallStatus
    from services.common.workflow_names import RecallWorkflow
    from workflows.recall.activities import RecallActivities
    from workflows.recall.models import (
        AttentionIn,
        CloseIn,
        LotStatusIn,
        RecallInput,
        RecallSignal,
        RecallStep,
        TracePageIn,
    )

SEEN_KEEP = 100
P = TypeVar("P")
R = TypeVar("R")


async def _step(activity: Callable[[RecallActivities, P], Awaitable[R]], arg: P) -> R:
    """Run one activity: retried with back-off while it fails transiently."""
    return await workflow.execute_activity_method(
        activity,
        arg,
        start_to_close_timeout=timedelta(seconds=120),
        retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
    )


@workflow.defn(name=RecallWorkflow.NAME)
class Recall:
    def __init__(self) -> None:
        self._closed = False
        self._wake = False
        self._seen: list[str] = []
        self._phase = "quarantine"

    @workflow.signal(name=RecallWorkflow.SIGNAL_CLOSED)
    def closed(self, signal: RecallSignal) -> None:
        self._closed = True

    @workflow.signal(name=RecallWorkflow.SIGNAL_RESPONDED)
    def responded(self, signal: RecallSignal) -> None:
        if signal.event_id not in self._seen:
            self._seen = [*self._seen, signal.event_id][-SEEN_KEEP:]
            self._wake = True

    @workflow.query(name=RecallWorkflow.QUERY_STATUS)
    def status(self) -> str:
        return "closed" if self._closed else self._phase

    @workflow.run
    async def run(self, arg: RecallInput) -> str:
        self._seen = list(arg.seen)
        self._phase = arg.phase
        try:
            if arg.phase == "quarantine":
                for lot in arg.lots:
                    await _step(
                        RecallActivities.quarantine_lot,
                        LotStatusIn(
                            recall_id=arg.recall_id, sku=arg.sku, lot=lot, reason=arg.reason
                        ),
                    )
                arg.phase = self._phase = "trace"
            while arg.phase == "trace":
                if self._closed:
                    return RecallStatus.CLOSED
                if arg.lot_index >= len(arg.lots):
                    await _step(RecallActivities.fanned_out, RecallStep(recall_id=arg.recall_id))
                    arg.phase = self._phase = "follow"
                    break
                page = await _step(
                    RecallActivities.trace_page,
                    TracePageIn(
                        recall_id=arg.recall_id,
                        sku=arg.sku,
                        lot=arg.lots[arg.lot_index],
                        cursor=arg.cursor,
                        limit=arg.page_size,
                    ),
                )
                arg.traced += page.consignees_created
                if page.next_cursor is None:
                    arg.lot_index, arg.cursor = arg.lot_index + 1, None
                else:
                    arg.cursor = page.next_cursor
                self._continue_if_long(arg)
            return await self._follow(arg)
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == "recall_closed":
                return RecallStatus.CLOSED
            await _step(
                RecallActivities.attention,
                AttentionIn(recall_id=arg.recall_id, reason=f"{arg.phase}: {cause or err}"),
            )
            await workflow.wait_condition(lambda: self._closed)
            return RecallStatus.CLOSED

    async def _follow(self, arg: RecallInput) -> str:
        while not self._closed:
            report = await _step(
                RecallActivities.publish_report, RecallStep(recall_id=arg.recall_id)
            )
            if report.status == RecallStatus.CLOSED:
                return RecallStatus.CLOSED
            if report.target_met:
                await _step(
                    RecallActivities.close,
                    CloseIn(
                        recall_id=arg.recall_id,
                        reason=f"effectiveness target met ({report.effectiveness}%)",
                    ),
                )
                return RecallStatus.CLOSED
            self._wake = False
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._closed or self._wake,
                    timeout=timedelta(seconds=arg.report_interval_seconds),
                )
            self._continue_if_long(arg)
        return RecallStatus.CLOSED

    def _continue_if_long(self, arg: RecallInput) -> None:
        info = workflow.info()
        long = info.get_current_history_length() > arg.history_limit
        if long or info.is_continue_as_new_suggested():
            arg.seen = self._seen
            workflow.continue_as_new(arg)
