"""The contract every service's OpenAPI document states, declared once for all of them.

FastAPI documents a route's parameters, body and success answer; `complete_contract`
adds what the plumbing decides for every route, so a new service inherits it:

- every error the plumbing can answer, as `application/problem+json` with the `Problem`
  schema: 401 behind a bearer token, 403 where roles are limited, 404 with a path
  parameter, 413 with a body, 422 with any input, 400 with `Idempotency-Key` or a
  `cursor`, 412 with `If-Match`; a route adds its own (409, 503, ...) in `responses=`
  and gets the same body and content type;
- who may call: the roles `require(...)` admits, as the bearer requirement's scopes
  (OpenAPI 3.1 lets a non-OAuth scheme list role names there);
- `Idempotency-Key` required, with the shape the server accepts, where a route takes it;
- `X-Correlation-ID` on every route: optional, any string (a value the server does not
  accept is replaced, not refused), answered back;
- links for the stateful flows: from a creating POST to every operation on what it
  created (path ids from its body, `If-Match` from its `ETag`), and from a page to the
  next (`cursor` from `next_cursor`, the only cursors a list accepts).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from services.common.context import CORRELATION_HEADER, CORRELATION_MAX_LENGTH
from services.common.idempotency import KEY_MAX_LENGTH, KEY_PATTERN
from services.common.problems import PROBLEM_JSON, Problem

METHODS = ("get", "put", "post", "patch", "delete")
_WRITES = ("put", "post", "patch", "delete")
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

# The plumbing's answers: (status, why), for the routes the predicate picks.
Operation = dict[str, Any]
_IMPLIED: list[tuple[int, str, Callable[[str, Operation], object]]] = [
    (400, "`Idempotency-Key` missing or malformed", lambda _, op: _param(op, "Idempotency-Key")),
    (400, "`cursor` is not one this list handed out", lambda _, op: _param(op, "cursor")),
    (400, "The body is not UTF-8 JSON", lambda _, op: "requestBody" in op),
    (401, "No bearer token, or a bad or expired one", lambda _, op: "security" in op),
    (403, "The token's role may not call this", lambda _, op: bool(_scopes(op))),
    (404, "Not found, or not the caller's to see", lambda _, op: _param_in(op, "path")),
    (409, "The object's state forbids this change", lambda method, op: method in _WRITES),
    (412, "`If-Match` names another version", lambda _, op: _param(op, "If-Match")),
    (413, "The body is over the service's size limit", lambda _, op: "requestBody" in op),
    (
        422,
        "The request does not match the schema (`errors`), or breaks a rule it states",
        lambda _, op: "requestBody" in op or bool(op.get("parameters")),
    ),
]
_PATH_PARAM = re.compile(r"\{([^}]+)\}")
# The fields a created object's answer names it by, for the first id in a path below it.
_CREATED_KEYS = ("id", "code")


def _param(op: Operation, name: str) -> dict[str, Any] | None:
    for p in op.get("parameters", []):
        if p["name"].lower() == name.lower():
            return p
    return None


def _param_in(op: Operation, where: str) -> bool:
    return any(p["in"] == where for p in op.get("parameters", []))


def _scopes(op: Operation) -> list[str]:
    return [scope for req in op.get("security", []) for scopes in req.values() for scope in scopes]


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, Operation]]:
    return [
        (path, method, op)
        for path, item in schema.get("paths", {}).items()
        for method, op in item.items()
        if method in METHODS
    ]


def _document_errors(method: str, op: Operation) -> None:
    responses: dict[str, Any] = op.setdefault("responses", {})
    declared = {status for status, entry in responses.items() if _by_route(entry)}
    for code, why, applies in _IMPLIED:
        if applies(method, op) and str(code) not in declared:
            entry = responses.setdefault(str(code), {"description": ""})
            entry["description"] = "; or: ".join(filter(None, (entry["description"], why)))
    for status, entry in responses.items():
        if status[:1] in ("4", "5"):
            entry["content"] = {PROBLEM_JSON: {"schema": PROBLEM_REF}}
    if "503" in responses:
        responses["503"].setdefault("headers", {})["Retry-After"] = {
            "description": "Seconds to wait before trying again",
            "schema": {"type": "string"},
        }


def _by_route(entry: dict[str, Any]) -> bool:
    """Whether the route itself described this answer (FastAPI's 422 is no description)."""
    return entry.get("description") not in (None, "", "Validation Error")


def _declare_correlation_id(op: Operation) -> None:
    """Every route takes and answers the correlation id (`services/common/context.py`)."""
    if _param(op, CORRELATION_HEADER) is None:
        op.setdefault("parameters", []).append(
            {
                "name": CORRELATION_HEADER,
                "in": "header",
                "required": False,
                "description": (
                    "Ties the request to the events and workflow steps it causes. Kept "
                    f"when it has at most {CORRELATION_MAX_LENGTH} characters of "
                    "`[A-Za-z0-9._:@/+=-]`, otherwise replaced by a new id; generated "
                    "when absent."
                ),
                "schema": {"type": "string"},
            }
        )
    header = {"description": "The request's correlation id", "schema": {"type": "string"}}
    for answer in op.get("responses", {}).values():
        answer.setdefault("headers", {}).setdefault(CORRELATION_HEADER, header)


def _require_idempotency_key(op: Operation) -> None:
    param = _param(op, "Idempotency-Key")
    if param is not None:
        param["required"] = True
        param["schema"] = {
            "type": "string",
            "minLength": 1,
            "maxLength": KEY_MAX_LENGTH,
            "pattern": KEY_PATTERN,
        }


def _schema_of(schema: dict[str, Any], media: dict[str, Any] | None) -> dict[str, Any]:
    """The (dereferenced) JSON schema of a response's `application/json` content."""
    found: dict[str, Any] = ((media or {}).get("application/json") or {}).get("schema") or {}
    ref = found.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        resolved: dict[str, Any] = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
        return resolved
    return found


def _success(op: Operation) -> tuple[str, dict[str, Any]] | None:
    for status, entry in op.get("responses", {}).items():
        if status.startswith("2"):
            return status, entry
    return None


def _add_links(schema: dict[str, Any]) -> None:
    operations = _operations(schema)
    for path, method, op in operations:
        success = _success(op)
        if success is None:
            continue
        _, answer = success
        body = _schema_of(schema, answer.get("content")).get("properties", {})
        links: dict[str, Any] = answer.setdefault("links", {})
        if method == "post" and _param(op, "Idempotency-Key"):
            for target_path, _target_method, target in operations:
                if not target_path.startswith(path + "/{") or "operationId" not in target:
                    continue
                params = _link_params(target_path, target, body, answer)
                if params is not None:
                    links[target["operationId"]] = {
                        "operationId": target["operationId"],
                        "parameters": params,
                    }
        if _param(op, "cursor") and "next_cursor" in body and "operationId" in op:
            links["next_page"] = {
                "operationId": op["operationId"],
                "parameters": {"query.cursor": "$response.body#/next_cursor"},
            }
        if not links:
            del answer["links"]


def _link_params(
    path: str, target: Operation, body: dict[str, Any], answer: dict[str, Any]
) -> dict[str, str] | None:
    """How a created object's answer fills `target`'s parameters; None when it cannot."""
    params: dict[str, str] = {}
    names = _PATH_PARAM.findall(path)
    for name in names:
        keys = [name] if name != names[0] else [name, *_CREATED_KEYS]
        field = next((key for key in keys if key in body), None)
        if field is None:
            return None
        params[f"path.{name}"] = f"$response.body#/{field}"
    if _param(target, "If-Match") and "ETag" in answer.get("headers", {}):
        params["header.If-Match"] = "$response.header.ETag"
    return params


def complete_contract(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with the contract the plumbing declares (cached)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(problem.pop("$defs", {}))
    components["Problem"] = problem
    for _path, method, op in _operations(schema):
        _require_idempotency_key(op)
        _document_errors(method, op)
        _declare_correlation_id(op)
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    _add_links(schema)
    app.openapi_schema = schema
    return schema


def install_contract(app: FastAPI) -> None:
    """Serve `complete_contract` as the app's `/openapi.json`."""
    app.openapi = lambda: complete_contract(app)  # type: ignore[method-assign]
