"""`waybill bench` runs end to end on a tiny load and reports every figure.

A smoke test only: it checks that each figure, baseline and ratio is there and
positive, never how fast anything is.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.harness import BIN, USE_POSTGRES, Stack, auth

FIGURES = {
    "intake_vs_constant_endpoint",
    "intake_vs_workflow_starts",
    "completions_vs_workflow_completions",
    "status_vs_constant_endpoint",
    "status_p50_vs_constant_endpoint",
    "status_p99_vs_constant_endpoint",
    "delivery_latency_vs_workflow_latency",
}


@pytest.mark.timeout(240)
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
@pytest.mark.skipif(USE_POSTGRES, reason="the benchmark's system always runs on SQLite")
def test_bench_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAYBILL_")}
    argv = [str(BIN / "waybill"), "bench", "--orders", "30", "--duration", "2", "--out", str(out)]
    run = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=230)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "orders accepted/s" in run.stdout

    report = json.loads(out.read_text())
    assert set(report["figures"]) == FIGURES
    for name, figure in report["figures"].items():
        for key in ("waybill", "baseline", "ratio"):
            assert figure[key] > 0, (name, key, figure)
    assert report["details"]["intake"]["accepted"] == 30
    assert isinstance(report["problems"], list)  # what went wrong is reported, not asserted


def _order_service_traces_lots() -> bool:
    """The recall bench needs the order service's traceability route (part "ledger")."""
    from services.order.app import create

    return "/traceability/lots/{lot}" in create().openapi()["paths"]


@pytest.mark.timeout(300)
@pytest.mark.skipif(USE_POSTGRES, reason="the benchmark's system always runs on SQLite")
def test_recall_bench_reports_its_figure(tmp_path: Path) -> None:
    if not _order_service_traces_lots():
        pytest.skip("the order service has no traceability route in this tree yet")
    out = tmp_path / "recall.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAYBILL_")}
    argv = [str(BIN / "waybill"), "bench", "recall", "--consignees", "60", "--out", str(out)]
    run = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=290)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(out.read_text())
    figure = report["figures"]["recall_fanout_vs_trivial_activities"]
    for key in ("waybill", "baseline", "ratio"):
        assert figure[key] > 0, (key, figure)
    assert report["problems"] == []
    assert report["details"]["report"]["consignees"] == 60


async def test_recall_bench_seeds_orders_the_order_service_reads(stack: Stack) -> None:
    """The bulk seed is data the order service serves: delivered, with the lot shipped."""
    from bench.recall_fanout import LOT, SKU, seed
    from tests.order.test_orders import seeded

    order = await seeded(stack)
    await seed(stack.db_urls["order"], 30)
    r = await order.http.get("/orders/bench-o-7/status", headers=auth("coordinator"))
    assert r.status_code == 200, r.text
    status = r.json()
    assert status["customer_id"] == "bench-c-7" and status["status"] == "completed"
    [shipment] = status["shipments"]
    assert shipment["status"] == "delivered"
    assert [(lot["sku"], lot["lot"]) for lot in shipment["lots"]] == [(SKU, LOT)]


@pytest.mark.timeout(300)
def test_replenishment_bench_reports_every_figure(tmp_path: Path) -> None:
    """Tiny N: each time and peak memory beside both baselines, the growth rows, the table."""
    from bench.replenishment import main

    out = tmp_path / "replenishment.json"
    assert main(["--pairs", "200,2000", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    names = {
        f"{what}_{pairs}_vs_{base}"
        for what in ("time", "peak_rss")
        for pairs in (200, 2000)
        for base in ("statsforecast", "models")
    } | {"time_growth", "cpu_time_growth", "peak_rss_growth"}
    assert set(report["figures"]) == names
    for name, figure in report["figures"].items():
        for key in ("waybill", "baseline", "ratio"):
            assert figure[key] > 0, (name, key, figure)
    runs = report["details"]["runs"]
    assert runs["2000"]["waybill"]["signals"] > 0
    assert sum(runs["2000"]["waybill"]["methods"].values()) == 2000
