"""Errors as RFC 9457 problem details, each with a stable `code` and a `type` URI.

The hierarchy:

    ProblemError            any failure we answer on purpose (status, code, title)
    ├── BadRequest          400  malformed request: e.g. idempotency_key_missing
    ├── Unauthorized        401  no or bad bearer token: unauthenticated
    ├── Forbidden           403  authenticated, not allowed: forbidden
    ├── NotFound            404  absent, or not the caller's to see: not_found
    ├── Conflict            409  the object's state forbids it: conflict
    ├── PreconditionFailed  412  `If-Match` names another version: precondition_failed
    ├── PayloadTooLarge     413  the body is over the service's limit: payload_too_large
    ├── Unprocessable       422  well-formed but invalid: validation_error,
    │                            idempotency_key_reused
    └── Unavailable         503  a dependency is down; retry later: unavailable

Text PostgreSQL cannot store (U+0000) is a 422 `invalid_character`. Anything else
becomes a 500 `internal_error` without internals in the body. `Problem`
is the body's schema, which every route's OpenAPI entry names (services/common/openapi.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from asyncpg.exceptions import CharacterNotInRepertoireError  # type: ignore[import-untyped]
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry import trace
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

PROBLEM_BASE = "https://waybill.dev/problems/"
PROBLEM_JSON = "application/problem+json"

log = logging.getLogger(__name__)


class ProblemError(Exception):
    """An error the API answers with a problem-details body."""

    status: int = 500
    code: str = "internal_error"
    title: str = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title or self.title)
        self.detail = detail
        if code:
            self.code = code
        if title:
            self.title = title
        self.errors = errors
        self.headers = headers


class BadRequest(ProblemError):
    status, code, title = 400, "bad_request", "Bad request"


class Unauthorized(ProblemError):
    status, code, title = 401, "unauthenticated", "Authentication required"


class Forbidden(ProblemError):
    status, code, title = 403, "forbidden", "Not allowed"


class NotFound(ProblemError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(ProblemError):
    status, code, title = 409, "conflict", "Conflict"


class PreconditionFailed(ProblemError):
    status, code, title = 412, "precondition_failed", "Precondition failed"


class PayloadTooLarge(ProblemError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class Unprocessable(ProblemError):
    status, code, title = 422, "validation_error", "Validation failed"


class Unavailable(ProblemError):
    status, code, title = 503, "unavailable", "Service unavailable"


class FieldError(BaseModel):
    """One reason a request did not validate."""

    loc: list[str | int] = Field(description="`body`, `query`, `header` or `path`, then where")
    msg: str
    type: str = Field(description="A stable error type, e.g. `missing`, `string_too_long`")


class Problem(BaseModel):
    """An RFC 9457 problem-details body, as every error is answered."""

    type: str = Field(description="A URI naming the `code`")
    title: str
    status: int
    code: str = Field(description="Stable machine-readable reason, e.g. `invalid_cursor`")
    detail: str | None = None
    instance: str | None = Field(None, description="The request's path")
    trace_id: str | None = Field(None, description="The OpenTelemetry trace of the request")
    errors: list[FieldError] | None = Field(None, description="For `validation_error`")


_STATUS_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    412: ("precondition_failed", "Precondition failed"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("validation_error", "Validation failed"),
    429: ("too_many_requests", "Too many requests"),
    503: ("unavailable", "Service unavailable"),
}


def problem_body(
    request: Request | None,
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + code,
        "title": title,
        "status": status,
        "code": code,
    }
    if detail:
        body["detail"] = detail
    if request is not None:
        body["instance"] = request.url.path
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        body["trace_id"] = format(ctx.trace_id, "032x")
    if errors:
        body["errors"] = errors
    return body


def problem_response(
    request: Request | None,
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        problem_body(request, status, code, title, detail, errors),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _validation_errors(errors: Any) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        item = {
            "loc": [str(p) for p in err.get("loc", ())],
            "msg": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        out.append(item)
    return out


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        request, exc.status, exc.code, exc.title, exc.detail, exc.errors, exc.headers
    )


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError | ValidationError)
    return problem_response(
        request,
        422,
        "validation_error",
        "Validation failed",
        "The request does not match the schema; see `errors`.",
        _validation_errors(exc.errors()),
    )


def _allowed_methods(request: Request) -> str:
    """Every method some route serves on this path: Starlette's 405 names only those
    of the first route that matched the path."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code, title = _STATUS_CODES.get(exc.status_code, ("http_error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return problem_response(request, exc.status_code, code, title, detail, headers=headers)


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and what caused it (SQLAlchemy keeps the driver's error as `orig`)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return chain


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    if any(isinstance(cause, CharacterNotInRepertoireError) for cause in _causes(exc)):
        return problem_response(
            request,
            422,
            "invalid_character",
            "Validation failed",
            "text may not contain the character U+0000",
        )
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(request, 500, "internal_error", "Internal error")


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error the app answers a problem-details body."""
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(ValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
