"""Labels are bought outside the database transaction, once per shipment request."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from datetime import date
from typing import ClassVar

import httpx
import pytest
import sqlalchemy as sa

from services.common.db import Database
from services.shipment.carriers.base import (
    Label,
    LabelAddress,
    LabelRequest,
    register,
    unregister,
)
from services.shipment.carriers.simulated import SimulatedCarrier
from services.shipment.models import Shipment
from services.shipment.settings import ShipmentSettings
from services.shipment.timing import ServiceLevel
from tests.harness import Stack, auth, eventually, service_process
from tests.shipment.helpers import create_shipment, outbox_events, shipment_body

LABEL_SECONDS = 1.5


class SlowCarrier(SimulatedCarrier):
    """A carrier whose label API takes its time, and which remembers what it sold."""

    code = "slow-test"
    name = "Slow carrier (tests)"
    sold: ClassVar[dict[str, str]] = {}
    voided: ClassVar[set[str]] = set()
    buying: ClassVar[asyncio.Event | None] = None

    async def create_label(self, shipment: LabelRequest) -> Label:
        if SlowCarrier.buying is not None:
            SlowCarrier.buying.set()
        await asyncio.sleep(LABEL_SECONDS)
        label = await super().create_label(shipment)
        SlowCarrier.sold[shipment.shipment_id] = label.tracking_number
        return label

    async def cancel(self, tracking_number: str) -> None:
        await super().cancel(tracking_number)
        SlowCarrier.voided.add(tracking_number)


@pytest.fixture
def slow_carrier() -> Iterator[None]:
    """The slow carrier, known to the services this test starts (and to no other test's)."""
    register(SlowCarrier)
    yield
    unregister(SlowCarrier.code)


async def test_a_slow_label_purchase_holds_up_no_other_write(
    stack: Stack, slow_carrier: None
) -> None:
    svc = await stack.start("shipment", simulator_enabled=False)
    SlowCarrier.buying = asyncio.Event()
    slow = asyncio.create_task(
        create_shipment(svc, shipment_body(carrier="slow-test", simulation=None), key="slow")
    )
    await asyncio.wait_for(SlowCarrier.buying.wait(), 30)  # now waiting on its carrier
    started = time.monotonic()
    quick = await create_shipment(svc, shipment_body(), key="quick")
    quick_seconds = time.monotonic() - started
    assert quick.status_code == 201, quick.text
    # Had the purchase held the write lock, the quick write would have waited for it.
    assert not slow.done()
    assert quick_seconds < LABEL_SECONDS, quick_seconds

    done = await slow
    assert done.status_code == 201, done.text
    assert SlowCarrier.sold[done.json()["id"]] == done.json()["tracking_number"]


async def test_concurrent_requests_void_the_labels_they_did_not_use(
    stack: Stack, slow_carrier: None
) -> None:
    svc = await stack.start("shipment", simulator_enabled=False)
    body = shipment_body(carrier="slow-test", simulation=None)
    before = set(SlowCarrier.sold.values())
    answers = await asyncio.gather(*(create_shipment(svc, body, key=f"k{i}") for i in range(3)))
    assert sorted(r.status_code for r in answers) == [200, 200, 201]
    # Each request bought its own label; the one shipment holds one, the others are void.
    [shipment_id] = {r.json()["id"] for r in answers}
    used = SlowCarrier.sold[shipment_id]
    assert answers[0].json()["tracking_number"] == used
    bought = set(SlowCarrier.sold.values()) - before
    assert len(bought) == 3 and used in bought
    assert SlowCarrier.voided & bought == bought - {used}
    assert len(await outbox_events(stack.db_urls["shipment"], "created")) == 1


async def test_the_simulated_carrier_sells_one_label_per_shipment() -> None:
    carrier = SimulatedCarrier(ShipmentSettings(simulator_seed=7))
    request = LabelRequest(
        shipment_id="s-1",
        order_id="o-1",
        warehouse_id="w-1",
        service_level=ServiceLevel.STANDARD,
        ship_date=date(2026, 11, 25),
        ship_to=LabelAddress("A", "B", None, "C", None, "D", "NL"),
        packages=[],
    )
    first, again = await carrier.create_label(request), await carrier.create_label(request)
    assert first == again
    other = await carrier.create_label(LabelRequest(**{**request.__dict__, "shipment_id": "s-2"}))
    assert other.tracking_number != first.tracking_number


async def test_a_crash_after_buying_the_label_is_finished_by_the_retry(stack: Stack) -> None:
    """The process dies between the carrier's answer and the commit; the caller's retry
    (same key) asks the carrier for the same shipment and records it once."""
    body = shipment_body(simulation=None)
    url = f"http://127.0.0.1:{stack.ports['shipment']}"
    headers = {**auth("service"), "Idempotency-Key": "crash-label"}
    async with service_process(
        stack, "shipment", {"WAYBILL_CRASH_AT": "shipment.after_label"}
    ) as proc:
        async with httpx.AsyncClient(base_url=url) as http:
            with contextlib.suppress(httpx.HTTPError):  # the connection dies with the process
                await http.post("/shipments", json=body, headers=headers)
        assert await eventually(lambda: proc.poll(), message="the crash") == 86

    async with service_process(stack, "shipment"), httpx.AsyncClient(base_url=url) as http:
        first = await http.post("/shipments", json=body, headers=headers)
        assert first.status_code == 201, first.text
        again = await http.post("/shipments", json=body, headers=headers)
        assert again.json() == first.json()
    db = Database(stack.db_urls["shipment"])
    try:
        async with db.reading() as session:
            count = await session.scalar(
                sa.select(sa.func.count())
                .select_from(Shipment)
                .where(Shipment.order_id == body["order_id"])
            )
    finally:
        await db.dispose()
    assert count == 1
    assert len(await outbox_events(stack.db_urls["shipment"], "created")) == 1


class RecordingCarrier(SimulatedCarrier):
    """A carrier that remembers every label request it was sent."""

    code = "recording-test"
    name = "Recording carrier (tests)"
    requests: ClassVar[list[LabelRequest]] = []

    async def create_label(self, shipment: LabelRequest) -> Label:
        RecordingCarrier.requests.append(shipment)
        return await super().create_label(shipment)


@pytest.fixture
def recording_carrier() -> Iterator[list[LabelRequest]]:
    register(RecordingCarrier)
    RecordingCarrier.requests = []
    yield RecordingCarrier.requests
    unregister(RecordingCarrier.code)


def heavy_body(quantity: int, unit_grams: int) -> dict[str, object]:
    """One line of `quantity` units of `unit_grams` each, for the recording carrier."""
    line = {
        "line_no": 1,
        "sku": "SKU-HEAVY",
        "quantity": quantity,
        "unit_weight_grams": unit_grams,
        "lots": [{"lot": "LOT-H1", "quantity": quantity}],
    }
    return shipment_body(carrier="recording-test", simulation=None, lines=[line])


async def test_parcels_and_label_weigh_the_units_sent(
    stack: Stack, recording_carrier: list[LabelRequest]
) -> None:
    """3 kg units pack six to a 20 kg parcel, and the carrier is told those weights."""
    svc = await stack.start("shipment", simulator_enabled=False)
    r = await create_shipment(svc, heavy_body(10, 3000))
    assert r.status_code == 201, r.text
    packages = r.json()["packages"]
    assert [(p["weight_grams"], p["items"][0]["quantity"]) for p in packages] == [
        (18_000, 6),
        (12_000, 4),
    ]
    assert r.json()["lines"][0]["unit_weight_grams"] == 3000
    [label] = recording_carrier
    assert [(p.number, p.weight_grams) for p in label.packages] == [(1, 18_000), (2, 12_000)]


async def test_too_many_packages_is_a_clear_422_that_buys_and_writes_nothing(
    stack: Stack, recording_carrier: list[LabelRequest]
) -> None:
    svc = await stack.start("shipment", simulator_enabled=False, max_packages=3)
    r = await create_shipment(svc, heavy_body(100, 3000))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["code"] == "too_many_packages"
    assert problem["detail"] == (
        "the lines weigh 300 kg and need 17 packages of at most 20 kg; "
        "a shipment may have at most 3"
    )
    assert recording_carrier == []
    assert await outbox_events(stack.db_urls["shipment"]) == []
    listing = await svc.http.get("/shipments", headers=auth("ops"))
    assert listing.json()["items"] == []
