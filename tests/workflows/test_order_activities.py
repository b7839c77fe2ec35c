"""The order workflow's activities against the real order service: a re-run (Temporal
re-runs local activities whose workflow task failed) changes nothing twice."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import workflow_settings
from tests.harness import RunningService, Stack, auth
from tests.order.test_orders import body, seeded
from workflows.order.activities import OrderActivities, shipment_lines
from workflows.order.models import Alloc, NoteIn
from workflows.services import ServiceClients


@pytest.fixture
async def activities(stack: Stack) -> AsyncIterator[OrderActivities]:
    clients = ServiceClients(workflow_settings(stack))
    yield OrderActivities(clients)
    await clients.close()


async def test_a_rerun_task_step_opens_one_task(stack: Stack, activities: OrderActivities) -> None:
    order: RunningService = await seeded(stack)
    r = await order.http.post(
        "/orders", json=body(), headers={**auth("coordinator"), "Idempotency-Key": "t"}
    )
    order_id = r.json()["id"]
    task = NoteIn(order_id=order_id, kind="shipment_exception", detail="lost", key="exception:s1")
    await activities.open_task(task)
    await activities.open_task(task)  # the same step, re-run
    tasks = await order.http.get(
        "/tasks", params={"order_id": order_id}, headers=auth("coordinator")
    )
    assert [t["kind"] for t in tasks.json()["items"]] == ["shipment_exception"]


def test_shipment_lines_carry_the_skus_weight() -> None:
    """Packing uses the catalogue's weight the pick answered, not the 500 g default."""
    lots = [
        Alloc(
            line_no=1, sku="COFFEE", warehouse_id="W", lot="A", quantity=2, unit_weight_grams=1000
        ),
        Alloc(
            line_no=1, sku="COFFEE", warehouse_id="W", lot="B", quantity=1, unit_weight_grams=1000
        ),
        Alloc(line_no=2, sku="MUG", warehouse_id="W", lot="M", quantity=1),
    ]
    assert shipment_lines(lots) == [
        {
            "line_no": 1,
            "sku": "COFFEE",
            "quantity": 3,
            "lots": [{"lot": "A", "quantity": 2}, {"lot": "B", "quantity": 1}],
            "unit_weight_grams": 1000,
        },
        {"line_no": 2, "sku": "MUG", "quantity": 1, "lots": [{"lot": "M", "quantity": 1}]},
    ]
