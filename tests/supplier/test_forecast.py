"""Demand forecasts: classification, the backtest's choice, the models' arithmetic, edges."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from statsforecast.models import (
    TSB,
    CrostonSBA,
    SimpleExponentialSmoothingOptimized,
    WindowAverage,
)

from services.supplier.forecast import (
    INTERMITTENT,
    SMOOTH,
    TSB_ALPHA,
    Method,
    forecast_many,
    forecast_one,
)

Floats = npt.NDArray[np.float64]
DAYS, HOLD = 365, 28


def smooth(rng: np.random.Generator, n: int) -> Floats:
    """Poisson demand on (nearly) every day, with a level that drifts for some rows."""
    drift = rng.uniform(-0.5, 1.0, size=(n, 1)) * np.linspace(0, 1, DAYS)
    level = rng.uniform(3, 30, size=(n, 1)) * (1 + drift)
    return rng.poisson(level).astype(np.float64)


def intermittent(rng: np.random.Generator, n: int) -> Floats:
    """Demand on a few days in ten, of 1 + Poisson(3) units."""
    days = rng.random((n, DAYS)) < rng.uniform(0.05, 0.3, size=(n, 1))
    return (days * (1 + rng.poisson(3, size=(n, DAYS)))).astype(np.float64)


def ses(y: Floats, alpha: float) -> float:
    """Simple exponential smoothing, level started at the first value."""
    level = y[0]
    for value in y[1:]:
        level = alpha * value + (1 - alpha) * level
    return float(level)


def ses_sse(y: Floats, alpha: float) -> float:
    """The one-step-ahead squared error of SES over `y` (what the optimiser minimises)."""
    level, total = y[0], 0.0
    for value in y[1:]:
        total += (value - level) ** 2
        level = alpha * value + (1 - alpha) * level
    return total


# --- classification ----------------------------------------------------------------


def test_smooth_and_intermittent_series_get_their_own_candidates() -> None:
    """Demand on most days: MA or SES; demand on few days (ADI >= 1.32): SBA or TSB."""
    rng = np.random.default_rng(7)
    batch = forecast_many(np.vstack([smooth(rng, 40), intermittent(rng, 40)]))
    assert set(batch.method[:40]) <= set(SMOOTH)
    assert set(batch.method[40:]) <= set(INTERMITTENT)
    assert (batch.daily_mean >= 0).all() and (batch.daily_sigma >= 0).all()


def test_the_adi_cut_off_is_1_32() -> None:
    """Demand 4 days in 5 (ADI 1.25) is smooth; every other day (ADI 2) is intermittent."""
    four_in_five = np.tile([5.0, 6, 4, 5, 0], DAYS // 5)
    every_other = np.tile([5.0, 0], DAYS)[:DAYS]
    batch = forecast_many(np.vstack([four_in_five, every_other]))
    assert batch.method[0] in SMOOTH
    assert batch.method[1] in INTERMITTENT


# --- the backtest ------------------------------------------------------------------

MODELS: dict[Method, Callable[[], Any]] = {
    Method.MOVING_AVERAGE: lambda: WindowAverage(window_size=28),
    Method.SES: SimpleExponentialSmoothingOptimized,
    Method.CROSTON_SBA: CrostonSBA,
    Method.TSB: lambda: TSB(alpha_d=TSB_ALPHA, alpha_p=TSB_ALPHA),
}


@pytest.mark.parametrize("make", [smooth, intermittent])
def test_the_backtest_picks_the_candidate_with_the_smaller_error(
    make: Callable[[np.random.Generator, int], Floats],
) -> None:
    """Each candidate, fitted on all but the last 28 days, forecasts them; the smaller MAE
    wins, its errors' RMS is sigma, and the winner refitted on everything is the mean."""
    rng = np.random.default_rng(11)
    history = make(rng, 30)
    batch = forecast_many(history)
    candidates = SMOOTH if make is smooth else INTERMITTENT
    for i, y in enumerate(history):
        fit, held = y[:-HOLD], y[-HOLD:]
        errors = {m: held - MODELS[m]().forecast(y=fit, h=1)["mean"][0] for m in candidates}
        mae = {m: float(np.abs(e).mean()) for m, e in errors.items()}
        winner = min(candidates, key=lambda m: mae[m])  # first on ties, as the engine
        assert batch.method[i] == winner
        assert batch.backtest_mae[i] == pytest.approx(mae[winner])
        assert batch.daily_sigma[i] == pytest.approx(np.sqrt((errors[winner] ** 2).mean()))
        refit = MODELS[winner]().forecast(y=y, h=1)["mean"][0]
        assert batch.daily_mean[i] == pytest.approx(refit)


