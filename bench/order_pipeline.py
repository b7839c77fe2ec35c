"""`waybill bench`: orders through intake, the workflows and the simulated carrier.

Starts a private `waybill up` (fresh var directory, free ports, fast simulated carrier),
tops up stock, then measures, one after another:

1. raw HTTP limit: a bare FastAPI endpoint returning a constant, under wrk;
2. raw Temporal limit: trivial workflows started and completed on the same dev server;
3. intake: N orders POSTed once each through wrk (accepted orders/s);
4. order to delivery: until every accepted order's workflow has ended (completions/s
   over the steady middle of the run, latency from acceptance to completion);
5. "where is my order?": wrk on `GET /orders/{id}/status` across the placed orders.

Prints a table (figure, Waybill, raw baseline, ratio) and writes everything as JSON;
bench/README.md says how to read it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench import report, wrk
from bench.report import Results, percentile, steady_rate
from bench.system import System, constant_server, log, private_system
from services.common.settings import PROJECT_ROOT

ORDER_WORKFLOW = "OrderToDelivery"
# Orders cycle through these (customer, lines) over the seeded demo data.
ORDER_MIX: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = (
    ("Jane Doe", (("COFFEE-1KG", 1), ("MUG-CERAMIC", 1))),
    ("Acme Logistics GmbH", (("MUG-CERAMIC", 1),)),
    ("Jane Doe", (("FILTER-PAPER", 2),)),
    ("Acme Logistics GmbH", (("COFFEE-1KG", 1),)),
)
PRICES = {"COFFEE-1KG": 18.50, "MUG-CERAMIC": 6.90, "FILTER-PAPER": 24.00}
SHELF_LIFE = {"COFFEE-1KG"}
# Acme's orders stop (Jane's take over) before they could reach its 20 000 EUR limit,
# so no order waits on a credit hold.
ACME_OPEN_LIMIT = 15_000.0
CLOSED = ("Completed", "Failed", "TimedOut", "Terminated", "Canceled", "ContinuedAsNew")


@dataclass(frozen=True)
class Options:
    orders: int
    out: Path
    duration: float
    connections: int
    threads: int
    seconds_per_hour: float
    poll_seconds: float
    stall_seconds: float
    keep: bool


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="waybill bench",
        description="Push orders through a private `waybill up` and compare each figure "
        "with the raw limit (constant FastAPI endpoint, trivial Temporal workflows) "
        "measured in the same run. See bench/README.md.",
    )
    parser.add_argument("--orders", type=int, default=2000, help="orders to place (2000)")
    parser.add_argument(
        "--out", type=Path, help="JSON report (default var/bench/order_pipeline-<time>.json)"
    )
    parser.add_argument(
        "--duration",
        type=float,
        help="seconds of each timed wrk load (default 10; 5 below 1000 orders)",
    )
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument(
        "--seconds-per-hour",
        type=float,
        default=0.002,
        help="simulated carrier: real seconds per carrier hour (0.002)",
    )
    parser.add_argument(
        "--poll-seconds", type=float, default=0.2, help="simulated carrier poll (0.2)"
    )
    parser.add_argument(
        "--stall-seconds",
        type=float,
        default=120.0,
        help="stop waiting for orders after this long without one ending (120)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the run's directory: logs, traces, scripts"
    )
    ns = parser.parse_args(argv)
    if min(ns.orders, ns.connections, ns.threads) < 1:
        parser.error("--orders, --connections and --threads must be positive")
    if ns.duration is not None and ns.duration < 1:
        parser.error("--duration must be at least 1 second")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Options(
        orders=ns.orders,
        out=ns.out or PROJECT_ROOT / "var" / "bench" / f"order_pipeline-{stamp}.json",
        duration=ns.duration or (10.0 if ns.orders >= 1000 else 5.0),
        connections=ns.connections,
        threads=ns.threads,
        seconds_per_hour=ns.seconds_per_hour,
        poll_seconds=ns.poll_seconds,
        stall_seconds=ns.stall_seconds,
        keep=ns.keep,
    )


def _ts(value: str | datetime) -> float:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


# --- preparation ---------------------------------------------------------------------


async def order_bodies(system: System, token: str, orders: int) -> list[str]:
    """`orders` order bodies over the seeded customers and SKUs; books the stock they
    need into WH-NORTH so that none is backordered."""
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        customers: dict[str, dict[str, Any]] = {}
        for name in sorted({name for name, _ in ORDER_MIX}):
            r = await http.get(system.url("customer") + "/customers", params={"q": name})
            r.raise_for_status()
            match = [c for c in r.json()["items"] if c["name"] == name]
            if not match:
                raise RuntimeError(f"seeded customer {name!r} not found")
            customers[name] = match[0]
        bodies: list[str] = []
        needed: Counter[str] = Counter()
        acme_open = 0.0
        for i in range(orders):
            name, lines = ORDER_MIX[i % len(ORDER_MIX)]
            if name.startswith("Acme"):
                acme_open += sum(PRICES[sku] * qty for sku, qty in lines)
                if acme_open > ACME_OPEN_LIMIT:
                    name = "Jane Doe"
            customer = customers[name]
            address = customer["addresses"][0]
            body = {
                "customer_id": customer["id"],
                "ship_to": {"name": customer["name"]}
                | {k: address[k] for k in ("line1", "city", "postal_code", "country")},
                "lines": [{"sku": sku, "quantity": qty} for sku, qty in lines],
            }
            bodies.append(json.dumps(body, separators=(",", ":")))
            needed.update(dict(lines))
        expiry = (date.today() + timedelta(days=365)).isoformat()
        for sku, quantity in sorted(needed.items()):
            receipt = {
                "warehouse_id": "WH-NORTH",
                "sku": sku,
                "lot": f"BENCH-{sku}",
                "quantity": quantity + 10,
                "expiry": expiry if sku in SHELF_LIFE else None,
                "reference": "waybill bench",
            }
            r = await http.post(
                system.url("order") + "/stock/receipts",
                json=receipt,
                headers={"Idempotency-Key": f"bench-receipt-{sku}"},
            )
            if r.status_code != 201:
                raise RuntimeError(f"stock receipt for {sku}: {r.status_code} {r.text[:300]}")
    return bodies


# --- the phases ----------------------------------------------------------------------


def _timed(result: dict[str, Any]) -> dict[str, Any]:
    seconds = result["duration_us"] / 1e6
    return {
        "requests": result["requests"],
        "seconds": round(seconds, 3),
        "requests_per_s": result["requests"] / seconds if seconds else 0.0,
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "mean_ms": result["mean_us"] / 1000,
        "max_ms": result["max_us"] / 1000,
        "errors": result["errors"],
    }


async def constant_baseline(opts: Options, token: str, workdir: Path) -> dict[str, Any]:
    """wrk on the bare constant endpoint, with the load the status reads get."""
    from bench.constant_app import PATH

    load = wrk.Load(opts.threads, opts.connections, opts.duration)
    async with constant_server() as url:
        result = await wrk.timed_get(url, [PATH], token, load=load, workdir=workdir, name="const")
    return _timed(result)


async def _wait_closed(
    client: Any, query: str, target: int, *, stall_seconds: float, label: str
) -> dict[str, int]:
    """Poll visibility until `target` workflows matching `query` have ended, or none
    ended for `stall_seconds`; how many ended in each state."""
    closed_query = f"{query} AND ExecutionStatus != 'Running'"
    seen, moved, said = -1, time.monotonic(), time.monotonic()
    while True:
        closed = (await client.count_workflows(closed_query)).count
        now = time.monotonic()
        if closed != seen:
            seen, moved = closed, now
        if closed >= target:
            break
        if now - moved > stall_seconds:
            log(f"{label}: {closed}/{target} ended, none for {stall_seconds:.0f}s; giving up")
            break
        if now - said >= 10:
            log(f"{label}: {closed}/{target} ended")
            said = now
        await asyncio.sleep(0.5)
    counts = {}
    for status in (*CLOSED, "Running"):
        count = (await client.count_workflows(f"{query} AND ExecutionStatus = '{status}'")).count
        if count:
            counts[status] = int(count)
    return counts


async def trivial_workflow_baseline(address: str, count: int, concurrency: int) -> dict[str, Any]:
    """Start `count` trivial workflows (`concurrency` starts in flight) on their own task
    queue with an in-process worker; starts/s, completions/s, start-to-close latency."""
    from temporalio.client import Client
    from temporalio.worker import Worker

    from bench.trivial import Trivial
    from workflows.runtime import WorkflowSettings

    # The same workflow-task concurrency as Waybill's worker (its default: the bench's
    # `waybill up` gets no WAYBILL_WORKFLOWS_* settings).
    slots = WorkflowSettings.model_fields["max_concurrent_workflow_tasks"].default
    client = await Client.connect(address)
    queue = f"bench-trivial-{uuid.uuid4().hex[:8]}"
    gate = asyncio.Semaphore(concurrency)

    async def start(i: int) -> None:
        async with gate:
            await client.start_workflow(Trivial.run, i, id=f"{queue}-{i}", task_queue=queue)

    async with Worker(
        client, task_queue=queue, workflows=[Trivial], max_concurrent_workflow_tasks=slots
    ):
        began = time.monotonic()
        await asyncio.gather(*(start(i) for i in range(count)))
        started = time.monotonic() - began
        counts = await _wait_closed(
            client, f"TaskQueue = '{queue}'", count, stall_seconds=60, label="trivial workflows"
        )
    starts: list[float] = []
    closes: list[float] = []
    async for wf in client.list_workflows(
        f"TaskQueue = '{queue}' AND ExecutionStatus = 'Completed'"
    ):
        if wf.close_time is not None:
            starts.append(_ts(wf.start_time))
            closes.append(_ts(wf.close_time))
    span = max(closes) - min(starts) if closes else 0.0
    return {
        "workflows": count,
        "completed": len(closes),
        "workflow_states": counts,
        "worker_workflow_task_slots": slots,
        "start_seconds": round(started, 3),
        "starts_per_s": count / started if started else 0.0,
        "completions_per_s": steady_rate(closes),
        "overall_completions_per_s": len(closes) / span if span > 0 else 0.0,
        "latency_p50_s": percentile([c - s for s, c in zip(starts, closes, strict=True)], 50),
        "latency_p99_s": percentile([c - s for s, c in zip(starts, closes, strict=True)], 99),
    }


async def intake(
    system: System, opts: Options, token: str, bodies: Sequence[str], workdir: Path
) -> tuple[dict[str, Any], list[str]]:
    """POST every order once through wrk; the figures and the new orders' ids."""
    result, ids = await wrk.post_batch(
        system.url("order"),
        "/orders",
        token,
        bodies,
        run_id=f"bench-{uuid.uuid4().hex[:8]}",
        expect=201,
        load=wrk.Load(opts.threads, opts.connections),
        workdir=workdir,
        limit_seconds=max(120.0, opts.orders * 0.5),
    )
    seconds = result["last_answer"] - result["first_sent"]
    figures = {
        "orders": opts.orders,
        "sent": result["sent"],
        "accepted": result["accepted"],
        "rejected": result["rejected"],
        "seconds": round(seconds, 3),
        "orders_per_s": result["accepted"] / seconds if seconds > 0 else 0.0,
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "socket_errors": result["errors"],
    }
    return figures, [i for i in ids if i]


