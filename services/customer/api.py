"""Customer service routes: customers, search, credit checks and credit status."""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header, Query, Response
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from services.common.auth import Principal, Role, require
from services.common.deps import IdempotencyKey, RuntimeDep
from services.common.events import CustomerCreated, CustomerCreditChanged, CustomerUpdated
from services.common.idempotency import REPLAY_HEADER, run_idempotent
from services.common.outbox import stage
from services.common.pagination import decode_cursor, encode_cursor
from services.common.problems import (
    BadRequest,
    Conflict,
    NotFound,
    PreconditionFailed,
)
from services.customer import domain
from services.customer.models import (
    Address,
    Contact,
    CreditCheck,
    Customer,
    CustomerSearchGram,
    OpenOrder,
)
from services.customer.schemas import (
    AddressIn,
    ContactIn,
    CreditCheckRequest,
    CreditCheckResult,
    CreditStatus,
    CustomerCreate,
    CustomerKind,
    CustomerListItem,
    CustomerPage,
    CustomerPublic,
    CustomerUpdate,
    OpenOrderPublic,
)

Writer = Annotated[Principal, Depends(require(Role.COORDINATOR, Role.SERVICE))]
Coordinator = Annotated[Principal, Depends(require(Role.COORDINATOR))]
Staff = Annotated[Principal, Depends(require(Role.COORDINATOR, Role.OPS, Role.SERVICE))]
StaffOrCustomer = Annotated[
    Principal, Depends(require(Role.COORDINATOR, Role.OPS, Role.SERVICE, Role.CUSTOMER))
]
ServiceCaller = Annotated[Principal, Depends(require(Role.SERVICE))]

router = APIRouter(prefix="/customers", tags=["customers"])

# A search ranks at most this many candidates (the best by shared trigrams, plus every
# exact or prefix email/phone match); pages walk through that ranked list.
SEARCH_CANDIDATES = 300


# --- loading and writing ----------------------------------------------------------


def _with_children(stmt: sa.Select[Customer]) -> sa.Select[Customer]:
    return stmt.options(selectinload(Customer.addresses), selectinload(Customer.contacts))


async def load_customer(
    session: AsyncSession, customer_id: str, *, for_update: bool = False
) -> Customer:
    """The customer with addresses and contacts; 404 problem when absent.

    `for_update` locks the row on PostgreSQL (SQLite serialises writers anyway), so
    concurrent writers of one customer's credit state queue instead of interleaving.
    """
    stmt = _with_children(sa.select(Customer).where(Customer.id == customer_id))
    if for_update:
        stmt = stmt.with_for_update()
    customer = (await session.execute(stmt)).scalar_one_or_none()
    if customer is None:
        raise NotFound(f"customer {customer_id} not found")
    return customer


def _address_rows(addresses: Sequence[AddressIn]) -> list[dict[str, Any]]:
    """Address values in list order; the first of a kind is the default when none is."""
    rows = [a.model_dump() for a in addresses]
    for kind in ("shipping", "billing"):
        of_kind = [r for r in rows if r["kind"] == kind]
        if of_kind and not any(r["is_default"] for r in of_kind):
            of_kind[0]["is_default"] = True
    return rows


def _contact_rows(contacts: Sequence[ContactIn]) -> list[dict[str, Any]]:
    return [c.model_dump() for c in contacts]


_ADDRESS_FIELDS = tuple(AddressIn.model_fields)
_CONTACT_FIELDS = tuple(ContactIn.model_fields)


def _addresses_of(customer: Customer) -> list[dict[str, Any]]:
    return [{f: getattr(a, f) for f in _ADDRESS_FIELDS} for a in customer.addresses]


def _contacts_of(customer: Customer) -> list[dict[str, Any]]:
    return [{f: getattr(c, f) for f in _CONTACT_FIELDS} for c in customer.contacts]


def _new_addresses(rows: list[dict[str, Any]]) -> list[Address]:
    return [Address(id=str(uuid.uuid4()), position=i, **row) for i, row in enumerate(rows)]


def _new_contacts(rows: list[dict[str, Any]]) -> list[Contact]:
    return [Contact(id=str(uuid.uuid4()), position=i, **row) for i, row in enumerate(rows)]


