"""The Recall workflow's activities against the real services: an undispatched shipment
is stopped (again harmlessly on a re-run), a dispatched one stays a consignee."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from tests.conftest import workflow_settings
from tests.harness import Stack, auth
from tests.shipment.helpers import created, push, scan
from workflows.recall.activities import RecallActivities
from workflows.services import ServiceClients


@pytest.fixture
async def activities(stack: Stack) -> AsyncIterator[RecallActivities]:
    clients = ServiceClients(workflow_settings(stack))
    yield RecallActivities(clients)
    await clients.close()


async def test_an_undispatched_shipment_is_stopped_once(
    stack: Stack, activities: RecallActivities
) -> None:
    shipment = await stack.start("shipment")
    pending = await created(shipment)
    assert await activities._cancel(pending["id"], "r-1") is True
    assert await activities._cancel(pending["id"], "r-1") is True  # the activity re-ran
    r = await shipment.http.get(f"/shipments/{pending['id']}", headers=auth("coordinator"))
    assert r.json()["status"] == "cancelled"


async def test_a_dispatched_shipment_stays_a_consignee(
    stack: Stack, activities: RecallActivities
) -> None:
    shipment = await stack.start("shipment")
    gone = await created(shipment)
    r = await push(shipment, [scan(gone["tracking_number"], "PU", datetime.now(UTC))])
    assert r.status_code in (200, 202), r.text
    assert await activities._cancel(gone["id"], "r-1") is False
