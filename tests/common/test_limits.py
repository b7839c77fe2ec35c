"""The request body limit: refused by its `Content-Length`, or while a chunked body is read."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest

from tests.harness import RunningService, Stack, auth

LIMIT = 4096


@pytest.fixture
async def customer_svc(stack: Stack) -> RunningService:
    return await stack.start("customer", max_body_bytes=LIMIT)


def _body(size: int) -> bytes:
    return b'{"name": "' + b"x" * (size - 12) + b'"}'


async def test_declared_length_over_the_limit_is_413(customer_svc: RunningService) -> None:
    """A `Content-Length` over the limit is refused before the route runs."""
    response = await customer_svc.http.post(
        "/customers",
        content=_body(LIMIT + 1),
        headers={**auth("coordinator"), "Idempotency-Key": "k", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "payload_too_large"


async def test_chunked_body_is_refused_while_it_is_read(customer_svc: RunningService) -> None:
    """A chunked body that crosses the limit is answered 413 before it has even ended."""
    url = urlsplit(customer_svc.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    headers = {
        **auth("coordinator"),
        "Host": url.netloc,
        "Idempotency-Key": "chunked",
        "Content-Type": "application/json",
        "Transfer-Encoding": "chunked",
    }
    head = "POST /customers HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(head.encode() + b"\r\n")
    chunk = b"x" * 1024
    for _ in range(LIMIT // len(chunk) + 2):  # past the limit, and no final empty chunk
        writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    await writer.drain()
    try:
        status_line = await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
    assert status_line.split()[1] == b"413"


async def test_a_body_within_the_limit_is_served(customer_svc: RunningService) -> None:
    response = await customer_svc.http.post(
        "/customers",
        json={"name": "Acme", "kind": "b2b"},
        headers={**auth("coordinator"), "Idempotency-Key": "small"},
    )
    assert response.status_code == 201
