"""Replenishment rules: inventory position, safety stock, reorder point, order quantity.

Pure functions, no I/O. One set of formulas, evaluated over numpy arrays with one element
per SKU/warehouse pair: `plan_many` runs it for periodic review (and the benchmark),
`plan` for one pair under continuous review (the same code on arrays of one element), so
the two cannot drift apart. The formula helpers (`safety_stock`, `eoq`, `position`)
accept floats or arrays alike.

For one pair, with d and sd_d the forecast demand per day and its standard deviation,
L and sd_L the supplier's lead time and its standard deviation in days, z the standard
normal quantile of the service level, R the review period (0 for continuous review):

    position       = on hand - reserved - held - backordered + on order
    safety stock   = z * sqrt(L * sd_d**2 + d**2 * sd_L**2)
    reorder point  = d * L + safety stock            (the policy's min replaces it)
    target         = reorder point + d * R            (the policy's max replaces it)
    EOQ            = sqrt(2 * D * S / H), D = 365 * d, S = cost per purchase order,
                     H = unit cost * annual holding rate     (0 when D, S or H is 0)
    quantity       = max(EOQ, target - position), then at least the MOQ, then rounded
                     up to a multiple of the pack size     (0 when that max is <= 0)
    needed         = position <= reorder point and quantity > 0
    need by        = today + floor((position - safety stock) / d) days, not before
                     today (today when d = 0)

Reported quantities are whole units rounded up (a fractional unit left out would
under-stock); the exact values feed the next step. The target is never below the reorder
point. `quantity` is what an order placed now would be, whether or not one is needed.

The position subtracts backorders because they are demand already promised to customers
that no stock was reserved for (there was none): the next receipt goes to them first.
That is the standard inventory position (on hand + on order - backorders), with reserved
and held (quarantined, damaged) stock left out as well, since neither can serve new
demand.

The need-by date is when the stock would fall to the safety stock if demand runs at the
forecast: the safety stock is for variability, not for planned use. When a signal is
needed (position <= d * L + safety stock) it lies within the lead time from today, so an
order placed today at the mean lead time arrives after it by the part of the lead time
the position no longer covers, which is what the safety stock absorbs. Cover is capped
at `MAX_COVER_DAYS`, so that a negligible forecast still gives a representable date.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date
from statistics import NormalDist
from typing import TypeVar

import numpy as np
import numpy.typing as npt

__all__ = [
    "MAX_COVER_DAYS",
    "Plan",
    "PlanBatch",
    "PlanInput",
    "PlanInputs",
    "eoq",
    "plan",
    "plan_many",
    "position",
    "safety_stock",
    "z_for",
]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
X = TypeVar("X", float, Floats)

DAYS_PER_YEAR = 365
MAX_COVER_DAYS = 3650  # ten years: beyond any planning horizon
MAX_UNITS = 10**12  # a target or EOQ beyond this is a data error, refused
_EPS = 1e-9  # float noise tolerated before rounding a quantity up


def z_for(service_level: float) -> float:
    """The standard normal quantile for a cycle service level in (0.5, 0.9999]."""
    if not 0.5 < service_level <= 0.9999:
        raise ValueError(f"service level must be in (0.5, 0.9999], got {service_level}")
    return NormalDist().inv_cdf(service_level)


def safety_stock(z: X, lead_days: X, lead_sd_days: X, d_mean: X, d_sd: X) -> X:
    """z * sqrt(L * sd_d**2 + d**2 * sd_L**2): stock against demand and lead-time variability."""
    return z * np.sqrt(lead_days * d_sd**2 + d_mean**2 * lead_sd_days**2)


def eoq(d_mean: X, order_cost: X, unit_cost: X, holding_rate: X) -> X:
    """Economic order quantity sqrt(2 * D * S / H), D = 365 * d, H = unit cost * holding
    rate; 0 when D, S or H is 0."""
    holding = unit_cost * holding_rate
    # No demand or no order cost give 0 by themselves; no holding cost is kept out of
    # the division and zeroed after it.
    quantity = np.sqrt(2 * d_mean * DAYS_PER_YEAR * order_cost / (holding + (holding <= 0)))
    return quantity * (holding > 0)


def position(on_hand: X, reserved: X, held: X, backordered: X, on_order: X) -> X:
    """Inventory position: what can serve new demand, counting stock on its way."""
    return on_hand - reserved - held - backordered + on_order


def _ceil(x: Floats) -> Ints:
    """Whole units, rounded up past float noise."""
    return np.ceil(x - _EPS).astype(np.int64)


# --- one pair ---------------------------------------------------------------------


@dataclass(frozen=True)
class PlanInput:
    """One SKU/warehouse pair: its stock, its forecast, its supplier terms and policy.

    `min_qty`/`max_qty` are the policy's manual override of the reorder point and the
    target; `review_period_days` is 0 for continuous review."""

    on_hand: int
    reserved: int
    held: int
    backordered: int
    on_order: int
    daily_mean: float
    daily_sigma: float
    lead_days: float
    lead_sd_days: float = 0.0
    service_level: float = 0.95
    review_period_days: float = 0.0
    order_cost: float = 0.0
    unit_cost: float = 0.0
    holding_rate: float = 0.0
    moq: int = 1
    pack: int = 1
    min_qty: int | None = None
    max_qty: int | None = None


@dataclass(frozen=True)
class Plan:
    """The replenishment figures of one pair; `needed` says whether to raise a signal."""

    position: int
    daily_mean: float
    daily_sigma: float
    safety_stock: int
    reorder_point: int
    target: int
    eoq: int
    quantity: int
    need_by: date
    needed: bool


def plan(item: PlanInput, today: date) -> Plan:
    """The plan of one pair (continuous review)."""
    return plan_many(PlanInputs.of([item]), today).plan(0)


# --- many pairs -------------------------------------------------------------------


@dataclass(frozen=True)
class PlanInputs:
    """`PlanInput` as arrays, one element per pair (scalars broadcast). `min_qty` and
    `max_qty` are NaN where the policy has no override."""

    on_hand: npt.ArrayLike
    reserved: npt.ArrayLike
    held: npt.ArrayLike
    backordered: npt.ArrayLike
    on_order: npt.ArrayLike
    daily_mean: npt.ArrayLike
    daily_sigma: npt.ArrayLike
    lead_days: npt.ArrayLike
    lead_sd_days: npt.ArrayLike = 0.0
    service_level: npt.ArrayLike = 0.95
    review_period_days: npt.ArrayLike = 0.0
    order_cost: npt.ArrayLike = 0.0
    unit_cost: npt.ArrayLike = 0.0
    holding_rate: npt.ArrayLike = 0.0
    moq: npt.ArrayLike = 1
    pack: npt.ArrayLike = 1
    min_qty: npt.ArrayLike = np.nan
    max_qty: npt.ArrayLike = np.nan

    @classmethod
    def of(cls, items: Sequence[PlanInput]) -> PlanInputs:
        """The arrays of a list of pairs."""
        columns: dict[str, list[float]] = {f.name: [] for f in fields(PlanInput)}
        for item in items:
            for name, column in columns.items():
                value = getattr(item, name)
                column.append(math.nan if value is None else value)
        return cls(
            **{name: np.asarray(column, dtype=np.float64) for name, column in columns.items()}
        )


@dataclass(frozen=True)
class PlanBatch:
    """`Plan` as arrays, one element per pair; `need_by` is datetime64[D]."""

    position: Ints
    daily_mean: Floats
    daily_sigma: Floats
    safety_stock: Ints
    reorder_point: Ints
    target: Ints
    eoq: Ints
    quantity: Ints
    need_by: npt.NDArray[np.datetime64]
    needed: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.position)

    def plan(self, i: int) -> Plan:
        """The plan of pair `i`."""
        return Plan(
            position=int(self.position[i]),
            daily_mean=float(self.daily_mean[i]),
            daily_sigma=float(self.daily_sigma[i]),
            safety_stock=int(self.safety_stock[i]),
            reorder_point=int(self.reorder_point[i]),
            target=int(self.target[i]),
            eoq=int(self.eoq[i]),
            quantity=int(self.quantity[i]),
            need_by=self.need_by[i].item(),
            needed=bool(self.needed[i]),
        )


_COUNTS = ("on_hand", "reserved", "held", "backordered", "on_order")
_NON_NEGATIVE = (
    *_COUNTS,
    "daily_mean",
    "daily_sigma",
    "lead_days",
    "lead_sd_days",
    "review_period_days",
    "order_cost",
    "unit_cost",
    "holding_rate",
)


def _columns(inputs: PlanInputs) -> dict[str, Floats]:
    """The inputs as 1-D float arrays of one length, validated."""
    names = [f.name for f in fields(PlanInputs)]
    arrays = np.broadcast_arrays(
        *(np.atleast_1d(np.asarray(getattr(inputs, n), dtype=np.float64)) for n in names)
    )
    cols = dict(zip(names, arrays, strict=True))
    if cols["on_hand"].ndim != 1:
        raise ValueError("plan inputs must be one-dimensional (one element per pair)")

    def refuse(name: str, bad: npt.NDArray[np.bool_], rule: str) -> None:
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{name} {rule} (pair {i}: {cols[name][i]})")

    for name in _NON_NEGATIVE:
        refuse(name, ~(cols[name] >= 0) | ~np.isfinite(cols[name]), "must be a finite number >= 0")
    for name in _COUNTS:
        refuse(name, cols[name] != np.floor(cols[name]), "must be a whole number")
    for name in ("moq", "pack"):
        refuse(
            name,
            ~(cols[name] >= 1) | (cols[name] != np.floor(cols[name])),
            "must be a whole number >= 1",
        )
    level = cols["service_level"]
    refuse("service_level", ~((level > 0.5) & (level <= 0.9999)), "must be in (0.5, 0.9999]")
    lo, hi = cols["min_qty"], cols["max_qty"]
    for name, bound in (("min_qty", lo), ("max_qty", hi)):
        given = ~np.isnan(bound)  # NaN: no override
        whole = (bound >= 0) & np.isfinite(bound) & (bound == np.floor(bound))
        refuse(name, given & ~whole, "must be a whole number >= 0")
    refuse("max_qty", hi < lo, "must not be below min_qty")
    return cols


def plan_many(inputs: PlanInputs, today: date) -> PlanBatch:
    """The plans of many pairs at once (periodic review); see the module docstring."""
    c = _columns(inputs)
    d_mean, lead = c["daily_mean"], c["lead_days"]

    levels, where = np.unique(c["service_level"], return_inverse=True)
    z = np.array([z_for(float(level)) for level in levels])[where.reshape(-1)]
    pos = position(c["on_hand"], c["reserved"], c["held"], c["backordered"], c["on_order"])
    with np.errstate(over="ignore", invalid="ignore"):  # out of range: refused below
        ss = safety_stock(z, lead, c["lead_sd_days"], d_mean, c["daily_sigma"])
        rop = d_mean * lead + ss
        target = rop + d_mean * c["review_period_days"]
        order = eoq(d_mean, c["order_cost"], c["unit_cost"], c["holding_rate"])
        cover = np.divide(pos - ss, d_mean, out=np.zeros_like(d_mean), where=d_mean > 0)
    beyond = ~((target <= MAX_UNITS) & (order <= MAX_UNITS))  # also NaN; ss <= rop <= target
    if beyond.any():
        i = int(np.argmax(beyond))
        raise ValueError(
            f"pair {i}: its target or EOQ is beyond {MAX_UNITS} units (a holding cost near 0?)"
        )

    rop_units = np.where(np.isnan(c["min_qty"]), _ceil(rop), c["min_qty"]).astype(np.int64)
    target_units = np.where(np.isnan(c["max_qty"]), _ceil(target), c["max_qty"]).astype(np.int64)
    target_units = np.maximum(target_units, rop_units)
    pos_units = pos.astype(np.int64)
    eoq_units = _ceil(order)
    raw = np.maximum(eoq_units, target_units - pos_units)
    moq, pack = c["moq"].astype(np.int64), c["pack"].astype(np.int64)
    quantity = np.where(raw > 0, -(-np.maximum(raw, moq) // pack) * pack, 0)
    days = np.clip(np.floor(cover), 0, MAX_COVER_DAYS).astype("timedelta64[D]")
    return PlanBatch(
        position=pos_units,
        daily_mean=d_mean,
        daily_sigma=c["daily_sigma"],
        safety_stock=_ceil(ss),
        reorder_point=rop_units,
        target=target_units,
        eoq=eoq_units,
        quantity=quantity.astype(np.int64),
        need_by=np.datetime64(today, "D") + days,
        needed=(pos_units <= rop_units) & (quantity > 0),
    )
