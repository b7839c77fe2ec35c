"""Master-data routes: suppliers, supplier items, replenishment policies. Coordinators
write; staff read everything; a supplier reads its own record and items (another
supplier's are 404). Routes stay thin: the rules are in `suppliers.py`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.auth import Principal, Role, require
from services.common.deps import IdempotencyKey, RuntimeDep
from services.common.idempotency import run_idempotent
from services.supplier import suppliers as rules
from services.supplier.schemas import (
    SKU_PATTERN,
    SUPPLIER_ID_PATTERN,
    WAREHOUSE_PATTERN,
    ItemCreate,
    ItemOut,
    ItemPage,
    ItemUpdate,
    PolicyIn,
    PolicyOut,
    PolicyPage,
    ReviewMode,
    SupplierCreate,
    SupplierCreated,
    SupplierOut,
    SupplierPage,
    SupplierUpdate,
    WebhookSecretOut,
)

SupplierId = Annotated[str, Path(pattern=SUPPLIER_ID_PATTERN)]
ItemId = Annotated[str, Path(max_length=36)]
Sku = Annotated[str, Path(pattern=SKU_PATTERN)]
WarehouseId = Annotated[str, Path(pattern=WAREHOUSE_PATTERN)]
Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(max_length=512)]
Coordinator = Annotated[Principal, Depends(require(Role.COORDINATOR))]
Staff = Annotated[Principal, Depends(require(Role.COORDINATOR, Role.OPS, Role.SERVICE))]
Reader = Annotated[
    Principal, Depends(require(Role.COORDINATOR, Role.OPS, Role.SERVICE, Role.SUPPLIER))
]
SecretHolder = Annotated[Principal, Depends(require(Role.COORDINATOR, Role.SUPPLIER))]

router = APIRouter(prefix="/suppliers", tags=["suppliers"])
items = APIRouter(prefix="/supplier-items", tags=["supplier items"])
policies = APIRouter(prefix="/replenishment-policies", tags=["replenishment policies"])

CURSOR_400: dict[int | str, dict[str, Any]] = {
    400: {"description": "`invalid_cursor`: not a `next_cursor` of this list"}
}
# The item lives at `/supplier-items/{item_id}`, not below its creation's path, so the
# links the plumbing derives (openapi.py) are stated here.
ITEM_LINKS = {
    operation: {"operationId": operation, "parameters": {"path.item_id": "$response.body#/id"}}
    for operation in (
        "get_item_supplier_items__item_id__get",
        "update_item_supplier_items__item_id__patch",
    )
}
DATES_422: dict[int | str, dict[str, Any]] = {
    422: {"description": "`invalid_dates`: `effective_to` before `effective_from`"}
}


# --- suppliers ------------------------------------------------------------------------


@router.post(
    "",
    status_code=201,
    response_model=SupplierCreated,
    summary="Create a supplier; the answer shows its webhook secret, once",
    responses={409: {"description": "`supplier_exists`: that id is taken"}},
)
async def create_supplier(
    caller: Coordinator, body: SupplierCreate, runtime: RuntimeDep, key: IdempotencyKey
) -> Any:
    async def create(session: AsyncSession) -> tuple[int, Any]:
        supplier, secret = await rules.create(session, body)
        out = SupplierOut.model_validate(supplier).model_dump()
        return 201, SupplierCreated(**out, webhook_secret=secret).model_dump(mode="json")

    return await run_idempotent(
        runtime.db, route="POST /suppliers", principal=caller, key=key, payload=body, action=create
    )


@router.get(
    "",
    response_model=SupplierPage,
    summary="Suppliers by id (a supplier: itself)",
    responses=CURSOR_400,
)
async def list_suppliers(
    runtime: RuntimeDep,
    caller: Reader,
    active: bool | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> SupplierPage:
    async with runtime.db.reading() as session:
        return await rules.page(session, caller, active=active, limit=limit, cursor=cursor)


@router.get("/{supplier_id}", response_model=SupplierOut, summary="One supplier")
async def get_supplier(supplier_id: SupplierId, runtime: RuntimeDep, caller: Reader) -> Any:
    async with runtime.db.reading() as session:
        return SupplierOut.model_validate(await rules.load(session, supplier_id, caller))


@router.patch(
    "/{supplier_id}",
    response_model=SupplierOut,
    summary="Change a supplier (name, contacts, webhook URL, active)",
)
async def update_supplier(
    supplier_id: SupplierId, body: SupplierUpdate, runtime: RuntimeDep, caller: Coordinator
) -> Any:
    async with runtime.db.transaction() as session:
        supplier = await rules.load(session, supplier_id, lock=True)
        return SupplierOut.model_validate(await rules.update(session, supplier, body))


@router.post(
    "/{supplier_id}/webhook-secret",
    response_model=WebhookSecretOut,
    summary="Rotate the webhook secret (coordinator, or the supplier itself); shown once",
)
async def rotate_webhook_secret(
    supplier_id: SupplierId, runtime: RuntimeDep, caller: SecretHolder
) -> WebhookSecretOut:
    async with runtime.db.transaction() as session:
        supplier = await rules.load(session, supplier_id, caller, lock=True)
        secret = await rules.rotate_secret(session, supplier)
        return WebhookSecretOut(
            supplier_id=supplier.id, webhook_secret=secret, rotated_at=supplier.updated_at
        )


# --- items ----------------------------------------------------------------------------


@router.post(
    "/{supplier_id}/items",
    status_code=201,
    response_model=ItemOut,
    summary="Add an item the supplier sells (terms from `effective_from`)",
    responses={
        201: {"description": "The item", "links": ITEM_LINKS},
        409: {"description": "`item_exists`: that SKU from that date"},
        **DATES_422,
    },
)
async def add_item(
    supplier_id: SupplierId,
    caller: Coordinator,
    body: ItemCreate,
    runtime: RuntimeDep,
    key: IdempotencyKey,
) -> Any:
    async def create(session: AsyncSession) -> tuple[int, Any]:
        supplier = await rules.load(session, supplier_id)
        item = await rules.add_item(session, supplier, body)
        return 201, ItemOut.model_validate(item).model_dump(mode="json")

    return await run_idempotent(
        runtime.db,
        route="POST /suppliers/{id}/items",
        principal=caller,
        key=key,
        payload={"supplier_id": supplier_id, "body": body},
        action=create,
    )


@router.get(
    "/{supplier_id}/items",
    response_model=ItemPage,
    summary="The supplier's items by SKU (a supplier: its own)",
    responses=CURSOR_400,
)
async def list_items(
    supplier_id: SupplierId,
    runtime: RuntimeDep,
    caller: Reader,
    sku: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ItemPage:
    async with runtime.db.reading() as session:
        supplier = await rules.load(session, supplier_id, caller)
        return await rules.item_page(session, supplier, sku=sku, limit=limit, cursor=cursor)


@items.get("/{item_id}", response_model=ItemOut, summary="One supplier item")
async def get_item(item_id: ItemId, runtime: RuntimeDep, caller: Reader) -> Any:
    async with runtime.db.reading() as session:
        return ItemOut.model_validate(await rules.load_item(session, item_id, caller))


@items.patch(
    "/{item_id}",
    response_model=ItemOut,
    summary="Change an item's terms",
    responses={409: {"description": "`item_exists`: that SKU from that date"}, **DATES_422},
)
async def update_item(
    item_id: ItemId, body: ItemUpdate, runtime: RuntimeDep, caller: Coordinator
) -> Any:
    async with runtime.db.transaction() as session:
        item = await rules.load_item(session, item_id, lock=True)
        return ItemOut.model_validate(await rules.update_item(session, item, body))


# --- policies -------------------------------------------------------------------------


@policies.put(
    "/{sku}/{warehouse_id}",
    response_model=PolicyOut,
    summary="Create or replace the replenishment policy of a SKU in a warehouse",
    responses={422: {"description": "`invalid_bounds`: `max_qty` below `min_qty`"}},
)
async def put_policy(
    sku: Sku, warehouse_id: WarehouseId, body: PolicyIn, runtime: RuntimeDep, caller: Coordinator
) -> Any:
    async with runtime.db.transaction() as session:
        policy, _ = await rules.put_policy(session, sku, warehouse_id, body)
        return PolicyOut.model_validate(policy)


@policies.get("/{sku}/{warehouse_id}", response_model=PolicyOut, summary="One replenishment policy")
async def get_policy(
    sku: Sku, warehouse_id: WarehouseId, runtime: RuntimeDep, caller: Staff
) -> Any:
    async with runtime.db.reading() as session:
        return PolicyOut.model_validate(await rules.get_policy(session, sku, warehouse_id))


@policies.get(
    "",
    response_model=PolicyPage,
    summary="Replenishment policies by SKU and warehouse",
    responses=CURSOR_400,
)
async def list_policies(
    runtime: RuntimeDep,
    caller: Staff,
    sku: Annotated[str | None, Query(max_length=64)] = None,
    warehouse_id: Annotated[str | None, Query(max_length=32)] = None,
    review_mode: ReviewMode | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> PolicyPage:
    async with runtime.db.reading() as session:
        return await rules.policy_page(
            session,
            sku=sku,
            warehouse_id=warehouse_id,
            review_mode=review_mode.value if review_mode else None,
            limit=limit,
            cursor=cursor,
        )


routers = [router, items, policies]
