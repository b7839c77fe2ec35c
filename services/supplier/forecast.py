"""Demand forecasts for many SKU/warehouse series at once, by statsforecast's models.

Input: daily demand, one row per series, oldest day first. Each series is classified
by its average demand interval (ADI = days / days with demand, Syntetos and Boylan):

- ADI < 1.32, smooth (demand on most days): a moving average (`window` days, 28 by
  default, or the whole fitting span when shorter) and simple exponential smoothing
  with alpha optimised per series (statsforecast's `SimpleExponentialSmoothingOptimized`,
  a golden-section search on the in-sample squared error over alpha in [0.01, 0.99]);
- ADI >= 1.32, intermittent (many days without demand): Croston with the
  Syntetos-Boylan bias correction (SBA, alpha 0.1) and TSB (Teunter-Syntetos-Babai,
  alpha 0.1 for the demand size and for the probability of demand, which, unlike
  Croston, decays when demand stops).

Syntetos and Boylan also split on the squared coefficient of variation of the demand
sizes (0.49); it separates smooth from erratic and intermittent from lumpy, which would
not change the candidates here, so only the ADI is used.

Per series, the candidates are backtested: each is fitted on all but the last
`backtest_days` and forecasts them; the one with the smaller mean absolute error wins
(ties go to the simpler, listed first), its forecast errors give `daily_sigma` (their
root mean square), and it is fitted again on the whole history for `daily_mean`. All four
methods forecast one flat value for every future day, so one step ahead is all that is
asked of the library.

The models are statsforecast's, each called on one series at a time (`model.forecast(y,
h)`, its documented single-series use). Its many-series driver (`StatsForecast.forecast`
on a long data frame) ran the same fits about twice as slowly here: for every series and
model it stacks and copies the output into the long result, and the frame itself must be
built and checked; its process pool (`n_jobs=2`) was slower still on two cores.
`bench/replenishment.py` measures both beside this module.

Why the optimised SES and not a grid of fixed alphas: the optimiser costs about ten
fixed-alpha fits (some 40 us against 4 us per series here), but a grid chosen by the
backtest error picks alpha on 28 days of noise, where the optimiser uses every day; with
the backtest and the refit, 100,000 smooth and intermittent series still take about ten
seconds (see the benchmark).

A series without any demand forecasts 0 (method "zero"). A history shorter than twice
`backtest_days` leaves too little to backtest: every series then forecasts the plain mean
and standard deviation of what there is (method "mean").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "INTERMITTENT_ADI",
    "Forecast",
    "ForecastBatch",
    "Method",
    "forecast_many",
    "forecast_one",
    "warm_up",
]

Floats = npt.NDArray[np.float64]

INTERMITTENT_ADI = 1.32  # Syntetos-Boylan cut-off on days per demand day
TSB_ALPHA = 0.1  # TSB's smoothing of demand size and of demand probability


class Method(StrEnum):
    """How a series was forecast."""

    MOVING_AVERAGE = "moving_average"
    SES = "ses"
    CROSTON_SBA = "croston_sba"
    TSB = "tsb"
    MEAN = "mean"  # history too short to backtest
    ZERO = "zero"  # no demand at all


SMOOTH = (Method.MOVING_AVERAGE, Method.SES)
INTERMITTENT = (Method.CROSTON_SBA, Method.TSB)


@dataclass(frozen=True)
class Forecast:
    """One series' forecast: demand per day, its standard deviation, how it was made."""

    method: Method
    daily_mean: float
    daily_sigma: float
    backtest_mae: float  # NaN when no backtest ran ("mean", "zero")


@dataclass(frozen=True)
class ForecastBatch:
    """Forecasts of many series, one array element per series (the input's row order)."""

    ids: npt.NDArray[np.str_]
    method: npt.NDArray[np.str_]
    daily_mean: Floats
    daily_sigma: Floats
    backtest_mae: Floats

    def __len__(self) -> int:
        return len(self.ids)

    def one(self, i: int) -> Forecast:
        """The forecast of series `i`."""
        return Forecast(
            method=Method(str(self.method[i])),
            daily_mean=float(self.daily_mean[i]),
            daily_sigma=float(self.daily_sigma[i]),
            backtest_mae=float(self.backtest_mae[i]),
        )


def forecast_one(values: Sequence[float], *, backtest_days: int = 28) -> Forecast:
    """The forecast of one series of daily demand (continuous review of one pair)."""
    history = np.asarray(values, dtype=np.float64).reshape(1, -1)
    return forecast_many(history, backtest_days=backtest_days).one(0)