async def write_search_grams(session: AsyncSession, customer: Customer) -> None:
    """Replace the customer's search trigrams with those of its name, email and phone."""
    await session.execute(
        sa.delete(CustomerSearchGram).where(CustomerSearchGram.customer_id == customer.id)
    )
    grams = domain.customer_grams(customer.name, customer.email, customer.phone)
    if grams:
        await session.execute(
            sa.insert(CustomerSearchGram),
            [{"customer_id": customer.id, "gram": gram} for gram in sorted(grams)],
        )


async def open_orders(session: AsyncSession, customer_id: str) -> tuple[Decimal, list[OpenOrder]]:
    """The customer's open orders and their total (summed exactly, in Decimal)."""
    stmt = (
        sa.select(OpenOrder)
        .where(OpenOrder.customer_id == customer_id, OpenOrder.status == "open")
        .order_by(OpenOrder.placed_at, OpenOrder.order_id)
    )
    rows = list((await session.execute(stmt)).scalars())
    total = sum((domain.money(r.amount) for r in rows), Decimal("0.00"))
    return total, rows


def _open_value(customer_id: str, exclude_order: str | None) -> sa.Select[Any]:
    stmt = sa.select(sa.func.coalesce(sa.func.sum(OpenOrder.amount), 0)).where(
        OpenOrder.customer_id == customer_id, OpenOrder.status == "open"
    )
    if exclude_order is not None:
        stmt = stmt.where(OpenOrder.order_id != exclude_order)
    return stmt


def _pending_value(customer_id: str, exclude_order: str | None) -> sa.Select[Any]:
    stmt = sa.select(sa.func.coalesce(sa.func.sum(CreditCheck.amount), 0)).where(
        CreditCheck.customer_id == customer_id, CreditCheck.counted_at.is_(None)
    )
    if exclude_order is not None:
        stmt = stmt.where(CreditCheck.order_id != exclude_order)
    return stmt


def _cents(value: Any) -> Decimal:
    """A database sum as money. SQLite sums NUMERIC as floating point, exact to far
    below a cent, so rounding to cents gives the exact value back. A sum of amounts may
    pass the bound of any one amount, so it is not checked against it."""
    return Decimal(str(value)).quantize(domain.CENT, rounding=ROUND_HALF_UP)


async def open_order_total(
    session: AsyncSession, customer_id: str, *, exclude_order: str | None = None
) -> Decimal:
    """The customer's open order value, summed by the database (a customer may have
    thousands of open orders; loading them all per credit check does not scale)."""
    return _cents(await session.scalar(_open_value(customer_id, exclude_order)))


async def pending_total(session: AsyncSession, customer_id: str) -> Decimal:
    """The value of the customer's credit checks whose order is not counted yet."""
    return _cents(await session.scalar(_pending_value(customer_id, None)))


async def exposure(
    session: AsyncSession, customer_id: str, *, exclude_order: str | None = None
) -> tuple[Decimal, Decimal]:
    """(open order value, pending value) of a customer, read in one statement so both
    come from one snapshot while the exposure consumer moves orders from one to the other.

    Pending: orders already credit-checked whose `order.placed` has not reached this
    service yet. They are real orders (the order service checks credit after placing
    one), so they count: otherwise two orders checked back to back could both be
    approved against the same headroom."""
    both = sa.select(
        _open_value(customer_id, exclude_order).scalar_subquery(),
        _pending_value(customer_id, exclude_order).scalar_subquery(),
    )
    open_value, pending = (await session.execute(both)).one()
    return _cents(open_value), _cents(pending)


async def mark_check_counted(session: AsyncSession, order_id: str) -> None:
    """The order's own event has arrived: its credit check stops counting as pending."""
    await session.execute(
        sa.update(CreditCheck)
        .where(CreditCheck.order_id == order_id, CreditCheck.counted_at.is_(None))
        .values(counted_at=datetime.now(UTC))
    )


def credit_changed(customer: Customer, open_order_value: Decimal) -> CustomerCreditChanged:
    return CustomerCreditChanged(
        customer_id=customer.id,
        credit_limit=domain.money_str(customer.credit_limit),
        credit_hold=customer.credit_hold,
        open_order_value=str(domain.money(open_order_value)),
    )


