"""ReplenishmentReview workflow, started by the Temporal schedule `replenishment-review`
(made or updated by the worker at start, `replenishment_review_seconds` apart).

One activity: the supplier service's periodic review. It is a regular (not local)
activity because a review of 100,000 pairs takes longer than a workflow task should;
transient failures retry with back-off until the next scheduled run is due. The
schedule skips a run while the previous one is still going.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from services.common.workflow_names import ReplenishmentReviewWorkflow
    from workflows.replenishment.activities import ReplenishmentActivities
    from workflows.replenishment.models import ReviewInput, ReviewResult


@workflow.defn(name=ReplenishmentReviewWorkflow.NAME)
class ReplenishmentReview:
    @workflow.run
    async def run(self, inp: ReviewInput) -> ReviewResult:
        result: ReviewResult = await workflow.execute_activity_method(
            ReplenishmentActivities.review,
            inp,
            start_to_close_timeout=timedelta(seconds=inp.timeout_seconds + 30),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=5)
            ),
        )
        return result
