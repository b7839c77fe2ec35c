"""The replenishment benchmark: `./waybill bench replenishment [--pairs 10000,100000]`.

For each N, a seeded year (365 days) of daily demand for N SKU/warehouse pairs (a mix of
smooth Poisson, intermittent and a few dead series) and random stock, lead times, costs,
MOQs and packs. Three measurements of each N, each in a fresh Python process that builds
the same data, so that its peak resident memory (`ru_maxrss`, read by the process itself
at the end) is its own:

- Waybill: `forecast_many` (classification, backtest, refit) then `plan_many`
  (positions, safety stock, reorder points, quantities, signals), end to end;
- statsforecast: the library alone, its many-series driver: the long data frame built
  from the same array and one `StatsForecast.forecast` call with all four candidate
  models (moving average, optimised SES, Croston SBA, TSB), no selection, no planning;
- models: the same four statsforecast models called on each series, one after another
  (the fits alone, without the driver's bookkeeping).

Times exclude imports and building the data, which every process does alike (its peak
memory includes them: the "before" figure in the JSON is the peak when the clock
starts). The table gives Waybill's figure beside each baseline with the ratio, and how
time and memory grow from the smallest to the largest N (linear growth: the ratio of
the Ns). Goal: 100,000 pairs under 30 s.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.report import figure, host
from bench.system import log
from services.common.settings import PROJECT_ROOT

DAYS = 365
GOAL_PAIRS, GOAL_SECONDS = 100_000, 30.0
TODAY = date(2026, 1, 1)
MEASUREMENTS = {
    "waybill": "Waybill: forecast_many + plan_many",
    "statsforecast": "statsforecast: StatsForecast.forecast, 4 models",
    "models": "statsforecast models, one call per series and model",
}
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Options:
    pairs: list[int]
    seed: int
    out: Path
    timeout: float


def _pairs(text: str) -> list[int]:
    values = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of counts of at least 1")
    return values


def parse_args(argv: Sequence[str] | None) -> tuple[Options, str | None]:
    parser = argparse.ArgumentParser(prog="waybill bench replenishment", description=__doc__)
    parser.add_argument("--pairs", type=_pairs, default=[10_000, 100_000], help="e.g. 10000,100000")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=900.0, help="per measurement (s)")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    parser.add_argument(
        "--out", type=Path, default=PROJECT_ROOT / "var" / "bench" / f"replenishment-{stamp}.json"
    )
    parser.add_argument("--measure", choices=sorted(MEASUREMENTS), help=argparse.SUPPRESS)
    a = parser.parse_args(argv)
    opts = Options(pairs=a.pairs, seed=a.seed, out=a.out, timeout=a.timeout)
    return opts, a.measure


# --- the data ----------------------------------------------------------------------


def demand(pairs: int, seed: int) -> Floats:
    """A year of daily demand per pair: 60 % smooth Poisson (2 to 40 a day), 38 %
    intermittent (demand on 3 % to 40 % of days, 1 + Poisson(1 to 8) units), 2 % none."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(3, size=pairs, p=[0.60, 0.38, 0.02])
    rate = rng.uniform(2, 40, size=pairs)
    chance = rng.uniform(0.03, 0.4, size=pairs)
    size = rng.uniform(1, 8, size=pairs)
    history = np.zeros((pairs, DAYS))
    for start in range(0, pairs, 10_000):  # bounded temporaries
        part = slice(start, min(pairs, start + 10_000))
        n = part.stop - part.start
        smooth = rng.poisson(rate[part, None], size=(n, DAYS))
        sparse = (rng.random((n, DAYS)) < chance[part, None]) * (
            1 + rng.poisson(size[part, None], size=(n, DAYS))
        )
        history[part] = np.where(kind[part, None] == 0, smooth, sparse)
        history[part][kind[part] == 2] = 0.0
    return history


def stock(history: Floats, seed: int) -> dict[str, npt.NDArray[Any]]:
    """Random stock, open orders, supplier terms and policies, scaled to each pair's
    demand: the inputs of `PlanInputs` besides the forecast."""
    rng = np.random.default_rng(seed + 1)
    pairs = len(history)
    daily = history.mean(axis=1)
    on_hand = rng.poisson(daily * rng.uniform(0, 40, pairs))
    return {
        "on_hand": on_hand,
        "reserved": rng.binomial(on_hand, 0.1),
        "held": rng.binomial(on_hand, 0.02),
        "backordered": rng.poisson(0.3, pairs) * (rng.random(pairs) < 0.1),
        "on_order": rng.poisson(daily * 14) * (rng.random(pairs) < 0.3),
        "lead_days": rng.integers(2, 31, pairs).astype(np.float64),
        "lead_sd_days": rng.uniform(0, 3, pairs),
        "service_level": rng.choice([0.9, 0.95, 0.98], pairs),
        "review_period_days": rng.choice([0.0, 7.0], pairs),
        "order_cost": rng.uniform(20, 200, pairs),
        "unit_cost": rng.uniform(1, 100, pairs),
        "holding_rate": np.full(pairs, 0.25),
        "moq": rng.choice([1, 10, 50], pairs),
        "pack": rng.choice([1, 6, 12, 24], pairs),
    }


