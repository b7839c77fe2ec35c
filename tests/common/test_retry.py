"""Failure classes and back-off: what is retried for ever, what is parked at once."""

from __future__ import annotations

import httpx
import pydantic
import pytest
import sqlalchemy.exc
from temporalio.service import RPCError, RPCStatusCode

from services.common.retry import Failure, PermanentError, RetryPolicy, classify


def _status(code: int) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://svc/x")
    return httpx.HTTPStatusError(
        "x", request=request, response=httpx.Response(code, request=request)
    )


def _validation() -> pydantic.ValidationError:
    class M(pydantic.BaseModel):
        n: int

    try:
        M.model_validate({"n": "x"})
    except pydantic.ValidationError as exc:
        return exc
    raise AssertionError


def _wrapped(inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise RuntimeError("handler failed") from exc
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ConnectionRefusedError(111, "refused"), Failure.TRANSIENT),
        (ConnectionResetError(104, "reset"), Failure.TRANSIENT),
        (TimeoutError(), Failure.TRANSIENT),
        (RPCError("down", RPCStatusCode.UNAVAILABLE, b""), Failure.TRANSIENT),
        (RPCError("slow", RPCStatusCode.DEADLINE_EXCEEDED, b""), Failure.TRANSIENT),
        (RPCError("full", RPCStatusCode.RESOURCE_EXHAUSTED, b""), Failure.TRANSIENT),
        (RPCError("bad", RPCStatusCode.INVALID_ARGUMENT, b""), Failure.PERMANENT),
        (sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("gone")), Failure.TRANSIENT),
        (_status(503), Failure.TRANSIENT),
        (_status(429), Failure.TRANSIENT),
        (_status(422), Failure.PERMANENT),
        (httpx.ConnectError("refused"), Failure.TRANSIENT),
        (PermanentError("no"), Failure.PERMANENT),
        (_validation(), Failure.PERMANENT),
        (KeyError("bug"), Failure.UNKNOWN),
        (_wrapped(ConnectionRefusedError(111, "refused")), Failure.TRANSIENT),
        (_wrapped(PermanentError("no")), Failure.PERMANENT),
    ],
)
def test_classify(exc: BaseException, kind: Failure) -> None:
    assert classify(exc) is kind


def test_backoff_doubles_to_its_cap_and_transient_never_gives_up() -> None:
    policy = RetryPolicy(initial_seconds=0.5, cap_seconds=60, unknown_attempts=3)
    assert [policy.delay(n) for n in (1, 2, 3, 8, 9, 10_000)] == [0.5, 1, 2, 60, 60, 60]
    assert not policy.gives_up(Failure.TRANSIENT, 10_000)
    assert policy.gives_up(Failure.PERMANENT, 1)
    assert not policy.gives_up(Failure.UNKNOWN, 2)
    assert policy.gives_up(Failure.UNKNOWN, 3)
