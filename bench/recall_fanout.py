"""The recall fan-out benchmark: `./waybill bench recall [--consignees N]`.

Starts a private `waybill up`, books one lot in, seeds the order service with N orders
of N customers that received that lot (orders, lines, issued allocations and delivered
shipment views, inserted in bulk into its database: placing N orders through their
workflows would measure something else), then times from `POST /recalls` to the
recall's `fanned_out_at` (set by the workflow after the last trace page committed: every
consignee, recall return and notice is in the returns database and its outbox by
then). Beside it, in the same run: a trivial workflow running as many no-op activities
one after another as the recall workflow ran (`bench/trivial.py`). The goal is under
60 s for 10,000 consignees; the Recall workflow's history length is reported too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench.system import System, log, private_system
from services.common.auth import Role
from services.common.db import Database
from services.common.settings import PROJECT_ROOT
from services.common.workflow_names import RecallWorkflow

SKU, LOT, WAREHOUSE = "MUG-CERAMIC", "RECALL-BENCH", "WH-NORTH"
GOAL_SECONDS = 60.0


@dataclass(frozen=True)
class Options:
    consignees: int
    out: Path
    keep: bool
    timeout: float


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="waybill bench recall", description=__doc__)
    parser.add_argument("--consignees", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after (s)")
    parser.add_argument("--keep", action="store_true", help="keep the run's directory")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    parser.add_argument(
        "--out", type=Path, default=PROJECT_ROOT / "var" / "bench" / f"recall_fanout-{stamp}.json"
    )
    a = parser.parse_args(argv)
    if a.consignees < 1:
        parser.error("--consignees must be at least 1")
    return Options(consignees=a.consignees, out=a.out, keep=a.keep, timeout=a.timeout)


async def seed(database_url: str, count: int) -> None:
    """N delivered orders of N customers, each of 1 unit of LOT, in the order database."""
    from services.order.models import Order, OrderLine, ShipmentView
    from services.order.stock_models import StockAllocation

    db = Database(database_url)
    now = datetime.now(UTC)
    try:
        for start in range(0, count, 2000):
            ids = range(start, min(count, start + 2000))
            async with db.transaction() as session:
                await session.execute(
                    sa.insert(Order),
                    [
                        {
                            "id": f"bench-o-{i}",
                            "customer_id": f"bench-c-{i}",
                            "status": "completed",
                            "currency": "EUR",
                            "total": Decimal("0"),
                            "ship_to": {
                                "name": "R",
                                "line1": "Main 1",
                                "city": "Hamburg",
                                "postal_code": "20457",
                                "country": "DE",
                            },
                            "placed_by": "waybill-bench",
                            "outcome": "delivered",
                            "created_at": now,
                            "updated_at": now,
                        }
                        for i in ids
                    ],
                )
                await session.execute(
                    sa.insert(OrderLine),
                    [
                        {
                            "order_id": f"bench-o-{i}",
                            "line_no": 1,
                            "sku": SKU,
                            "quantity": 1,
                            "unit_price": Decimal("0"),
                        }
                        for i in ids
                    ],
                )
                await session.execute(
                    sa.insert(StockAllocation),
                    [
                        {
                            "order_id": f"bench-o-{i}",
                            "line_no": 1,
                            "sku": SKU,
                            "warehouse_id": WAREHOUSE,
                            "lot": LOT,
                            "expiry": None,
                            "quantity": 1,
                            "status": "issued",
                            "shipment_id": f"bench-s-{i}",
                            "created_at": now,
                            "updated_at": now,
                        }
                        for i in ids
                    ],
                )
                await session.execute(
                    sa.insert(ShipmentView),
                    [
                        {
                            "shipment_id": f"bench-s-{i}",
                            "order_id": f"bench-o-{i}",
                            "warehouse_id": WAREHOUSE,
                            "carrier": "simulated",
                            "service_level": "standard",
                            "tracking_number": f"BENCH{i:08d}",
                            "status": "delivered",
                            "revision": 5,
                            "promised_date": "2026-01-01",
                            "eta": None,
                            "lots": [{"sku": SKU, "lot": LOT, "quantity": 1}],
                            "updated_at": now,
                        }
                        for i in ids
                    ],
                )
    finally:
        await db.dispose()


async def history(system: System, recall_id: str) -> tuple[int, int]:
    """(events, activities scheduled) of the recall workflow's current run."""
    from temporalio.client import Client

    client = await Client.connect(system.temporal_address)
    events = activities = 0
    async for event in client.get_workflow_handle(
        RecallWorkflow.id(recall_id)
    ).fetch_history_events():
        events += 1
        activities += event.HasField("activity_task_scheduled_event_attributes")
    return events, activities