# --- one measurement, in its own process ---------------------------------------------


@contextmanager
def _clock(into: dict[str, Any]) -> Iterator[None]:
    """Wall and CPU seconds of the block into `into` (CPU time shows contention: when
    the machine is shared, wall time grows and CPU time does not)."""
    into["began"] = wall = time.perf_counter()
    cpu = time.process_time()
    yield
    into["seconds"] = time.perf_counter() - wall
    into["cpu_seconds"] = time.process_time() - cpu


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _waybill(history: Floats, seed: int) -> dict[str, Any]:
    from services.supplier.forecast import forecast_many
    from services.supplier.replenishment import PlanInputs, plan_many

    inputs = stock(history, seed)
    timed: dict[str, Any] = {}
    with _clock(timed):
        batch = forecast_many(history)
        forecast_s = time.perf_counter() - timed["began"]
        plans = plan_many(
            PlanInputs(daily_mean=batch.daily_mean, daily_sigma=batch.daily_sigma, **inputs),
            TODAY,
        )
    methods, counts = np.unique(batch.method, return_counts=True)
    return timed | {
        "forecast_seconds": forecast_s,
        "plan_seconds": timed["seconds"] - forecast_s,
        "signals": int(plans.needed.sum()),
        "methods": {str(m): int(c) for m, c in zip(methods, counts, strict=True)},
    }


def _models() -> list[Any]:
    from statsforecast.models import (
        TSB,
        CrostonSBA,
        SimpleExponentialSmoothingOptimized,
        WindowAverage,
    )

    from services.supplier.forecast import TSB_ALPHA

    return [
        WindowAverage(window_size=28),
        SimpleExponentialSmoothingOptimized(),
        CrostonSBA(),
        TSB(alpha_d=TSB_ALPHA, alpha_p=TSB_ALPHA),
    ]


def _statsforecast(history: Floats) -> dict[str, Any]:
    import pandas as pd
    from statsforecast import StatsForecast

    pairs, days = history.shape
    models = _models()
    timed: dict[str, Any] = {}
    with _clock(timed):
        frame = pd.DataFrame(
            {
                "unique_id": np.repeat(np.arange(pairs, dtype=np.int32), days),
                "ds": np.tile(np.arange(days, dtype=np.int32), pairs),
                "y": history.ravel(),
            }
        )
        StatsForecast(models=models, freq=1, n_jobs=1).forecast(df=frame, h=1)
    return timed


def _direct(history: Floats) -> dict[str, Any]:
    models = _models()
    timed: dict[str, Any] = {}
    with _clock(timed):
        for series in history:
            for model in models:
                model.forecast(y=series, h=1)
    return timed


def measure(kind: str, pairs: int, seed: int) -> dict[str, Any]:
    """One measurement on freshly built data, with this process's peak memory."""
    import statsforecast.models  # noqa: F401  (imported before the clock, as by all)

    history = demand(pairs, seed)
    before = _peak_rss_mb()
    if kind == "waybill":
        result = _waybill(history, seed)
    elif kind == "statsforecast":
        result = _statsforecast(history)
    else:
        result = _direct(history)
    result.pop("began")
    return result | {"peak_rss_mb": _peak_rss_mb(), "peak_rss_before_mb": before}


