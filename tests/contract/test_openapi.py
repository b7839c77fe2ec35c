"""What the shared plumbing declares in every service's OpenAPI document, and its rules."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness import SERVICES, USE_POSTGRES, Stack, auth, create_service_app, settings_class

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def document(service: str) -> dict[str, Any]:
    app = create_service_app(service, settings_class(service)(jwt_secret="contract"))
    return app.openapi()


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(p, m, op) for p, item in doc["paths"].items() for m, op in item.items()]


@pytest.mark.parametrize("service", SERVICES)
def test_every_error_answer_is_problem_json(service: str) -> None:
    """Each 4xx/5xx answer names the Problem schema as application/problem+json."""
    doc = document(service)
    assert "Problem" in doc["components"]["schemas"]
    for path, method, op in operations(doc):
        errors = {s: r for s, r in op["responses"].items() if s[0] in "45"}
        for status, answer in errors.items():
            assert answer["content"] == PROBLEM, (method, path, status)
        if "security" in op:
            assert {"401", "403"} <= set(errors), (method, path)
        if "requestBody" in op:
            assert {"400", "413", "422"} <= set(errors), (method, path)


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_takes_and_answers_the_correlation_id(service: str) -> None:
    """X-Correlation-ID is an optional header of every operation and of every answer."""
    for path, method, op in operations(document(service)):
        [param] = [p for p in op["parameters"] if p["name"] == "X-Correlation-ID"]
        assert param["in"] == "header" and param["required"] is False, (method, path)
        for status, answer in op["responses"].items():
            assert "X-Correlation-ID" in answer.get("headers", {}), (method, path, status)


def test_cancel_declares_the_workflow_outage() -> None:
    cancel = document("order")["paths"]["/orders/{order_id}/cancel"]["post"]
    assert "Retry-After" in cancel["responses"]["503"]["headers"]


def test_creating_posts_require_idempotency_key_and_link_to_what_they_made() -> None:
    doc = document("customer")
    create = doc["paths"]["/customers"]["post"]
    [key] = [p for p in create["parameters"] if p["name"] == "Idempotency-Key"]
    assert key["required"] is True and key["schema"]["maxLength"] == 255
    links = create["responses"]["201"]["links"]
    patch = doc["paths"]["/customers/{customer_id}"]["patch"]
    assert links[patch["operationId"]]["parameters"] == {
        "path.customer_id": "$response.body#/id",
        "header.If-Match": "$response.header.ETag",
    }
    listing = doc["paths"]["/customers"]["get"]["responses"]["200"]["links"]["next_page"]
    assert listing["parameters"] == {"query.cursor": "$response.body#/next_cursor"}


def test_roles_are_the_bearer_scopes() -> None:
    doc = document("customer")
    check = doc["paths"]["/customers/{customer_id}/credit-checks"]["post"]
    assert check["security"] == [{"HTTPBearer": ["service"]}]
    patch = doc["paths"]["/customers/{customer_id}"]["patch"]["requestBody"]
    body = doc["components"]["schemas"][
        patch["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    ]
    assert body["minProperties"] == 1


@pytest.mark.skipif(not USE_POSTGRES, reason="SQLite stores U+0000")
async def test_nul_in_text_is_422_not_500(stack: Stack) -> None:
    svc = await stack.start("customer")
    response = await svc.http.post(
        "/customers",
        json={"name": "Acme\u0000", "kind": "b2b"},
        headers={**auth("coordinator"), "Idempotency-Key": "nul"},
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_character"
