"""Replenishment rules: worked examples, overrides, edges, validation, and the
vectorised plans equal to the one-pair plans."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.supplier.replenishment import (
    MAX_COVER_DAYS,
    Plan,
    PlanInput,
    PlanInputs,
    eoq,
    plan,
    plan_many,
    position,
    safety_stock,
    z_for,
)

TODAY = date(2026, 3, 2)

# d = 10/day, sd_d = 3, L = 7 days, sd_L = 2 days, 95 % service, EOQ inputs S = 50 per PO,
# unit cost 4 at 25 %/year (H = 1), MOQ 50, packs of 12.
BASE = PlanInput(
    on_hand=40,
    reserved=5,
    held=0,
    backordered=0,
    on_order=0,
    daily_mean=10.0,
    daily_sigma=3.0,
    lead_days=7.0,
    lead_sd_days=2.0,
    service_level=0.95,
    order_cost=50.0,
    unit_cost=4.0,
    holding_rate=0.25,
    moq=50,
    pack=12,
)


# --- worked examples ---------------------------------------------------------------


def test_worked_example_where_the_eoq_decides() -> None:
    """z(0.95) = 1.644854; SS = 1.644854 * sqrt(7*3^2 + 10^2*2^2) = 1.644854 * sqrt(463)
    = 35.393 -> 36; ROP = 10*7 + 35.393 = 105.393 -> 106 = target (continuous review);
    position = 40 - 5 = 35; EOQ = sqrt(2 * 3650 * 50 / 1) = 604.15 -> 605;
    quantity = max(605, 106 - 35 = 71) = 605 >= MOQ 50 -> 51 packs of 12 = 612;
    needed (35 <= 106); cover (35 - 35.393) / 10 < 0 -> need by today."""
    assert z_for(0.95) == pytest.approx(1.644854, abs=1e-6)
    assert safety_stock(z_for(0.95), 7.0, 2.0, 10.0, 3.0) == pytest.approx(35.3930, abs=1e-4)
    assert eoq(10.0, 50.0, 4.0, 0.25) == pytest.approx(604.152, abs=1e-3)
    assert figures(plan(BASE, TODAY)) == (35, 36, 106, 106, 605, 612, TODAY, True)


def test_worked_example_where_the_target_decides() -> None:
    """S = 2 -> EOQ = sqrt(2 * 3650 * 2) = 120.83 -> 121; a 14-day review period: target
    = 105.393 + 10*14 = 245.393 -> 246; position = 120 - 10 reserved - 5 held - 8
    backordered = 97; quantity = max(121, 246 - 97 = 149) = 149 -> 13 packs of 12 = 156;
    needed (97 <= 106); cover (97 - 35.393) / 10 = 6.16 -> need by in 6 days."""
    item = replace(
        BASE, on_hand=120, reserved=10, held=5, backordered=8, order_cost=2.0, review_period_days=14
    )
    assert figures(plan(item, TODAY)) == (97, 36, 106, 246, 121, 156, TODAY + timedelta(6), True)


def test_worked_example_where_the_moq_decides() -> None:
    """d = 1, sd_d = 1, L = 5, sd_L = 0, z(0.90) = 1.281552: SS = 1.281552 * sqrt(5) = 2.866
    -> 3; ROP = 5 + 2.866 = 7.866 -> 8; no order cost, so EOQ 0; position 4; quantity =
    max(0, 8 - 4) = 4 -> MOQ 50 -> 5 packs of 12 = 60; cover (4 - 2.866) / 1 -> 1 day."""
    item = PlanInput(
        on_hand=4,
        reserved=0,
        held=0,
        backordered=0,
        on_order=0,
        daily_mean=1.0,
        daily_sigma=1.0,
        lead_days=5.0,
        service_level=0.90,
        moq=50,
        pack=12,
    )
    assert figures(plan(item, TODAY)) == (4, 3, 8, 8, 0, 60, TODAY + timedelta(1), True)


def figures(p: Plan) -> tuple[object, ...]:
    """position, safety stock, reorder point, target, EOQ, quantity, need-by, needed."""
    return (
        p.position,
        p.safety_stock,
        p.reorder_point,
        p.target,
        p.eoq,
        p.quantity,
        p.need_by,
        p.needed,
    )


# --- rules -------------------------------------------------------------------------


def test_stock_on_order_counts_and_committed_stock_does_not() -> None:
    """Position = on hand - reserved - held - backordered + on order."""
    assert position(100, 20, 5, 7, 30) == 98
    covered = replace(BASE, on_order=200)  # enough on its way: no signal
    assert plan(covered, TODAY).position == 235
    assert not plan(covered, TODAY).needed


def test_min_and_max_override_reorder_point_and_target() -> None:
    """The policy's min is the reorder point, its max the target; above min: no signal."""
    policy = replace(BASE, min_qty=20, max_qty=100, order_cost=0.0, moq=1, pack=1)
    low = plan(replace(policy, on_hand=15, reserved=0), TODAY)
    assert (low.reorder_point, low.target, low.quantity, low.needed) == (20, 100, 85, True)
    high = plan(replace(policy, on_hand=25, reserved=0), TODAY)
    assert (high.quantity, high.needed) == (75, False)  # what an order would be
    only_min = plan(replace(policy, max_qty=None, min_qty=500, on_hand=0, reserved=0), TODAY)
    assert only_min.reorder_point == only_min.target == 500  # the target never below it


