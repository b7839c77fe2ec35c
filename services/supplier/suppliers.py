"""Master data: suppliers, the items they sell (terms, lead time, MOQ, pack size, from
when to when) and the replenishment policy of each SKU x warehouse.

A supplier's webhook secret is made on creation (and by rotation) and answered only
then; it signs the webhook posts (`webhooks.py`). A supplier (role `supplier`) sees its
own record and items only: any other id is a 404, as if it did not exist.

Errors (each a problem; nothing is written):

    404 not_found          the supplier or item does not exist, or is not the caller's
    409 supplier_exists    a supplier with that id exists
    409 item_exists        the supplier already sells the SKU from that date
    422 invalid_dates      `effective_to` before `effective_from`
    422 invalid_bounds     a policy's `max_qty` below its `min_qty`
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.auth import Principal, Role
from services.common.pagination import decode_cursor, encode_cursor
from services.common.problems import Conflict, NotFound, ProblemError, Unprocessable
from services.supplier.models import ReplenishmentPolicy, Supplier, SupplierItem
from services.supplier.schemas import (
    ItemCreate,
    ItemOut,
    ItemPage,
    ItemUpdate,
    PolicyIn,
    PolicyOut,
    PolicyPage,
    SupplierCreate,
    SupplierOut,
    SupplierPage,
    SupplierUpdate,
)


def new_secret() -> str:
    """A webhook signing secret: 256 random bits as 64 hex digits."""
    return secrets.token_hex(32)


async def _insert(session: AsyncSession, row: Any, conflict: ProblemError) -> None:
    """Add `row`; a unique key taken meanwhile is `conflict`, not a 500."""
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError as exc:
        raise conflict from exc


# --- suppliers ------------------------------------------------------------------------


async def load(
    session: AsyncSession, supplier_id: str, caller: Principal | None = None, *, lock: bool = False
) -> Supplier:
    """The supplier; 404 when unknown or (with `caller`) not the caller's to see."""
    if caller is not None:
        caller.ensure_supplier(supplier_id, f"supplier {supplier_id}")
    query = sa.select(Supplier).where(Supplier.id == supplier_id)
    if lock:
        query = query.with_for_update()
    supplier = (await session.execute(query)).scalar_one_or_none()
    if supplier is None:
        raise NotFound(f"supplier {supplier_id} not found")
    return supplier


async def create(session: AsyncSession, body: SupplierCreate) -> tuple[Supplier, str]:
    """A new supplier and its webhook secret (to be shown once)."""
    exists = Conflict(f"supplier {body.id} exists", code="supplier_exists")
    if await session.get(Supplier, body.id) is not None:
        raise exists
    now = datetime.now(UTC)
    secret = new_secret()
    supplier = Supplier(
        id=body.id,
        name=body.name,
        contacts=[c.model_dump(exclude_none=True) for c in body.contacts],
        webhook_url=body.webhook_url,
        webhook_secret=secret,
        active=body.active,
        version=1,
        created_at=now,
        updated_at=now,
    )
    await _insert(session, supplier, exists)
    return supplier, secret


async def update(session: AsyncSession, supplier: Supplier, body: SupplierUpdate) -> Supplier:
    for name in body.model_fields_set:
        value = getattr(body, name)
        if name == "contacts":
            value = [c.model_dump(exclude_none=True) for c in body.contacts or []]
        setattr(supplier, name, value)
    supplier.version += 1
    supplier.updated_at = datetime.now(UTC)
    await session.flush()
    return supplier


async def rotate_secret(session: AsyncSession, supplier: Supplier) -> str:
    """A new webhook secret; deliveries still pending are signed with it."""
    supplier.webhook_secret = new_secret()
    supplier.version += 1
    supplier.updated_at = datetime.now(UTC)
    await session.flush()
    return supplier.webhook_secret