def _etag(customer: Customer) -> str:
    return f'"{customer.version}"'


def _check_if_match(if_match: str | None, customer: Customer) -> None:
    if if_match is None:
        return
    tags = {t.strip().removeprefix("W/") for t in if_match.split(",")}
    if "*" not in tags and _etag(customer) not in tags:
        raise PreconditionFailed(
            f"the customer changed: its ETag is now {_etag(customer)}; reload and retry"
        )


# --- customers ----------------------------------------------------------------------


@router.post(
    "",
    status_code=201,
    response_model=CustomerPublic,
    summary="Create a customer",
    responses={
        201: {
            "description": "Created (a replay answers the first response again)",
            "headers": {
                "ETag": {
                    "description": "The version, for `If-Match`",
                    "schema": {"type": "string"},
                },
                "Location": {"description": "The customer's URL", "schema": {"type": "string"}},
            },
        },
        400: {"description": "`Idempotency-Key` missing"},
        422: {"description": "Invalid body, or the key was used with another body"},
    },
)
async def create_customer(
    body: CustomerCreate, runtime: RuntimeDep, key: IdempotencyKey, caller: Writer
) -> Any:
    async def create(session: AsyncSession) -> tuple[int, Any]:
        now = datetime.now(UTC)
        customer = Customer(
            id=str(uuid.uuid4()),
            name=body.name,
            name_key=domain.fold(body.name),
            kind=body.kind,
            email=body.email,
            phone=body.phone,
            phone_digits=domain.phone_digits(body.phone),
            credit_limit=body.credit_limit,
            credit_hold=body.credit_hold,
            preferred_language=body.preferred_language,
            version=1,
            created_by=caller.subject,
            created_at=now,
            updated_at=now,
            addresses=_new_addresses(_address_rows(body.addresses)),
            contacts=_new_contacts(_contact_rows(body.contacts)),
        )
        session.add(customer)
        await session.flush()
        await write_search_grams(session, customer)
        await stage(
            session,
            runtime.source,
            CustomerCreated(
                customer_id=customer.id,
                name=customer.name,
                kind=customer.kind,
                credit_limit=domain.money_str(customer.credit_limit),
                credit_hold=customer.credit_hold,
            ),
            subject=customer.id,
        )
        return 201, CustomerPublic.model_validate(customer).model_dump(mode="json")

    response = await run_idempotent(
        runtime.db,
        route="POST /customers",
        principal=caller,
        key=key,
        payload=body,
        action=create,
    )
    if response.status_code == 201:
        created = json.loads(bytes(response.body))
        response.headers["Location"] = f"/customers/{created['id']}"
        response.headers["ETag"] = f'"{created["version"]}"'
    return response


@router.get(
    "/{customer_id}",
    response_model=CustomerPublic,
    summary="One customer (staff, or the customer itself)",
)
async def get_customer(
    customer_id: str, runtime: RuntimeDep, caller: StaffOrCustomer, response: Response
) -> Any:
    caller.ensure_customer(customer_id, "customer")
    async with runtime.db.reading() as session:
        customer = await load_customer(session, customer_id)
    response.headers["ETag"] = _etag(customer)
    return CustomerPublic.model_validate(customer)


