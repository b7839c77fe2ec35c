"""Small helpers the workflows share (side-effect free: the sandbox re-imports them)."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio.exceptions import ActivityError, ApplicationError


def permanent_problem(exc: BaseException) -> ApplicationError | None:
    """The non-retryable service answer behind a failed activity, if that is what it is."""
    if isinstance(exc, ActivityError):
        exc = exc.cause or exc
    if isinstance(exc, ApplicationError) and exc.non_retryable:
        return exc
    return None


def parse_instant(at: str) -> datetime:
    """An ISO date or datetime from a service (a date is its midnight UTC; naive is UTC)."""
    moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
