"""Inputs and outputs of the ReplenishmentReview workflow (side-effect free)."""

from __future__ import annotations

from pydantic import BaseModel


class ReviewInput(BaseModel):
    """The scheduled run's argument: how long the one review call may take."""

    timeout_seconds: float = 900.0


class ReviewResult(BaseModel):
    """What the supplier service answered: pairs evaluated, skipped, signals raised."""

    evaluated: int
    skipped: int
    raised: list[str]  # signal ids