def test_moving_average_and_ses_means_are_what_numpy_computes() -> None:
    """MA: the mean of the last 28 days. SES: the smoothed level at the optimiser's alpha,
    an alpha no value on a fine grid beats on one-step squared error."""
    rng = np.random.default_rng(3)
    history = smooth(rng, 40)
    batch = forecast_many(history)
    seen = set()
    grid = np.linspace(0.01, 0.99, 197)
    for i, y in enumerate(history):
        if batch.method[i] == Method.MOVING_AVERAGE:
            assert batch.daily_mean[i] == pytest.approx(y[-28:].mean())
        else:
            alpha = SimpleExponentialSmoothingOptimized().fit(y=y).model_["alpha"]
            assert 0.01 <= alpha <= 0.99
            assert batch.daily_mean[i] == pytest.approx(ses(y, alpha))
            best_on_grid = min(ses_sse(y, a) for a in grid)
            assert ses_sse(y, alpha) <= best_on_grid * (1 + 1e-4)
        seen.add(str(batch.method[i]))
    assert seen == {Method.MOVING_AVERAGE, Method.SES}  # the data exercise both


def test_croston_sba_and_tsb_means_are_what_numpy_computes() -> None:
    """SBA: 0.95 x smoothed size / smoothed interval; TSB: smoothed probability x smoothed
    size (alpha 0.1 throughout, levels started at the first value)."""
    rng = np.random.default_rng(5)
    history = intermittent(rng, 40)
    batch = forecast_many(history)
    seen = set()
    for i, y in enumerate(history):
        sizes = y[y > 0]
        if batch.method[i] == Method.CROSTON_SBA:
            intervals = np.diff(np.flatnonzero(y) + 1, prepend=0).astype(np.float64)
            expected = 0.95 * ses(sizes, 0.1) / ses(intervals, 0.1)
        else:
            expected = ses((y > 0).astype(np.float64), TSB_ALPHA) * ses(sizes, TSB_ALPHA)
        assert batch.daily_mean[i] == pytest.approx(expected)
        seen.add(str(batch.method[i]))
    assert seen == {Method.CROSTON_SBA, Method.TSB}


# --- edges -------------------------------------------------------------------------


def test_a_series_without_demand_forecasts_zero() -> None:
    """All zeros: method "zero", mean and sigma 0, no backtest."""
    rng = np.random.default_rng(1)
    batch = forecast_many(np.vstack([np.zeros(DAYS), smooth(rng, 1)[0]]), ids=["A", "B"])
    zero = batch.one(0)
    assert (zero.method, zero.daily_mean, zero.daily_sigma) == (Method.ZERO, 0.0, 0.0)
    assert np.isnan(zero.backtest_mae)
    assert list(batch.ids) == ["A", "B"] and batch.method[1] in SMOOTH


def test_a_short_history_falls_back_to_its_mean_and_deviation() -> None:
    """Fewer than 2 x 28 days: the plain mean and (population) standard deviation."""
    values = [3.0, 0, 5, 2, 7, 0, 4] * 7  # 49 days
    one = forecast_one(values)
    assert one.method == Method.MEAN
    assert one.daily_mean == pytest.approx(np.mean(values))
    assert one.daily_sigma == pytest.approx(np.std(values))
    assert forecast_one([]).method == Method.ZERO
    assert forecast_one([0.0] * 10).daily_mean == 0.0


def test_forecast_one_is_a_row_of_forecast_many() -> None:
    """The single-series call gives what the batch gives for that row."""
    rng = np.random.default_rng(2)
    history = np.vstack([smooth(rng, 2), intermittent(rng, 2)])
    batch = forecast_many(history)
    for i, y in enumerate(history):
        assert forecast_one(list(y)) == batch.one(i)


@pytest.mark.parametrize(
    "history",
    [[[1.0, np.nan, 2.0]], [[1.0, -1.0, 2.0]], [[1.0, np.inf]], [1.0, 2.0]],
    ids=["nan", "negative", "infinite", "one-dimensional"],
)
def test_bad_history_is_refused(history: list[object]) -> None:
    """NaN, negative or infinite demand, or a history that is not series x days."""
    with pytest.raises(ValueError):
        forecast_many(np.asarray(history, dtype=np.float64))


def test_ids_must_match_the_series() -> None:
    """One id per row."""
    with pytest.raises(ValueError, match="ids"):
        forecast_many(np.zeros((2, 60)), ids=["only-one"])
