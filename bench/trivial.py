"""The trivial workflow of the Temporal baseline: it returns its argument at once.

Kept alone in this module because the workflow sandbox re-imports it.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow


@workflow.defn(name="BenchTrivial")
class Trivial:
    """No activities, no timers: one workflow task from start to completion."""

    @workflow.run
    async def run(self, number: int) -> int:
        return number


@workflow.defn(name="BenchTrivialActivities")
class TrivialActivities:
    """`count` no-op activities one after another: the baseline of a workflow that fans
    out in that many steps (the recall bench)."""

    @workflow.run
    async def run(self, count: int) -> int:
        for i in range(count):
            await workflow.execute_activity(
                "bench.noop", i, start_to_close_timeout=timedelta(seconds=30)
            )
        return count
