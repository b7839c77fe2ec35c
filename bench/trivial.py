"""The trivial workflow of the Temporal baseline: it returns its argument at once.

Kept alone in this module because the workflow sandbox re-imports it.
"""

from __future__ import annotations

from temporalio import workflow


@workflow.defn(name="BenchTrivial")
class Trivial:
    """No activities, no timers: one workflow task from start to completion."""

    @workflow.run
    async def run(self, number: int) -> int:
        return number