@router.patch(
    "/{customer_id}",
    response_model=CustomerPublic,
    summary="Change some of a customer's fields",
    description="Only the fields sent change; `addresses` and `contacts` replace the whole "
    "list. Emits `CustomerUpdated` with the changed fields and, when the credit limit or "
    "hold changed, `CustomerCreditChanged`. Send `If-Match: <ETag>` to refuse (412) a "
    "change on top of someone else's.",
    responses={412: {"description": "`If-Match` does not match the current version"}},
)
async def update_customer(
    customer_id: str,
    body: CustomerUpdate,
    runtime: RuntimeDep,
    _: Coordinator,
    response: Response,
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
) -> Any:
    sent = body.model_fields_set
    async with runtime.db.transaction() as session:
        customer = await load_customer(session, customer_id, for_update=True)
        _check_if_match(if_match, customer)
        changed: list[str] = []
        for field in (
            "name",
            "email",
            "phone",
            "credit_limit",
            "credit_hold",
            "preferred_language",
        ):
            value = getattr(body, field)
            if field in sent and getattr(customer, field) != value:
                setattr(customer, field, value)
                changed.append(field)
        if "name" in changed:
            customer.name_key = domain.fold(customer.name)
        if "phone" in changed:
            customer.phone_digits = domain.phone_digits(customer.phone)
        if body.addresses is not None:
            rows = _address_rows(body.addresses)
            if rows != _addresses_of(customer):
                # Delete first: the one-default-per-kind index must hold at every step.
                customer.addresses.clear()
                await session.flush()
                customer.addresses.extend(_new_addresses(rows))
                changed.append("addresses")
        if body.contacts is not None:
            rows = _contact_rows(body.contacts)
            if rows != _contacts_of(customer):
                customer.contacts.clear()
                await session.flush()
                customer.contacts.extend(_new_contacts(rows))
                changed.append("contacts")
        if changed:
            customer.version += 1
            customer.updated_at = datetime.now(UTC)
            await session.flush()
            if {"name", "email", "phone"} & set(changed):
                await write_search_grams(session, customer)
            await stage(
                session,
                runtime.source,
                CustomerUpdated(customer_id=customer.id, changed=changed),
                subject=customer.id,
            )
            if {"credit_limit", "credit_hold"} & set(changed):
                total = await open_order_total(session, customer.id)
                await stage(
                    session, runtime.source, credit_changed(customer, total), subject=customer.id
                )
    response.headers["ETag"] = _etag(customer)
    return CustomerPublic.model_validate(customer)


# --- listing and search -------------------------------------------------------------


def _filters_fingerprint(q: str | None, kind: str | None, credit_hold: bool | None) -> str:
    raw = json.dumps([q, kind, credit_hold])
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _encode_cursor(mode: str, fingerprint: str, key: list[Any]) -> str:
    return encode_cursor(mode, fingerprint, *key)


# What each position of a cursor key holds: (name_key, id), or (tier, -score, name_key, id).
_CURSOR_TYPES: dict[str, tuple[tuple[type, ...], ...]] = {
    "name": ((str,), (str,)),
    "rank": ((int,), (int, float), (str,), (str,)),
}


def _decode_cursor(cursor: str, mode: str, fingerprint: str) -> list[Any]:
    """The key of a cursor handed out by this list, for these same filters."""
    types = _CURSOR_TYPES[mode]
    head, tail, *key = decode_cursor(cursor, str, str, *types)
    if head != mode or tail != fingerprint:
        raise BadRequest(
            "cursor is not one this list handed out for these filters", code="invalid_cursor"
        )
    return key


def _filters(kind: str | None, credit_hold: bool | None) -> list[sa.ColumnElement[bool]]:
    clauses: list[sa.ColumnElement[bool]] = []
    if kind is not None:
        clauses.append(Customer.kind == kind)
    if credit_hold is not None:
        clauses.append(Customer.credit_hold == credit_hold)
    return clauses


async def _list_page(
    session: AsyncSession,
    kind: str | None,
    credit_hold: bool | None,
    limit: int,
    after: list[Any] | None,
) -> tuple[list[Customer], list[Any] | None]:
    stmt = _with_children(sa.select(Customer)).where(*_filters(kind, credit_hold))
    if after is not None:
        name_key, customer_id = after
        stmt = stmt.where(
            sa.or_(
                Customer.name_key > name_key,
                sa.and_(Customer.name_key == name_key, Customer.id > customer_id),
            )
        )
    stmt = stmt.order_by(Customer.name_key, Customer.id).limit(limit + 1)
    rows = list((await session.execute(stmt)).scalars())
    page = rows[:limit]
    more = len(rows) > limit
    return page, ([page[-1].name_key, page[-1].id] if more and page else None)