async def _failure_samples(client: Any, limit: int = 3) -> list[str]:
    """`workflow id: innermost failure message` of a few failed order workflows."""
    from temporalio.client import WorkflowFailureError

    samples: list[str] = []
    query = f"WorkflowType = '{ORDER_WORKFLOW}' AND ExecutionStatus = 'Failed'"
    async for wf in client.list_workflows(query, limit=limit):
        try:
            await client.get_workflow_handle(wf.id, run_id=wf.run_id).result()
        except WorkflowFailureError as exc:
            cause: BaseException = exc
            while cause.__cause__ is not None:
                cause = cause.__cause__
            samples.append(f"{wf.id}: {cause}")
        except Exception as exc:
            samples.append(f"{wf.id}: {type(exc).__name__}: {exc}")
    return samples


async def _orders(system: System, token: str, ids: Sequence[str]) -> list[dict[str, Any]]:
    """The placed orders, read back page by page."""
    wanted = set(ids)
    found: list[dict[str, Any]] = []
    async with httpx.AsyncClient(
        base_url=system.url("order"), headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as http:
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 200} | ({"cursor": cursor} if cursor else {})
            r = await http.get("/orders", params=params)
            r.raise_for_status()
            page = r.json()
            found.extend(o for o in page["items"] if o["id"] in wanted)
            cursor = page["next_cursor"]
            if not cursor:
                return found


