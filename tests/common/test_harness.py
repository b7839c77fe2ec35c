"""The test harness's port reservations: a service's port is its own from the start."""

from __future__ import annotations

import socket

import pytest

from tests.harness import Stack, reserve_port


async def test_reserved_ports_are_never_handed_to_anyone_else(stack: Stack) -> None:
    """While held, a port is skipped by every bind to port 0; the service listens on the
    reserved socket, and a stopped service's port is held again at once."""
    reserved = set(stack.ports.values())
    for _ in range(200):
        with reserve_port() as other:
            assert other.getsockname()[1] not in reserved
    order = await stack.start("order")
    assert (await order.http.get("/healthz")).status_code == 200
    await stack.stop("order")
    assert "order" in stack.reserved
    with pytest.raises(OSError), socket.socket() as intruder:
        intruder.bind(("127.0.0.1", stack.ports["order"]))
    again = await stack.start("order")
    assert (await again.http.get("/healthz")).status_code == 200


async def test_a_port_taken_by_someone_else_fails_one_start_clearly(stack: Stack) -> None:
    """A foreign listener on a service's port is an OSError at start, not a SystemExit
    escaping the event loop; the next start works once the port is free again."""
    stack.reserved.pop("customer").close()
    with socket.socket() as intruder:
        intruder.bind(("127.0.0.1", stack.ports["customer"]))
        intruder.listen()
        with pytest.raises(OSError):
            await stack.start("customer")
    customer = await stack.start("customer")
    assert (await customer.http.get("/healthz")).status_code == 200


async def test_a_service_failing_its_start_up_fails_one_test(stack: Stack) -> None:
    """uvicorn exits the process when start-up fails; under the harness that is a
    RuntimeError for this test, and the event loop the whole session shares goes on."""
    with pytest.raises(RuntimeError, match="could not start"):
        await stack.start("supplier", database_url="postgresql://nobody@127.0.0.1:1/none")
    supplier = await stack.start("supplier")
    assert (await supplier.http.get("/healthz")).status_code == 200