def forecast_many(
    history: npt.ArrayLike,
    ids: Sequence[str] | None = None,
    *,
    backtest_days: int = 28,
    window: int = 28,
) -> ForecastBatch:
    """Forecast every row of `history` (series x days, oldest first, demand >= 0) with the
    method its backtest favours; see the module docstring."""
    y = np.ascontiguousarray(history, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"history must be 2-D (series x days), got shape {y.shape}")
    if not np.isfinite(y).all() or (y < 0).any():
        raise ValueError("history must hold finite demand >= 0 (no NaN, no negatives)")
    if backtest_days < 1 or window < 1:
        raise ValueError("backtest_days and window must be at least 1")
    n, days = y.shape
    names = np.array([str(i) for i in range(n)] if ids is None else list(ids), dtype=np.str_)
    if names.shape != (n,):
        raise ValueError(f"{len(names)} ids for {n} series")

    method = np.full(n, Method.ZERO.value, dtype="<U14")
    mean, sigma, mae = np.zeros(n), np.zeros(n), np.full(n, np.nan)
    demand_days = np.count_nonzero(y, axis=1)
    active = demand_days > 0
    if days < 2 * backtest_days:
        method[active] = Method.MEAN
        if days:
            mean[active], sigma[active] = y[active].mean(axis=1), y[active].std(axis=1)
        return ForecastBatch(names, method, mean, sigma, mae)

    adi = days / np.maximum(demand_days, 1)
    intermittent = active & (adi >= INTERMITTENT_ADI)
    fit, held_out = y[:, :-backtest_days], y[:, -backtest_days:]
    for group, candidates in ((active & ~intermittent, SMOOTH), (intermittent, INTERMITTENT)):
        rows = np.flatnonzero(group)
        if not rows.size:
            continue
        predicted = _library(fit, rows, candidates, window)  # rows x candidates
        errors = held_out[rows][:, None, :] - predicted[:, :, None]
        scores = np.abs(errors).mean(axis=2)
        best = scores.argmin(axis=1)  # ties: the first, simpler candidate
        picked = np.arange(rows.size)
        method[rows] = np.asarray(candidates, dtype="<U14")[best]
        mae[rows] = scores[picked, best]
        sigma[rows] = np.sqrt((errors[picked, best] ** 2).mean(axis=1))
    for chosen in (*SMOOTH, *INTERMITTENT):
        rows = np.flatnonzero(method == chosen)
        if rows.size:
            mean[rows] = _library(y, rows, (chosen,), window)[:, 0]
    return ForecastBatch(names, method, mean, sigma, mae)


def warm_up() -> None:
    """Import the library and fit each model once, so the first forecast a consumer makes
    inside its transaction does not pay seconds of imports (a service calls this in a
    thread at start)."""
    forecast_one([float(i % 3) for i in range(60)])
    forecast_one([float(i % 7 == 0) for i in range(60)])


def _model(method: Method, window: int) -> Any:
    """The statsforecast model of `method`, aliased by its name. Imported on first use:
    statsforecast brings statsmodels and scipy along (seconds), which a service that
    imports this module should not pay at start-up."""
    from statsforecast.models import (
        TSB,
        CrostonSBA,
        SimpleExponentialSmoothingOptimized,
        WindowAverage,
    )

    if method is Method.MOVING_AVERAGE:
        return WindowAverage(window_size=window, alias=method.value)
    if method is Method.SES:
        return SimpleExponentialSmoothingOptimized(alias=method.value)
    if method is Method.CROSTON_SBA:
        return CrostonSBA(alias=method.value)
    if method is Method.TSB:
        return TSB(alpha_d=TSB_ALPHA, alpha_p=TSB_ALPHA, alias=method.value)
    raise ValueError(f"no model for {method}")


def _library(
    y: Floats, rows: npt.NDArray[np.intp], methods: Sequence[Method], window: int
) -> Floats:
    """Next-day forecasts (len(rows) x methods) of rows `rows` of `y` by each method's
    statsforecast model."""
    models = [_model(m, min(window, y.shape[1])) for m in methods]
    out = np.empty((len(rows), len(models)))
    for k, i in enumerate(rows):
        series = y[i]
        for j, model in enumerate(models):
            out[k, j] = model.forecast(y=series, h=1)["mean"][0]
    return out