def _like_prefix(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


async def _search_candidates(
    session: AsyncSession, q: str, kind: str | None, credit_hold: bool | None
) -> list[Customer]:
    """Customers sharing enough trigrams with `q`, plus exact/prefix email and phone hits."""
    ids: set[str] = set()
    text_grams = domain.word_grams(domain.fold(q))
    digits = domain.query_digits(q)
    digit_grams = domain.digit_grams(digits) if digits else set()
    grams = text_grams | digit_grams
    if grams:
        # A phone query needs a share of its digit trigrams; a text query of its words'.
        basis = digit_grams or text_grams
        min_hits = max(1, math.ceil(len(basis) * (0.3 if digit_grams else 0.25)))
        hits = sa.func.count().label("hits")
        stmt = (
            sa.select(CustomerSearchGram.customer_id, hits)
            .where(CustomerSearchGram.gram.in_(sorted(grams)))
            .group_by(CustomerSearchGram.customer_id)
            .having(hits >= min_hits)
            .order_by(hits.desc(), CustomerSearchGram.customer_id)
            .limit(SEARCH_CANDIDATES)
        )
        if filters := _filters(kind, credit_hold):
            stmt = stmt.join(Customer, Customer.id == CustomerSearchGram.customer_id).where(
                *filters
            )
        ids.update(row.customer_id for row in await session.execute(stmt))
    prefix: list[sa.ColumnElement[bool]] = []
    fragment = domain.query_email(q)
    if fragment and len(fragment) >= 3:
        prefix.append(Customer.email.like(_like_prefix(fragment), escape="\\"))
    if digits:
        prefix.append(Customer.phone_digits.like(_like_prefix(digits), escape="\\"))
    if prefix:
        by_prefix = sa.select(Customer.id).where(sa.or_(*prefix), *_filters(kind, credit_hold))
        ids.update((await session.execute(by_prefix.limit(SEARCH_CANDIDATES))).scalars())
    if not ids:
        return []
    load = _with_children(sa.select(Customer).where(Customer.id.in_(sorted(ids))))
    return list((await session.execute(load)).scalars())


def _rank_key(match: domain.Match, customer: Customer) -> list[Any]:
    return [match.tier, -match.score, customer.name_key, customer.id]


async def _search_page(
    session: AsyncSession,
    q: str,
    kind: str | None,
    credit_hold: bool | None,
    limit: int,
    after: list[Any] | None,
) -> tuple[list[tuple[Customer, float]], list[Any] | None]:
    ranked: list[tuple[list[Any], Customer, float]] = []
    for customer in await _search_candidates(session, q, kind, credit_hold):
        match = domain.score_customer(q, customer.name, customer.email, customer.phone)
        if match.tier == 0 or match.score >= domain.MIN_SCORE:
            ranked.append((_rank_key(match, customer), customer, match.score))
    ranked.sort(key=lambda item: item[0])
    if after is not None:
        ranked = [item for item in ranked if item[0] > after]
    page = ranked[:limit]
    more = len(ranked) > limit
    return [(c, score) for _, c, score in page], (page[-1][0] if more and page else None)


@router.get(
    "",
    response_model=CustomerPage,
    summary="List or search customers (keyset pagination)",
    description="Without `q`: customers ordered by name (case and accents ignored), then "
    "id. With `q`: a fuzzy search over name, email and phone, best match first; exact or "
    "prefix email/phone matches come before everything else, then by `score` (0..1), "
    f"then name. A search ranks at most {SEARCH_CANDIDATES} candidates. `next_cursor` is "
    "opaque and only valid with the same `q`, `kind` and `credit_hold`.",
    responses={400: {"description": "`cursor` is malformed or from other filters"}},
)
async def list_customers(
    runtime: RuntimeDep,
    _: Staff,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Misspelled names, email fragments and phone numbers typed with "
            "spaces or dashes all match",
        ),
    ] = None,
    kind: CustomerKind | None = None,
    credit_hold: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> CustomerPage:
    query = q.strip() if q and q.strip() else None
    fingerprint = _filters_fingerprint(query, kind, credit_hold)
    mode = "rank" if query else "name"
    after = _decode_cursor(cursor, mode, fingerprint) if cursor else None
    async with runtime.db.reading() as session:
        if query:
            hits, next_key = await _search_page(session, query, kind, credit_hold, limit, after)
            items = [
                CustomerListItem.model_validate(
                    {**CustomerPublic.model_validate(c).model_dump(), "score": score}
                )
                for c, score in hits
            ]
        else:
            customers, next_key = await _list_page(session, kind, credit_hold, limit, after)
            items = [CustomerListItem.model_validate(c) for c in customers]
    return CustomerPage(
        items=items,
        next_cursor=_encode_cursor(mode, fingerprint, next_key) if next_key else None,
    )


