"""The benchmark's arithmetic and its report: figures beside their baselines, as JSON
and as a table."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of `values`; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def steady_rate(moments: Sequence[float]) -> float:
    """Events per second between the 10th and the 90th percentile event, which leaves
    out the ramp-up and the tail; the overall rate when there are too few events."""
    ordered = sorted(moments)
    n = len(ordered)
    if n < 2:
        return 0.0
    lo, hi = math.floor(0.1 * (n - 1)), math.ceil(0.9 * (n - 1))
    if hi - lo >= 2 and ordered[hi] > ordered[lo]:
        return (hi - lo) / (ordered[hi] - ordered[lo])
    span = ordered[-1] - ordered[0]
    return (n - 1) / span if span > 0 else 0.0


@dataclass(frozen=True)
class Results:
    """What each phase measured (see `bench.order_pipeline` for the keys)."""

    constant: dict[str, Any]
    trivial: dict[str, Any]
    intake: dict[str, Any]
    delivery: dict[str, Any]
    status: dict[str, Any]


def figure(
    label: str, unit: str, value: float, baseline_label: str, baseline: float
) -> dict[str, Any]:
    """One figure of a report: Waybill's value beside its baseline's, and their ratio."""
    return {
        "label": label,
        "unit": unit,
        "waybill": value,
        "baseline": baseline,
        "baseline_label": baseline_label,
        "ratio": value / baseline if baseline else 0.0,
    }


def figures(r: Results) -> dict[str, dict[str, Any]]:
    """Each Waybill figure beside the raw limit it is compared with, and their ratio."""
    const_rps = r.constant["requests_per_s"]
    return {
        "intake_vs_constant_endpoint": figure(
            "orders accepted/s (POST /orders)",
            "per_s",
            r.intake["orders_per_s"],
            "constant endpoint req/s",
            const_rps,
        ),
        "intake_vs_workflow_starts": figure(
            "orders accepted/s",
            "per_s",
            r.intake["orders_per_s"],
            "trivial workflow starts/s",
            r.trivial["starts_per_s"],
        ),
        "completions_vs_workflow_completions": figure(
            "order-to-delivery completions/s",
            "per_s",
            r.delivery["completions_per_s"],
            "trivial workflow completions/s",
            r.trivial["completions_per_s"],
        ),
        "status_vs_constant_endpoint": figure(
            "GET /orders/{id}/status req/s",
            "per_s",
            r.status["requests_per_s"],
            "constant endpoint req/s",
            const_rps,
        ),
        "status_p50_vs_constant_endpoint": figure(
            "  status p50 latency",
            "ms",
            r.status["p50_ms"],
            "constant endpoint p50",
            r.constant["p50_ms"],
        ),
        "status_p99_vs_constant_endpoint": figure(
            "  status p99 latency",
            "ms",
            r.status["p99_ms"],
            "constant endpoint p99",
            r.constant["p99_ms"],
        ),
        "delivery_latency_vs_workflow_latency": figure(
            "order-to-delivery latency p50",
            "s",
            r.delivery["latency_p50_s"],
            "trivial workflow p50",
            r.trivial["latency_p50_s"],
        ),
    }


def _nonzero(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "none"


def problems(r: Results) -> list[str]:
    """Whatever makes the figures suspect: lost orders, failed workflows, HTTP errors."""
    found = []
    intake, delivery = r.intake, r.delivery
    if intake["accepted"] < intake["orders"]:
        found.append(
            f"intake accepted {intake['accepted']} of {intake['orders']} orders (rejected: "
            f"{intake['rejected']}, socket errors: {_nonzero(intake['socket_errors'])})"
        )
    if delivery["completed"] < intake["accepted"]:
        found.append(
            f"only {delivery['completed']} of {intake['accepted']} accepted orders completed "
            f"(order statuses: {delivery['statuses']}; workflows: {delivery['workflows']})"
        )
    for failure in delivery["failure_samples"]:
        found.append(f"failed order workflow: {failure}")
    if r.trivial["completed"] < r.trivial["workflows"]:
        found.append(
            f"only {r.trivial['completed']} of {r.trivial['workflows']} trivial workflows completed"
        )
    for name, timed in (("status reads", r.status), ("constant endpoint", r.constant)):
        if any(timed["errors"].values()):
            found.append(f"{name}: wrk errors {_nonzero(timed['errors'])}")
    return found


def host() -> dict[str, Any]:
    """The machine a report was measured on, and how busy it was at the end."""
    return {
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def build(parameters: dict[str, Any], r: Results, seconds: float) -> dict[str, Any]:
    """The JSON report."""
    return {
        "benchmark": "order_pipeline",
        "version": 1,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "host": host(),
        "parameters": parameters,
        "figures": figures(r),
        "details": {
            "intake": r.intake,
            "delivery": r.delivery,
            "status_reads": r.status,
            "constant_endpoint": r.constant,
            "trivial_workflows": r.trivial,
        },
        "problems": problems(r),
    }


def _value(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.1f} ms"
    return f"{value:,.1f}/s"


def render(report: dict[str, Any]) -> str:
    """The table (figure, Waybill, raw baseline, ratio) and a few lines of context."""
    rows = [("figure", "Waybill", "raw baseline", "", "ratio")]
    for fig in report["figures"].values():
        unit, ratio = fig["unit"], fig["ratio"]
        rows.append(
            (
                fig["label"],
                _value(fig["waybill"], unit),
                _value(fig["baseline"], unit),
                fig["baseline_label"],
                f"{ratio:.3f}" if unit == "per_s" else f"{ratio:.1f}x",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for row in rows:
        lines.append(
            f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  "
            f"{row[3]:<{widths[3]}}  {row[4]:>{widths[4]}}"
        )
    lines.insert(1, "-" * len(lines[0]))
    d = report["details"]
    intake, delivery, status = d["intake"], d["delivery"], d["status_reads"]
    lines += [
        "",
        f"intake: {intake['accepted']}/{intake['orders']} accepted in {intake['seconds']:.1f} s"
        f" (POST p50 {intake['p50_ms']:.0f} ms, p99 {intake['p99_ms']:.0f} ms)",
        f"delivery: {delivery['completed']}/{delivery['orders']} completed"
        f" ({_nonzero(delivery['outcomes'])}); overall"
        f" {delivery['overall_completions_per_s']:.1f}/s over {delivery['makespan_s']:.0f} s;"
        f" latency p99 {delivery['latency_p99_s']:.1f} s",
        f"status reads: {status['requests']} in {status['seconds']:.1f} s,"
        f" wrk errors: {_nonzero(status['errors'])}",
        f"whole run: {report['seconds']:.0f} s;"
        f" load average at the end {report['host']['load_average']}",
    ]
    lines += [f"PROBLEM: {p}" for p in report["problems"]]
    return "\n".join(lines)
