"""The whole system with demo data, and a carrier that scans on the test's command."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from cli.demo import Api, seed
from services.common.workflow_names import OrderWorkflow
from services.shipment.carriers.base import SIGNATURE_HEADER, sign
from tests.harness import Stack, eventually, token

HISTORIES = Path(__file__).parent.parent / "workflows" / "histories"


@dataclass
class World:
    """A running system seeded with the demo catalogue, stock and customers."""

    stack: Stack
    api: Api
    customers: dict[str, str]
    temporal: Client

    @property
    def acme(self) -> str:
        return self.customers["Acme Logistics GmbH"]

    @property
    def jane(self) -> str:
        return self.customers["Jane Doe"]

    @property
    def globex(self) -> str:
        return self.customers["Globex Retail"]

    async def place(self, customer_id: str, *lines: tuple[str, int]) -> str:
        order = await self.api.call(
            "order",
            "POST",
            "/orders",
            {
                "customer_id": customer_id,
                "ship_to": {
                    "name": "Receiver",
                    "line1": "Main 1",
                    "city": "Hamburg",
                    "postal_code": "20457",
                    "country": "DE",
                },
                "lines": [{"sku": s, "quantity": q} for s, q in lines],
            },
            key=str(uuid.uuid4()),
        )
        return str(order["id"])

    async def status(self, order_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.api.call("order", "GET", f"/orders/{order_id}/status")
        return result

    async def wait_status(self, order_id: str, *wanted: str, seconds: float = 30) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            s = await self.status(order_id)
            return s if s["status"] in wanted else None

        result: dict[str, Any] = await eventually(reached, seconds, 0.1, f"order in {wanted}")
        return result

    async def wait_shipments(self, order_id: str, count: int) -> list[dict[str, Any]]:
        async def created() -> list[dict[str, Any]] | None:
            shipments = (await self.status(order_id))["shipments"]
            return shipments if len(shipments) == count else None

        result: list[dict[str, Any]] = await eventually(created, 30, 0.1, f"{count} shipments")
        return result

    async def scan(
        self,
        tracking_number: str,
        *codes: str,
        start: datetime | None = None,
        ids: list[str] | None = None,
    ) -> dict[str, Any]:
        """Push carrier scans (raw codes) one minute apart through the signed webhook."""
        start = start or datetime.now(UTC)
        events = [
            {
                "id": (ids[i] if ids else str(uuid.uuid4())),
                "tracking_number": tracking_number,
                "code": code,
                "occurred_at": (start + timedelta(minutes=i)).isoformat(),
                "location": None,
                "description": None,
            }
            for i, code in enumerate(codes)
        ]
        raw = json.dumps({"carrier": "simulated", "events": events}).encode()
        shipment = self.stack.services["shipment"]
        secret = shipment.app.state.settings.resolved_webhook_secret()
        r = await shipment.http.post(
            "/carriers/simulated/webhook",
            content=raw,
            headers={SIGNATURE_HEADER: sign(secret, raw), "Content-Type": "application/json"},
        )
        assert r.status_code in (200, 202), r.text
        body: dict[str, Any] = r.json()
        return body

    async def return_shipment(self, return_id: str, seconds: float = 30) -> dict[str, Any]:
        """The return's live return shipment, once its workflow has bought the label."""

        async def bought() -> dict[str, Any] | None:
            page = await self.api.call(
                "shipment", "GET", "/return-shipments", params={"return_id": return_id}
            )
            live = [s for s in page["items"] if s["status"] != "cancelled"]
            return live[0] if live else None

        result: dict[str, Any] = await eventually(
            bought, seconds, 0.1, f"return shipment of {return_id}"
        )
        return result

    async def scan_return(
        self, return_id: str, *codes: str, start: datetime | None = None
    ) -> dict[str, Any]:
        """Push carrier scans for the return's return shipment (e.g. "IR", "PU", "DL":
        delivered at the warehouse, the receipt signal); returns the webhook's answer."""
        shipment = await self.return_shipment(return_id)
        return await self.scan(shipment["tracking_number"], *codes, start=start)

    async def receive(self, warehouse_id: str, sku: str, lot: str, quantity: int) -> None:
        """Book goods in (a fresh Idempotency-Key each time)."""
        await self.api.call(
            "order",
            "POST",
            "/stock/receipts",
            {"warehouse_id": warehouse_id, "sku": sku, "lot": lot, "quantity": quantity},
            key=str(uuid.uuid4()),
        )

    async def keep_history(self, order_id: str, name: str) -> None:
        """With WAYBILL_RECORD_HISTORIES=1, save the order workflow's history for the
        replay test (tests/workflows/test_replay.py), which proves that a changed
        workflow still replays what is already running."""
        if not os.environ.get("WAYBILL_RECORD_HISTORIES"):
            return
        history = await self.temporal.get_workflow_handle(
            OrderWorkflow.id(order_id)
        ).fetch_history()
        HISTORIES.mkdir(exist_ok=True)
        (HISTORIES / f"order_{name}.json").write_text(history.to_json())

    async def availability(self, sku: str) -> dict[str, int]:
        """Available quantity per warehouse."""
        body = await self.api.call("order", "GET", "/stock/availability", params={"sku": sku})
        items = body["items"] if isinstance(body, dict) else body
        return {w["warehouse_id"]: w["available"] for w in items}


@pytest.fixture
async def world(system: Stack, temporal: WorkflowEnvironment) -> AsyncIterator[World]:
    urls = {name: svc.url for name, svc in system.services.items()}
    api = Api(urls, token("coordinator", subject="e2e"))
    customers = await seed(api)
    yield World(system, api, customers, temporal.client)
    await api.close()