# --- credit -------------------------------------------------------------------------


def _replay_check(check: CreditCheck, customer_id: str, body: CreditCheckRequest) -> None:
    if check.customer_id != customer_id or domain.money(check.amount) != body.amount:
        raise Conflict(
            f"order {check.order_id} was already checked for customer {check.customer_id} "
            f"with amount {domain.money(check.amount)}",
            code="credit_check_mismatch",
        )


@router.post(
    "/{customer_id}/credit-checks",
    response_model=CreditCheckResult,
    summary="Decide whether an order may go ahead on the customer's credit",
    description="Hold when the customer is on credit hold, or when its other open orders "
    "plus `amount` exceed the credit limit; approve otherwise (no limit: approve unless on "
    "hold). The first decision for an `order_id` is stored and answered again to every "
    "repeat (with `Idempotent-Replayed: true`); a repeat naming another customer or "
    "amount is a 409 `credit_check_mismatch`.",
    responses={
        404: {"description": "Unknown customer"},
        409: {"description": "`credit_check_mismatch`: the order was checked with other terms"},
    },
)
async def check_credit(
    customer_id: str,
    body: CreditCheckRequest,
    runtime: RuntimeDep,
    caller: ServiceCaller,
    response: Response,
) -> Any:
    try:
        async with runtime.db.transaction() as session:
            check = await session.get(CreditCheck, body.order_id)
            if check is None:
                # Locked, so checks of one customer's orders decide one after another,
                # each seeing the ones before it as pending exposure.
                customer = await session.scalar(
                    sa.select(Customer).where(Customer.id == customer_id).with_for_update()
                )
                if customer is None:
                    raise NotFound(f"customer {customer_id} not found")
                open_value, pending = await exposure(
                    session, customer_id, exclude_order=body.order_id
                )
                others = open_value + pending
                already_seen = await session.scalar(
                    sa.select(OpenOrder.order_id).where(OpenOrder.order_id == body.order_id)
                )
                decision = domain.decide_credit(
                    credit_limit=customer.credit_limit,
                    credit_hold=customer.credit_hold,
                    other_open_orders=others,
                    amount=body.amount,
                )
                check = CreditCheck(
                    order_id=body.order_id,
                    customer_id=customer_id,
                    amount=body.amount,
                    decision=decision.decision,
                    reason_code=decision.reason_code,
                    reason=decision.reason,
                    credit_limit=customer.credit_limit,
                    credit_hold=customer.credit_hold,
                    open_order_value=others,
                    available=decision.available,
                    checked_by=caller.subject,
                    checked_at=datetime.now(UTC),
                    counted_at=None if already_seen is None else datetime.now(UTC),
                )
                session.add(check)
                await session.flush()
                return CreditCheckResult.model_validate(check)
    except IntegrityError:
        # A concurrent check of the same order stored its decision first.
        async with runtime.db.reading() as session:
            check = await session.get(CreditCheck, body.order_id)
        if check is None:
            raise
    _replay_check(check, customer_id, body)
    response.headers[REPLAY_HEADER] = "true"
    return CreditCheckResult.model_validate(check)


@router.get(
    "/{customer_id}/credit",
    response_model=CreditStatus,
    summary="Credit limit, hold and open order exposure (staff, or the customer itself)",
)
async def get_credit(customer_id: str, runtime: RuntimeDep, caller: StaffOrCustomer) -> Any:
    caller.ensure_customer(customer_id, "customer")
    async with runtime.db.reading() as session:
        customer = await session.get(Customer, customer_id)
        if customer is None:
            raise NotFound(f"customer {customer_id} not found")
        total, rows = await open_orders(session, customer_id)
        pending = await pending_total(session, customer_id)
    limit = customer.credit_limit
    return CreditStatus(
        customer_id=customer.id,
        credit_limit=limit,
        credit_hold=customer.credit_hold,
        open_order_value=total,
        pending_value=pending,
        available=None if limit is None else domain.money(limit) - total - pending,
        open_orders=[OpenOrderPublic.model_validate(r) for r in rows],
    )