async def trivial_activities(address: str, count: int) -> float:
    """Seconds for one workflow running `count` no-op activities one after another."""
    from temporalio import activity
    from temporalio.client import Client
    from temporalio.worker import Worker

    from bench.trivial import TrivialActivities

    @activity.defn(name="bench.noop")
    async def noop(i: int) -> int:
        return i

    client = await Client.connect(address)
    queue = f"bench-activities-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[TrivialActivities], activities=[noop]):
        began = time.monotonic()
        await client.execute_workflow(TrivialActivities.run, count, id=queue, task_queue=queue)
        return time.monotonic() - began


async def measure(opts: Options, system: System) -> dict[str, Any]:
    await system.start()
    headers = {"Authorization": f"Bearer {system.token(Role.COORDINATOR)}"}
    async with httpx.AsyncClient(timeout=60, headers=headers) as http:
        r = await http.post(
            system.url("order") + "/stock/receipts",
            json={"warehouse_id": WAREHOUSE, "sku": SKU, "lot": LOT, "quantity": 10},
            headers={"Idempotency-Key": "bench-recall-lot"},
        )
        r.raise_for_status()
        log(f"seeding {opts.consignees} consignees of lot {LOT} in the order database")
        began = time.monotonic()
        await seed(f"sqlite+aiosqlite:///{system.var / 'order.db'}", opts.consignees)
        seeded = time.monotonic() - began
        log(f"seeded in {seeded:.1f} s; opening the recall")
        began = time.monotonic()
        r = await http.post(
            system.url("returns") + "/recalls",
            json={
                "sku": SKU,
                "lots": [LOT],
                "reason": "bench",
                "instructions": "bench",
                "hazard_class": "II",
                "depth": "E",
            },
            headers={"Idempotency-Key": f"bench-{uuid.uuid4()}"},
        )
        r.raise_for_status()
        recall_id = r.json()["id"]
        deadline = began + opts.timeout
        while True:
            recall = (await http.get(system.url("returns") + f"/recalls/{recall_id}")).json()
            if recall.get("fanned_out_at") or recall.get("attention"):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the recall did not fan out within {opts.timeout} s")
            await asyncio.sleep(0.2)
        fanout = time.monotonic() - began
        report = (await http.get(system.url("returns") + f"/recalls/{recall_id}/report")).json()
    events, activities = await history(system, recall_id)
    log(f"fan-out {fanout:.1f} s, {activities} activities; the trivial baseline next")
    baseline = await trivial_activities(system.temporal_address, activities)
    problems = []
    if recall.get("attention"):
        problems.append(f"the recall needs attention: {recall['attention']}")
    if report.get("consignees") != opts.consignees or report.get("noticed") != opts.consignees:
        problems.append(
            f"{report.get('consignees')} consignees and {report.get('noticed')} notices "
            f"for {opts.consignees} shipped"
        )
    return {
        "figures": {
            "recall_fanout_vs_trivial_activities": {
                "label": "recall fan-out (POST /recalls to every return and notice)",
                "unit": "s",
                "waybill": fanout,
                "baseline": baseline,
                "baseline_label": f"trivial workflow, {activities} activities",
                "ratio": fanout / baseline if baseline else 0.0,
            }
        },
        "details": {
            "consignees": opts.consignees,
            "seed_seconds": round(seeded, 3),
            "fanout_seconds": round(fanout, 3),
            "goal_seconds": GOAL_SECONDS,
            "goal_met": fanout < GOAL_SECONDS,
            "workflow_history_events": events,
            "workflow_activities": activities,
            "report": report,
        },
        "problems": problems,
    }


async def run(opts: Options) -> dict[str, Any]:
    async with private_system("waybill-bench-recall-", keep=opts.keep) as system:
        return await measure(opts, system)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    try:
        document = asyncio.run(run(opts))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        log(f"failed: {type(exc).__name__}: {exc}")
        return 1
    document["parameters"] = asdict(opts) | {"out": str(opts.out)}
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(document, indent=2, default=str) + "\n")
    figure = document["figures"]["recall_fanout_vs_trivial_activities"]
    print(
        f"recall fan-out of {opts.consignees} consignees: {figure['waybill']:.2f} s "
        f"(goal < {GOAL_SECONDS:.0f} s) | {figure['baseline_label']}: "
        f"{figure['baseline']:.2f} s | ratio {figure['ratio']:.1f} x"
    )
    for problem in document["problems"]:
        print(f"problem: {problem}")
    print(f"written to {opts.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