def _child(kind: str, pairs: int, opts: Options) -> dict[str, Any]:
    """`measure` in a fresh interpreter."""
    argv = [sys.executable, "-m", "bench.replenishment", "--measure", kind]
    argv += ["--pairs", str(pairs), "--seed", str(opts.seed)]
    run = subprocess.run(
        argv, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=opts.timeout, check=False
    )
    if run.returncode != 0:
        raise RuntimeError(f"{kind} at {pairs} pairs failed: {run.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


# --- the report --------------------------------------------------------------------


def figures(runs: dict[int, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Waybill's time and peak memory beside each baseline's per N, and the growth from
    the smallest N to the largest beside the library's."""
    found: dict[str, dict[str, Any]] = {}
    for pairs, run in runs.items():
        for base in ("statsforecast", "models"):
            for key, unit, what in (("seconds", "s", "time"), ("peak_rss_mb", "MB", "peak RSS")):
                found[f"{what.replace(' ', '_').lower()}_{pairs}_vs_{base}"] = figure(
                    f"{pairs:,} pairs: {what}",
                    unit,
                    run["waybill"][key],
                    MEASUREMENTS[base],
                    run[base][key],
                )
    small, large = min(runs), max(runs)
    if large > small:
        for key, unit, what in (
            ("seconds", "x", "time"),
            ("cpu_seconds", "x", "CPU time"),
            ("peak_rss_mb", "x", "peak RSS"),
        ):
            grow = {k: runs[large][k][key] / runs[small][k][key] for k in MEASUREMENTS}
            found[f"{what.replace(' ', '_').lower()}_growth"] = figure(
                f"{what} growth {large:,} / {small:,} pairs (linear: {large / small:g})",
                unit,
                grow["waybill"],
                MEASUREMENTS["statsforecast"],
                grow["statsforecast"],
            )
    return found


def _value(value: float, unit: str) -> str:
    return {"s": f"{value:.2f} s", "MB": f"{value:,.0f} MB"}.get(unit, f"{value:.1f}x")


def render(report: dict[str, Any]) -> str:
    """The table: figure, Waybill, baseline, which baseline, Waybill / baseline."""
    rows = [("figure", "Waybill", "baseline", "", "ratio")]
    for fig in report["figures"].values():
        unit = fig["unit"]
        rows.append(
            (
                fig["label"],
                _value(fig["waybill"], unit),
                _value(fig["baseline"], unit),
                fig["baseline_label"],
                f"{fig['ratio']:.2f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [
        f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  "
        f"{r[3]:<{widths[3]}}  {r[4]:>{widths[4]}}"
        for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    details = report["details"]
    for pairs, run in details["runs"].items():
        w = run["waybill"]
        added = {k: m["peak_rss_mb"] - m["peak_rss_before_mb"] for k, m in run.items()}
        lines.append(
            f"{int(pairs):,} pairs: Waybill forecast {w['forecast_seconds']:.2f} s + plan "
            f"{w['plan_seconds']:.2f} s (CPU {w['cpu_seconds']:.2f} s); {w['signals']:,} "
            f"signals; methods {w['methods']}; "
            f"peak RSS over imports and data: Waybill {added['waybill']:,.0f} MB, "
            f"StatsForecast {added['statsforecast']:,.0f} MB, models {added['models']:,.0f} MB"
        )
    goal = details["goal"]
    if goal["seconds"] is not None:
        verdict = "met" if goal["met"] else "NOT met"
        lines.append(
            f"goal: {GOAL_PAIRS:,} pairs under {GOAL_SECONDS:.0f} s: {verdict} "
            f"({goal['seconds']:.1f} s); load average at the end {report['host']['load_average']}"
        )
    return "\n".join(lines)


def run_all(opts: Options) -> dict[str, Any]:
    began = time.monotonic()
    runs: dict[int, dict[str, dict[str, Any]]] = {}
    for pairs in sorted(set(opts.pairs)):
        runs[pairs] = {}
        for kind in MEASUREMENTS:
            log(f"{pairs:,} pairs: {kind}")
            runs[pairs][kind] = _child(kind, pairs, opts)
            log(
                f"  {runs[pairs][kind]['seconds']:.2f} s, {runs[pairs][kind]['peak_rss_mb']:.0f} MB"
            )
    goal_s = runs[GOAL_PAIRS]["waybill"]["seconds"] if GOAL_PAIRS in runs else None
    return {
        "benchmark": "replenishment",
        "version": 1,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - began, 1),
        "host": host(),
        "parameters": asdict(opts) | {"out": str(opts.out), "days": DAYS},
        "figures": figures(runs),
        "details": {
            "runs": runs,
            "memory": "peak RSS (ru_maxrss) of a fresh process per measurement",
            "goal": {
                "seconds": goal_s,
                "goal_seconds": GOAL_SECONDS,
                "met": goal_s is not None and goal_s < GOAL_SECONDS,
            },
        },
        "problems": [],
    }


def main(argv: Sequence[str] | None = None) -> int:
    opts, kind = parse_args(argv)
    if kind is not None:  # a child: one measurement, JSON on stdout
        print(json.dumps(measure(kind, opts.pairs[0], opts.seed)))
        return 0
    try:
        report = run_all(opts)
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        log(f"failed: {exc}")
        return 1
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(render(report))
    print(f"written to {opts.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