def test_no_demand_orders_nothing() -> None:
    """d = 0: no safety stock, reorder point 0, EOQ 0: nothing to order, need by today."""
    none = replace(BASE, daily_mean=0.0, daily_sigma=0.0, on_hand=0, reserved=0)
    result = plan(none, TODAY)
    assert (result.safety_stock, result.reorder_point, result.eoq, result.quantity) == (0, 0, 0, 0)
    assert not result.needed and result.need_by == TODAY


def test_eoq_is_zero_without_demand_order_cost_or_holding_cost() -> None:
    """Any of D, S, H zero gives EOQ 0 (no division by a zero holding cost)."""
    assert eoq(0.0, 50.0, 4.0, 0.25) == 0
    assert eoq(10.0, 0.0, 4.0, 0.25) == 0
    assert eoq(10.0, 50.0, 0.0, 0.25) == 0
    assert eoq(10.0, 50.0, 4.0, 0.0) == 0


def test_cover_is_capped() -> None:
    """A negligible forecast gives a need-by date MAX_COVER_DAYS ahead, not an overflow."""
    result = plan(replace(BASE, daily_mean=1e-9, daily_sigma=0.0, on_hand=1000), TODAY)
    assert result.need_by == TODAY + timedelta(MAX_COVER_DAYS)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lead_days": -1.0}, "lead_days"),
        ({"lead_sd_days": -0.5}, "lead_sd_days"),
        ({"moq": 0}, "moq"),
        ({"pack": 0}, "pack"),
        ({"service_level": 0.5}, "service_level"),
        ({"service_level": 1.0}, "service_level"),
        ({"daily_mean": float("nan")}, "daily_mean"),
        ({"on_hand": -3}, "on_hand"),
        ({"min_qty": 10, "max_qty": 5}, "max_qty"),
    ],
)
def test_bad_inputs_are_refused(change: dict[str, float], field: str) -> None:
    """Negative lead times or stock, MOQ or pack below 1, service level outside
    (0.5, 0.9999], NaN, max below min."""
    with pytest.raises(ValueError, match=field):
        plan(replace(BASE, **change), TODAY)  # type: ignore[arg-type]


def test_a_holding_cost_near_zero_is_refused() -> None:
    """An EOQ beyond any real order (H ~ 0) is a data error, not a quantity."""
    with pytest.raises(ValueError, match="EOQ"):
        plan(replace(BASE, unit_cost=1e-300), TODAY)


def test_z_is_the_normal_quantile() -> None:
    """z_for(0.5 < p <= 0.9999) is the standard normal inverse CDF."""
    assert z_for(0.9) == pytest.approx(1.281552, abs=1e-6)
    assert z_for(0.9999) == pytest.approx(3.719016, abs=1e-6)
    with pytest.raises(ValueError):
        z_for(0.4)


# --- many pairs --------------------------------------------------------------------

inputs = st.builds(
    PlanInput,
    on_hand=st.integers(0, 5000),
    reserved=st.integers(0, 500),
    held=st.integers(0, 100),
    backordered=st.integers(0, 100),
    on_order=st.integers(0, 2000),
    daily_mean=st.floats(0, 200),
    daily_sigma=st.floats(0, 50),
    lead_days=st.floats(0, 60),
    lead_sd_days=st.floats(0, 10),
    service_level=st.sampled_from([0.8, 0.9, 0.95, 0.975, 0.99, 0.9999]),
    review_period_days=st.sampled_from([0.0, 7.0, 14.0]),
    order_cost=st.floats(0, 500),
    unit_cost=st.just(0.0) | st.floats(0.01, 100),
    holding_rate=st.just(0.0) | st.floats(0.01, 0.5),
    moq=st.integers(1, 200),
    pack=st.integers(1, 48),
    min_qty=st.none() | st.integers(0, 300),
    max_qty=st.none() | st.integers(300, 3000),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(inputs, min_size=1, max_size=20))
def test_plan_many_equals_plan_pair_by_pair(items: list[PlanInput]) -> None:
    """The arrays' plans are the one-pair plans, element by element, and keep the rules:
    whole packs, at least the MOQ, a target not below the reorder point."""
    batch = plan_many(PlanInputs.of(items), TODAY)
    assert len(batch) == len(items)
    for i, item in enumerate(items):
        one = plan(item, TODAY)
        assert batch.plan(i) == one
        assert one.quantity % item.pack == 0
        assert one.quantity == 0 or one.quantity >= item.moq
        assert one.target >= one.reorder_point and one.need_by >= TODAY
        assert one.needed == (one.position <= one.reorder_point and one.quantity > 0)


def test_plan_many_broadcasts_scalars() -> None:
    """A scalar applies to every pair; an array gives one value per pair."""
    batch = plan_many(
        PlanInputs(
            on_hand=np.array([40, 400]),
            reserved=5,
            held=0,
            backordered=0,
            on_order=0,
            daily_mean=10.0,
            daily_sigma=3.0,
            lead_days=7.0,
            lead_sd_days=2.0,
            service_level=0.95,
            order_cost=50.0,
            unit_cost=4.0,
            holding_rate=0.25,
            moq=50,
            pack=12,
        ),
        TODAY,
    )
    assert batch.plan(0) == plan(BASE, TODAY)
    assert list(batch.needed) == [True, False]
