"""Return shipment routes: create (buys a return label), read, list, cancel.

Routes stay thin: the rules live in `return_shipments.py`. A customer reads only its
own return shipments (another's answers 404); creating and cancelling are for the
returns service (`service`) and coordinators.
"""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query

from services.common.auth import Role
from services.common.deps import IdempotencyKey, RuntimeDep
from services.common.problems import NotFound
from services.shipment import return_shipments as rules
from services.shipment.api import (
    CarriersDep,
    Creator,
    FeederDep,
    Reader,
    RefFilter,
    SettingsDep,
    newest_first,
)
from services.shipment.models import RETURN, Shipment
from services.shipment.schemas import (
    CancelIn,
    ReturnShipment,
    ReturnShipmentCreate,
    ReturnShipmentPage,
)
from services.shipment.views import return_shipment_detail, return_shipment_out

ReturnShipmentId = Annotated[str, Path(max_length=36)]

return_shipments = APIRouter(prefix="/return-shipments", tags=["return shipments"])


@return_shipments.post(
    "",
    status_code=201,
    response_model=ReturnShipment,
    summary="Create the return shipment of one return (buys a return label)",
    responses={
        200: {
            "model": ReturnShipment,
            "description": "The return already has a live return shipment; that one is "
            "returned instead of creating a second",
        },
        409: {
            "description": "`no_outbound_shipment`: no live outbound shipment of the order "
            "to that customer left from that warehouse; `return_shipment_conflict`: the "
            "return's live return shipment is for another order or warehouse"
        },
        422: {
            "description": "`line_not_shipped`, `quantity_exceeds_shipped`, "
            "`unknown_carrier`, `return_labels_unsupported`, `simulation_unsupported`, "
            "`too_many_packages`, or a validation error (nothing is bought or written)"
        },
        502: {"description": "`carrier_error`: the carrier failed the label purchase"},
    },
)
async def create_return_shipment(
    caller: Creator,  # authentication before the Idempotency-Key check
    body: ReturnShipmentCreate,
    runtime: RuntimeDep,
    key: IdempotencyKey,
    carriers: CarriersDep,
    settings: SettingsDep,
    feeder: FeederDep,
) -> Any:
    response = await rules.create_return_shipment(
        runtime, body, caller=caller, key=key, carriers=carriers, settings=settings
    )
    if feeder is not None and response.status_code == 201:
        feeder.wake()
    return response


@return_shipments.post(
    "/{shipment_id}/cancel",
    response_model=ReturnShipment,
    summary="Cancel a return shipment the carrier has not got yet (voids the label)",
    responses={
        409: {"description": "`already_dispatched`: the carrier has the parcel"},
        502: {"description": "`carrier_error`: the carrier failed the void"},
    },
)
async def cancel_return_shipment(
    shipment_id: ReturnShipmentId,
    runtime: RuntimeDep,
    caller: Creator,
    carriers: CarriersDep,
    body: CancelIn | None = None,
) -> ReturnShipment:
    return await rules.cancel_return_shipment(
        runtime, carriers, shipment_id, body.reason if body else None
    )


@return_shipments.get(
    "",
    response_model=ReturnShipmentPage,
    summary="Return shipments, newest first (a customer sees only its own)",
)
async def list_return_shipments(
    runtime: RuntimeDep,
    caller: Reader,
    return_id: str | None = Query(default=None, max_length=36),
    order_id: RefFilter = None,
    customer_id: RefFilter = None,
    limit: int = Query(default=50, ge=1, le=200),
    cursor: str | None = Query(default=None, max_length=512),
) -> ReturnShipmentPage:
    query = sa.select(Shipment).where(Shipment.direction == RETURN)
    if caller.role is Role.CUSTOMER:
        query = query.where(Shipment.customer_id == caller.customer_id)
    if customer_id is not None:
        query = query.where(Shipment.customer_id == customer_id)
    if return_id is not None:
        query = query.where(Shipment.return_id == return_id)
    if order_id is not None:
        query = query.where(Shipment.order_id == order_id)
    page, next_cursor = await newest_first(runtime, query, limit, cursor)
    return ReturnShipmentPage(items=[return_shipment_out(s) for s in page], next_cursor=next_cursor)


@return_shipments.get(
    "/{shipment_id}",
    response_model=ReturnShipment,
    summary="One return shipment with its tracking history (oldest scan first)",
)
async def get_return_shipment(
    shipment_id: ReturnShipmentId, runtime: RuntimeDep, caller: Reader
) -> ReturnShipment:
    async with runtime.db.reading() as session:
        shipment = await session.get(Shipment, shipment_id)
        if shipment is None or shipment.direction != RETURN:
            raise NotFound(f"return shipment {shipment_id} not found")
        caller.ensure_customer(shipment.customer_id, f"return shipment {shipment_id}")
        return await return_shipment_detail(session, shipment)


routers = [return_shipments]