async def delivery(system: System, opts: Options, token: str, ids: Sequence[str]) -> dict[str, Any]:
    """Wait for the orders' workflows to end, then take the orders' own timestamps:
    accepted (`created_at`) and completed (`updated_at` of a completed order)."""
    from temporalio.client import Client

    client = await Client.connect(system.temporal_address)
    began = time.monotonic()
    workflows = await _wait_closed(
        client,
        f"WorkflowType = '{ORDER_WORKFLOW}'",
        len(ids),
        stall_seconds=opts.stall_seconds,
        label="orders",
    )
    waited = time.monotonic() - began
    failures = await _failure_samples(client) if workflows.get("Failed") else []
    orders = await _orders(system, token, ids)
    done = [o for o in orders if o["status"] == "completed"]
    accepted_at = [_ts(o["created_at"]) for o in orders]
    completed_at = [_ts(o["updated_at"]) for o in done]
    latencies = [_ts(o["updated_at"]) - _ts(o["created_at"]) for o in done]
    makespan = max(completed_at) - min(accepted_at) if done else 0.0
    return {
        "orders": len(ids),
        "completed": len(done),
        "statuses": dict(Counter(o["status"] for o in orders)),
        "outcomes": dict(Counter(o["outcome"] for o in done)),
        "workflows": workflows,
        "failure_samples": failures,
        "completions_per_s": steady_rate(completed_at),
        "overall_completions_per_s": len(done) / makespan if makespan > 0 else 0.0,
        "makespan_s": round(makespan, 3),
        "waited_after_intake_s": round(waited, 3),
        "latency_p50_s": percentile(latencies, 50),
        "latency_p99_s": percentile(latencies, 99),
    }


