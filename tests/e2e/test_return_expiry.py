"""The receipt deadline, proved on Temporal's time-skipping test server: a return whose
parcel never arrives expires at the policy's deadline and its label is voided."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from services.common.temporal import interceptors
from tests.e2e.conftest import World
from tests.e2e.test_returns import delivered_order, line_no, request, wait_return
from tests.harness import BIN, eventually

pytestmark = pytest.mark.settings(
    shipment={"simulator_enabled": False},
    workflows={"backorder_timeout_seconds": 3600, "credit_hold_timeout_seconds": 3600},
)


@pytest.fixture
async def temporal() -> AsyncIterator[WorkflowEnvironment]:
    """This module's Temporal: the time-skipping test server (its own, per test)."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server"),
        data_converter=pydantic_data_converter,
        interceptors=interceptors(),
    )
    try:
        yield env
    finally:
        await env.shutdown()


async def test_a_return_never_sent_back_expires_at_its_deadline(
    world: World, temporal: WorkflowEnvironment
) -> None:
    order_id = await delivered_order(world, world.acme, ("COFFEE-1KG", 1))
    line = await line_no(world, order_id, "COFFEE-1KG")
    ret = await request(
        world.api, order_id, [{"line_no": line, "quantity": 1}], customer_id=world.acme
    )
    rid = ret["id"]
    waiting = await wait_return(world, rid, lambda r: r["status"] == "awaiting_receipt", "label")
    days = waiting["policy"]["receipt_timeout_days"]

    await temporal.sleep(timedelta(days=days - 1))
    await asyncio.sleep(1)  # time for a (wrongly) early timer's expire to land
    still = await world.api.call("returns", "GET", f"/returns/{rid}")
    assert still["status"] == "awaiting_receipt", "a day before the deadline nothing expires"

    await temporal.sleep(timedelta(days=2))
    expired = await wait_return(world, rid, lambda r: r["status"] == "expired", "expired")
    assert any(h["note"] == "not received by the deadline" for h in expired["history"])

    async def voided() -> dict[str, Any] | None:
        page = await world.api.call(
            "shipment", "GET", "/return-shipments", params={"return_id": rid}
        )
        return page if page["items"][0]["status"] == "cancelled" else None

    await eventually(voided, 30, 0.1, "the unused label voided")
