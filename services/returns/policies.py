"""Return policies and the reason hierarchy: which policy a return falls under and what
it decides (`evaluate`), and the restocking fee (`restocking_fee`).

A return's policy is its lines' category policy when they all share one, else the
default (`category` None, seeded by migration 0003). Reasons are `parent` or
`parent.sub`; a policy allows parents, and allowing a parent allows its sub-reasons.
Merchant-fault reasons never carry a restocking fee; recall returns have no policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.problems import Conflict, NotFound, Unprocessable
from services.returns.rma_models import ReturnPolicy
from services.returns.schemas import PolicyCreate, PolicyIn

DEFAULT_POLICY = "default"
RECALL_REASON = "recall"
CENTS = Decimal("0.01")


@dataclass(frozen=True)
class Reason:
    """One top-level return reason and its sub-reasons."""

    code: str
    merchant_fault: bool
    subs: tuple[str, ...] = ()


REASONS: dict[str, Reason] = {
    r.code: r
    for r in (
        Reason("damaged", True, ("in_transit", "packaging")),
        Reason("defective", True, ("dead_on_arrival", "stopped_working")),
        Reason("wrong_item", True, ("wrong_sku", "wrong_size", "missing_parts")),
        Reason("not_as_described", True),
        Reason("no_longer_needed", False, ("changed_mind", "better_price", "ordered_by_mistake")),
        Reason(RECALL_REASON, True),
    )
}
CUSTOMER_REASONS = frozenset(REASONS) - {RECALL_REASON}


def parent_of(reason: str) -> Reason | None:
    """The top-level reason of `parent` or `parent.sub`; None when it is not one."""
    parent, _, sub = reason.partition(".")
    found = REASONS.get(parent)
    if found is None or (sub and sub not in found.subs):
        return None
    return found


def check_customer_reason(reason: str) -> Reason:
    """422 `unknown_reason` unless `reason` is in the hierarchy (recall is not a customer's)."""
    found = parent_of(reason)
    if found is None or found.code == RECALL_REASON:
        raise Unprocessable(
            f"unknown return reason {reason!r}; known: {', '.join(sorted(CUSTOMER_REASONS))} "
            "(optionally `.sub-reason`)",
            code="unknown_reason",
        )
    return found


def is_merchant_fault(reason: str) -> bool:
    found = parent_of(reason)
    return found is not None and found.merchant_fault


async def get_policy(session: AsyncSession, policy_id: str) -> ReturnPolicy:
    policy = await session.get(ReturnPolicy, policy_id)
    if policy is None:
        raise NotFound(f"return policy {policy_id} not found")
    return policy


async def policy_for(session: AsyncSession, categories: set[str | None]) -> ReturnPolicy:
    """The category policy of the lines when they share one that has a policy, else the
    default."""
    if len(categories) == 1:
        (category,) = categories
        if category is not None:
            found = (
                await session.execute(
                    sa.select(ReturnPolicy).where(ReturnPolicy.category == category)
                )
            ).scalar_one_or_none()
            if found is not None:
                return found
    return await get_policy(session, DEFAULT_POLICY)


@dataclass(frozen=True)
class Decision:
    """What the policy says of one return: authorize, reject or review, and why."""

    decision: str
    reason: str
    keep_it: bool = False


def evaluate(
    policy: ReturnPolicy,
    *,
    reason: str,
    condition: str | None,
    delivered_at: datetime | None,
    line_values: list[Decimal],
    now: datetime | None = None,
) -> Decision:
    """The policy's decision on a customer return (pure: the rules in one place)."""
    now = now or datetime.now(UTC)
    if delivered_at is None or now > delivered_at + timedelta(days=policy.window_days):
        return Decision("reject", f"outside the {policy.window_days}-day return window")
    parent = parent_of(reason)
    if parent is None or parent.code not in policy.allowed_reasons:
        return Decision("reject", f"reason {reason!r} is not allowed by policy {policy.id}")
    if policy.required_condition is not None and condition != policy.required_condition:
        return Decision(
            "review", f"condition {condition!r} is not the required {policy.required_condition!r}"
        )
    if not policy.auto_authorize:
        return Decision("review", f"policy {policy.id} does not authorize automatically")
    threshold = policy.keep_it_threshold
    keep_it = threshold > 0 and all(value <= threshold for value in line_values)
    return Decision("authorize", f"inside policy {policy.id}", keep_it=keep_it)


def restocking_fee(policy: ReturnPolicy | None, reason: str, gross: Decimal) -> Decimal:
    """The fee kept from a refund of `gross`: none for merchant-fault reasons, recalls
    and fee-less policies; never more than `gross`."""
    if policy is None or is_merchant_fault(reason) or policy.restocking_fee_kind == "none":
        return Decimal("0.00")
    if policy.restocking_fee_kind == "fixed":
        fee = policy.restocking_fee_value
    else:
        fee = (gross * policy.restocking_fee_value / 100).quantize(CENTS, ROUND_HALF_UP)
    return min(fee, gross).quantize(CENTS)


async def delete_policy(session: AsyncSession, policy_id: str) -> None:
    if policy_id == DEFAULT_POLICY:
        raise Conflict("the default return policy cannot be deleted", code="default_policy")
    policy = await get_policy(session, policy_id)
    await session.delete(policy)


def _check_fee(body: PolicyIn) -> None:
    if body.restocking_fee_kind == "percent" and body.restocking_fee_value > 100:
        raise Unprocessable("a percent restocking fee is at most 100", code="invalid_fee")


def _apply(policy: ReturnPolicy, body: PolicyIn) -> None:
    for name, value in body.model_dump(exclude={"id"}).items():
        setattr(policy, name, value)
    policy.allowed_reasons = list(body.allowed_reasons)


async def _category_taken(session: AsyncSession, category: str | None, policy_id: str) -> bool:
    if category is None:
        return False
    clash = await session.execute(
        sa.select(ReturnPolicy.id).where(
            ReturnPolicy.category == category, ReturnPolicy.id != policy_id
        )
    )
    return clash.first() is not None


async def create_policy(session: AsyncSession, body: PolicyCreate) -> ReturnPolicy:
    """A new category's policy: 409 `policy_exists` when the id or category has one,
    422 `invalid_fee` for a percent fee above 100."""
    _check_fee(body)
    if await session.get(ReturnPolicy, body.id) is not None or await _category_taken(
        session, body.category, body.id
    ):
        raise Conflict(
            f"policy {body.id} or one for category {body.category} exists", code="policy_exists"
        )
    now = datetime.now(UTC)
    policy = ReturnPolicy(id=body.id, version=1, created_at=now, updated_at=now)
    _apply(policy, body)
    session.add(policy)
    await session.flush()
    return policy


async def replace_policy(session: AsyncSession, policy_id: str, body: PolicyIn) -> ReturnPolicy:
    """Replace a policy: only the default has no category (422 `category_required`), a
    category has one policy (409 `policy_exists`), 422 `invalid_fee` as above."""
    _check_fee(body)
    policy = await get_policy(session, policy_id)
    if (body.category is None) != (policy_id == DEFAULT_POLICY):
        raise Unprocessable("only the default policy has no category", code="category_required")
    if await _category_taken(session, body.category, policy_id):
        raise Conflict(f"category {body.category} has another policy", code="policy_exists")
    _apply(policy, body)
    policy.version += 1
    policy.updated_at = datetime.now(UTC)
    await session.flush()
    return policy