async def status_reads(
    system: System, opts: Options, token: str, ids: Sequence[str], workdir: Path
) -> dict[str, Any]:
    """wrk on `GET /orders/{id}/status`, cycling through the placed orders."""
    result = await wrk.timed_get(
        system.url("order"),
        [f"/orders/{order_id}/status" for order_id in ids],
        token,
        load=wrk.Load(opts.threads, opts.connections, opts.duration),
        workdir=workdir,
        name="status",
    )
    return _timed(result)


# --- main ----------------------------------------------------------------------------


async def measure(opts: Options, system: System, workdir: Path) -> Results:
    began = time.monotonic()
    await system.start()
    log(f"system ready in {time.monotonic() - began:.0f}s; booking stock for the orders")
    token = system.token()
    bodies = await order_bodies(system, token, opts.orders)

    log(f"baseline: constant FastAPI endpoint, wrk {opts.duration:.0f}s")
    constant = await constant_baseline(opts, token, workdir)
    log(f"  {constant['requests_per_s']:,.0f} req/s")

    log(f"baseline: {opts.orders} trivial Temporal workflows")
    trivial = await trivial_workflow_baseline(
        system.temporal_address, opts.orders, opts.connections
    )
    log(f"  {trivial['starts_per_s']:,.1f} starts/s, {trivial['completions_per_s']:,.1f} ends/s")

    log(f"intake: {opts.orders} orders through POST /orders")
    intake_, ids = await intake(system, opts, token, bodies, workdir)
    log(f"  {intake_['accepted']} accepted, {intake_['orders_per_s']:,.1f} orders/s")
    if not ids:
        raise RuntimeError(f"no order was accepted: {intake_['rejected']}")

    log("order to delivery: waiting for every order's workflow to end")
    delivered = await delivery(system, opts, token, ids)
    log(f"  {delivered['completed']} completed, {delivered['completions_per_s']:,.1f}/s")

    log(f"status reads: wrk {opts.duration:.0f}s on GET /orders/{{id}}/status")
    status = await status_reads(system, opts, token, ids, workdir)
    log(f"  {status['requests_per_s']:,.1f} req/s")
    if not system.alive():
        raise RuntimeError("`waybill up` exited during the benchmark")
    return Results(constant, trivial, intake_, delivered, status)


async def run(opts: Options) -> Results:
    """Everything in a temporary directory that is removed afterwards unless `--keep`
    (or a failure) says otherwise."""
    settings = {
        "WAYBILL_SHIPMENT_SIMULATOR_SECONDS_PER_HOUR": str(opts.seconds_per_hour),
        "WAYBILL_SHIPMENT_SIMULATOR_POLL_SECONDS": str(opts.poll_seconds),
    }
    async with private_system("waybill-bench-", keep=opts.keep, settings=settings) as system:
        return await measure(opts, system, system.var.parent)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark: the table on stdout, the JSON report in `--out`."""
    opts = parse_args(argv)
    began = time.monotonic()
    try:
        wrk.wrk_binary()
        results = asyncio.run(run(opts))
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except Exception as exc:
        log(f"failed: {type(exc).__name__}: {exc}")
        return 1
    parameters = asdict(opts) | {"out": str(opts.out)}
    document = report.build(parameters, results, time.monotonic() - began)
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(document, indent=2) + "\n")
    print(report.render(document))
    print(f"\nwritten to {opts.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