async def page(
    session: AsyncSession,
    caller: Principal,
    *,
    active: bool | None,
    limit: int,
    cursor: str | None,
) -> SupplierPage:
    """Suppliers by id; a supplier sees only itself."""
    query = sa.select(Supplier).order_by(Supplier.id).limit(limit + 1)
    if caller.role is Role.SUPPLIER:
        query = query.where(Supplier.id == caller.supplier_id)
    if active is not None:
        query = query.where(Supplier.active.is_(active))
    if cursor:
        (last,) = decode_cursor(cursor, str)
        query = query.where(Supplier.id > last)
    rows = list((await session.execute(query)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return SupplierPage(
        items=[SupplierOut.model_validate(row) for row in rows],
        next_cursor=encode_cursor(rows[-1].id) if more else None,
    )


# --- items ----------------------------------------------------------------------------


def _check_dates(effective_from: date, effective_to: date | None) -> None:
    if effective_to is not None and effective_to < effective_from:
        raise Unprocessable(
            f"effective_to {effective_to} is before effective_from {effective_from}",
            code="invalid_dates",
        )


def _item_exists(supplier_id: str, sku: str, start: date) -> Conflict:
    return Conflict(f"supplier {supplier_id} already sells {sku} from {start}", code="item_exists")


async def load_item(
    session: AsyncSession, item_id: str, caller: Principal | None = None, *, lock: bool = False
) -> SupplierItem:
    query = sa.select(SupplierItem).where(SupplierItem.id == item_id)
    if lock:
        query = query.with_for_update()
    item = (await session.execute(query)).scalar_one_or_none()
    if item is None:
        raise NotFound(f"supplier item {item_id} not found")
    if caller is not None:
        caller.ensure_supplier(item.supplier_id, f"supplier item {item_id}")
    return item


async def add_item(session: AsyncSession, supplier: Supplier, body: ItemCreate) -> SupplierItem:
    start = body.effective_from or datetime.now(UTC).date()
    _check_dates(start, body.effective_to)
    now = datetime.now(UTC)
    item = SupplierItem(
        id=str(uuid.uuid4()),
        supplier_id=supplier.id,
        sku=body.sku,
        supplier_part_number=body.supplier_part_number,
        unit_cost=body.unit_cost,
        currency=body.currency,
        lead_time_days=body.lead_time_days,
        lead_time_sd_days=body.lead_time_sd_days,
        moq=body.moq,
        pack_multiple=body.pack_multiple,
        effective_from=start,
        effective_to=body.effective_to,
        priority=body.priority,
        version=1,
        created_at=now,
        updated_at=now,
    )
    await _insert(session, item, _item_exists(supplier.id, body.sku, start))
    return item


async def update_item(session: AsyncSession, item: SupplierItem, body: ItemUpdate) -> SupplierItem:
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    start = changes.get("effective_from", item.effective_from)
    end = changes.get("effective_to", item.effective_to)
    _check_dates(start, end)
    try:
        async with session.begin_nested():
            for name, value in changes.items():
                setattr(item, name, value)
            item.version += 1
            item.updated_at = datetime.now(UTC)
            await session.flush()
    except IntegrityError as exc:
        raise _item_exists(item.supplier_id, item.sku, start) from exc
    return item


async def item_page(
    session: AsyncSession,
    supplier: Supplier,
    *,
    sku: str | None,
    limit: int,
    cursor: str | None,
) -> ItemPage:
    """The supplier's items by SKU, then id."""
    query = (
        sa.select(SupplierItem)
        .where(SupplierItem.supplier_id == supplier.id)
        .order_by(SupplierItem.sku, SupplierItem.id)
        .limit(limit + 1)
    )
    if sku is not None:
        query = query.where(SupplierItem.sku == sku)
    if cursor:
        last_sku, last_id = decode_cursor(cursor, str, str)
        query = query.where(
            sa.tuple_(SupplierItem.sku, SupplierItem.id)
            > sa.tuple_(sa.literal(last_sku), sa.literal(last_id))
        )
    rows = list((await session.execute(query)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return ItemPage(
        items=[ItemOut.model_validate(row) for row in rows],
        next_cursor=encode_cursor(rows[-1].sku, rows[-1].id) if more else None,
    )


async def effective_items(
    session: AsyncSession, sku: str, on: date, *, supplier_id: str | None = None
) -> Sequence[SupplierItem]:
    """The items selling `sku` on day `on` from active suppliers, preferred first (lowest
    priority value, then the oldest)."""
    query = (
        sa.select(SupplierItem)
        .join(Supplier, Supplier.id == SupplierItem.supplier_id)
        .where(
            SupplierItem.sku == sku,
            Supplier.active.is_(True),
            SupplierItem.effective_from <= on,
            sa.or_(SupplierItem.effective_to.is_(None), SupplierItem.effective_to >= on),
        )
        .order_by(SupplierItem.priority, SupplierItem.created_at, SupplierItem.id)
    )
    if supplier_id is not None:
        query = query.where(SupplierItem.supplier_id == supplier_id)
    return (await session.execute(query)).scalars().all()


async def supplier_items_on(
    session: AsyncSession, supplier_id: str, on: date
) -> Sequence[SupplierItem]:
    """The supplier's items effective on day `on`."""
    query = (
        sa.select(SupplierItem)
        .where(
            SupplierItem.supplier_id == supplier_id,
            SupplierItem.effective_from <= on,
            sa.or_(SupplierItem.effective_to.is_(None), SupplierItem.effective_to >= on),
        )
        .order_by(SupplierItem.sku, SupplierItem.id)
    )
    return (await session.execute(query)).scalars().all()


async def preferred_item(
    session: AsyncSession, sku: str, on: date, *, supplier_id: str | None = None
) -> SupplierItem | None:
    """The item a replenishment of `sku` on day `on` is ordered from (None: nobody sells
    it then)."""
    items = await effective_items(session, sku, on, supplier_id=supplier_id)
    return items[0] if items else None


# --- policies -------------------------------------------------------------------------


async def put_policy(
    session: AsyncSession, sku: str, warehouse_id: str, body: PolicyIn
) -> tuple[ReplenishmentPolicy, bool]:
    """Create or replace the pair's policy; whether it was created."""
    if body.min_qty is not None and body.max_qty is not None and body.max_qty < body.min_qty:
        raise Unprocessable(
            f"max_qty {body.max_qty} is below min_qty {body.min_qty}", code="invalid_bounds"
        )
    now = datetime.now(UTC)
    values = body.model_dump()
    values["review_mode"] = body.review_mode.value
    policy = await session.get(ReplenishmentPolicy, (sku, warehouse_id), with_for_update=True)
    if policy is not None:
        for name, value in values.items():
            setattr(policy, name, value)
        policy.version += 1
        policy.updated_at = now
        await session.flush()
        return policy, False
    policy = ReplenishmentPolicy(
        sku=sku, warehouse_id=warehouse_id, version=1, created_at=now, updated_at=now, **values
    )
    await _insert(
        session,
        policy,
        Conflict(f"the policy of {sku} in {warehouse_id} was just made", code="conflict"),
    )
    return policy, True


async def get_policy(session: AsyncSession, sku: str, warehouse_id: str) -> ReplenishmentPolicy:
    policy = await session.get(ReplenishmentPolicy, (sku, warehouse_id))
    if policy is None:
        raise NotFound(f"no replenishment policy for {sku} in {warehouse_id}")
    return policy


async def policy_page(
    session: AsyncSession,
    *,
    sku: str | None,
    warehouse_id: str | None,
    review_mode: str | None,
    limit: int,
    cursor: str | None,
) -> PolicyPage:
    """Policies by SKU, then warehouse."""
    query = (
        sa.select(ReplenishmentPolicy)
        .order_by(ReplenishmentPolicy.sku, ReplenishmentPolicy.warehouse_id)
        .limit(limit + 1)
    )
    if sku is not None:
        query = query.where(ReplenishmentPolicy.sku == sku)
    if warehouse_id is not None:
        query = query.where(ReplenishmentPolicy.warehouse_id == warehouse_id)
    if review_mode is not None:
        query = query.where(ReplenishmentPolicy.review_mode == review_mode)
    if cursor:
        last_sku, last_wh = decode_cursor(cursor, str, str)
        query = query.where(
            sa.tuple_(ReplenishmentPolicy.sku, ReplenishmentPolicy.warehouse_id)
            > sa.tuple_(sa.literal(last_sku), sa.literal(last_wh))
        )
    rows = list((await session.execute(query)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return PolicyPage(
        items=[PolicyOut.model_validate(row) for row in rows],
        next_cursor=encode_cursor(rows[-1].sku, rows[-1].warehouse_id) if more else None,
    )
