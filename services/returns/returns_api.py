"""RMA routes: returns (customers for their own orders, coordinators), the workflow's
internal steps (role `service`; each a repeat-safe step answering the current Return),
and `/return-policies`. Routes stay thin: the rules are in `returns.py` and
`policies.py`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.app import Runtime
from services.common.auth import Principal, Role, require
from services.common.deps import IdempotencyKey, RuntimeDep
from services.common.idempotency import run_idempotent
from services.common.statuses import Resolution, ReturnKind, ReturnStatus
from services.returns import policies
from services.returns import returns as rules
from services.returns.models import Return
from services.returns.rma_models import ReturnPolicy
from services.returns.schemas import (
    ArrivedIn,
    AttentionIn,
    InspectionIn,
    LabelIn,
    NoteIn,
    PolicyCheckOut,
    PolicyCreate,
    PolicyIn,
    PolicyOut,
    PolicyPage,
    ReasonIn,
    ReceiptIn,
    ReplacementIn,
    ResolveIn,
    ReturnCreate,
    ReturnOut,
    ReturnPage,
)

ReturnId = Annotated[str, Path(max_length=36)]
PolicyId = Annotated[str, Path(max_length=64)]
Requester = Annotated[Principal, Depends(require(Role.CUSTOMER, Role.COORDINATOR))]
Reader = Annotated[
    Principal, Depends(require(Role.CUSTOMER, Role.COORDINATOR, Role.OPS, Role.SERVICE))
]
Coordinator = Annotated[Principal, Depends(require(Role.COORDINATOR))]
Staff = Annotated[Principal, Depends(require(Role.COORDINATOR, Role.OPS, Role.SERVICE))]
Service = Annotated[Principal, Depends(require(Role.SERVICE))]
Step = Callable[[AsyncSession, rules.Actor, Return], Awaitable[Any]]

router = APIRouter(prefix="/returns", tags=["returns"])
internal = APIRouter(prefix="/internal/returns", tags=["returns (internal)"])
policy_router = APIRouter(prefix="/return-policies", tags=["return policies"])

TRANSITION_409: dict[int | str, dict[str, Any]] = {
    409: {"description": "`invalid_transition`: not from the return's status"}
}


async def _step(runtime: Runtime, caller: Principal, return_id: str, step: Step) -> ReturnOut:
    """Run one transition on the locked return in one transaction; answer the Return."""
    async with runtime.db.transaction() as session:
        ret = await rules.load(session, return_id, lock=True)
        caller.ensure_customer(ret.customer_id, f"return {return_id}")
        await step(session, rules.Actor(runtime.source, caller.subject), ret)
        return await rules.view(session, ret, caller)


@router.post(
    "",
    status_code=201,
    response_model=ReturnOut,
    summary="Request a return of delivered lines of one order",
    responses={
        404: {"description": "`order_not_found`: not the caller's, or not known yet"},
        422: {
            "description": "`not_delivered`, `quantity_exceeds_returnable`, "
            "`unknown_reason`, `duplicate_line`, `customer_required`"
        },
    },
)
async def request_return(
    caller: Requester, body: ReturnCreate, runtime: RuntimeDep, key: IdempotencyKey
) -> Any:
    async def create(session: AsyncSession) -> tuple[int, Any]:
        actor = rules.Actor(runtime.source, caller.subject)
        ret = await rules.request(session, actor, caller, body)
        return 201, (await rules.view(session, ret, caller)).model_dump(mode="json")

    return await run_idempotent(
        runtime.db, route="POST /returns", principal=caller, key=key, payload=body, action=create
    )


@router.get(
    "",
    response_model=ReturnPage,
    summary="Returns, newest first (customers: own)",
    responses={400: {"description": "`invalid_cursor`: not a `next_cursor` of this list"}},
)
async def list_returns(
    runtime: RuntimeDep,
    caller: Reader,
    customer_id: Annotated[str | None, Query(max_length=64)] = None,
    order_id: Annotated[str | None, Query(max_length=64)] = None,
    status: ReturnStatus | None = None,
    kind: ReturnKind | None = None,
    attention: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> ReturnPage:
    filters = rules.ReturnFilter(customer_id, order_id, status, kind, attention)
    async with runtime.db.reading() as session:
        return await rules.page(session, caller, filters, limit=limit, cursor=cursor)


@router.get("/{return_id}", response_model=ReturnOut, summary="One return")
async def get_return(return_id: ReturnId, runtime: RuntimeDep, caller: Reader) -> ReturnOut:
    async with runtime.db.reading() as session:
        ret = await rules.load(session, return_id)
        caller.ensure_customer(ret.customer_id, f"return {return_id}")
        return await rules.view(session, ret, caller)


@router.post(
    "/{return_id}/authorize",
    response_model=ReturnOut,
    summary="Authorize a requested return (coordinator)",
    responses=TRANSITION_409,
)
async def authorize_return(
    return_id: ReturnId, runtime: RuntimeDep, caller: Coordinator, body: NoteIn | None = None
) -> ReturnOut:
    note = body.note if body else None
    return await _step(runtime, caller, return_id, lambda s, a, r: rules.authorize(s, a, r, note))


@router.post(
    "/{return_id}/reject",
    response_model=ReturnOut,
    summary="Reject a requested return (coordinator)",
    responses=TRANSITION_409,
)
async def reject_return(
    return_id: ReturnId, body: ReasonIn, runtime: RuntimeDep, caller: Coordinator
) -> ReturnOut:
    return await _step(
        runtime, caller, return_id, lambda s, a, r: rules.reject(s, a, r, body.reason)
    )


@router.post(
    "/{return_id}/receipt",
    response_model=ReturnOut,
    summary="Record what arrived, good and damaged per lot (coordinator)",
    responses={
        **TRANSITION_409,
        422: {"description": "`unknown_lot`, `duplicate_lot`, `quantity_exceeds_expected`"},
    },
)
async def receive_return(
    return_id: ReturnId, body: ReceiptIn, runtime: RuntimeDep, caller: Coordinator
) -> ReturnOut:
    return await _step(runtime, caller, return_id, lambda s, a, r: rules.receive(s, a, r, body))


@router.post(
    "/{return_id}/inspection",
    response_model=ReturnOut,
    summary="A disposition per received lot and the resolution (coordinator)",
    responses={
        **TRANSITION_409,
        422: {
            "description": "`unknown_lot`, `duplicate_lot`, `disposition_missing`, "
            "`reason_required` (scrap), `damaged_not_restockable`"
        },
    },
)
async def inspect_return(
    return_id: ReturnId, body: InspectionIn, runtime: RuntimeDep, caller: Coordinator
) -> ReturnOut:
    return await _step(runtime, caller, return_id, lambda s, a, r: rules.inspect(s, a, r, body))


@router.post(
    "/{return_id}/cancel",
    response_model=ReturnOut,
    summary="Cancel a return before its goods are received (customer: own; coordinator)",
    responses=TRANSITION_409,
)
async def cancel_return(
    return_id: ReturnId, body: ReasonIn, runtime: RuntimeDep, caller: Requester
) -> ReturnOut:
    return await _step(
        runtime, caller, return_id, lambda s, a, r: rules.cancel(s, a, r, body.reason)
    )


@router.post(
    "/{return_id}/retry",
    response_model=ReturnOut,
    summary="Run the workflow step that failed again (coordinator)",
    responses={409: {"description": "`not_needing_attention`: no step failed"}},
)
async def retry_return(return_id: ReturnId, runtime: RuntimeDep, caller: Coordinator) -> ReturnOut:
    return await _step(runtime, caller, return_id, rules.retry)


# --- internal (the Return workflow) ---------------------------------------------------


@internal.post(
    "/{return_id}/policy-check",
    response_model=PolicyCheckOut,
    summary="Apply the return policy once: authorize, reject or leave for review",
)
async def policy_check(return_id: ReturnId, runtime: RuntimeDep, caller: Service) -> Any:
    async with runtime.db.transaction() as session:
        ret = await rules.load(session, return_id, lock=True)
        decision, reason = await rules.policy_check(
            session, rules.Actor(runtime.source, caller.subject), ret
        )
        body = await rules.view(session, ret, caller)
    return {"decision": decision, "reason": reason, "keep_it": ret.keep_it, "return": body}


@internal.post(
    "/{return_id}/label",
    response_model=ReturnOut,
    summary="The return label is bought: awaiting receipt until the policy's deadline",
    responses={409: {"description": "`invalid_transition`, `no_physical_return`"}},
)
async def label(
    return_id: ReturnId, body: LabelIn, runtime: RuntimeDep, caller: Service
) -> ReturnOut:
    return await _step(runtime, caller, return_id, lambda s, a, r: rules.label(s, a, r, body))


@internal.post(
    "/{return_id}/arrived",
    response_model=ReturnOut,
    summary="The return shipment reached the warehouse (status unchanged)",
)
async def arrived(
    return_id: ReturnId, body: ArrivedIn, runtime: RuntimeDep, caller: Service
) -> ReturnOut:
    return await _step(runtime, caller, return_id, lambda s, a, r: rules.arrived(s, a, r, body.at))


@internal.post(
    "/{return_id}/expire",
    response_model=ReturnOut,
    summary="Nothing arrived by the deadline: expired",
    responses={409: {"description": "`already_received`, `invalid_transition`"}},
)
async def expire(return_id: ReturnId, runtime: RuntimeDep, caller: Service) -> ReturnOut:
    return await _step(runtime, caller, return_id, rules.expire)


@internal.post(
    "/{return_id}/dispose",
    response_model=ReturnOut,
    summary="Publish the inspected lots' dispositions (restock goes back to the ledger)",
    responses=TRANSITION_409,
)
async def dispose(return_id: ReturnId, runtime: RuntimeDep, caller: Service) -> ReturnOut:
    return await _step(runtime, caller, return_id, rules.dispose)


@internal.post(
    "/{return_id}/refund",
    response_model=ReturnOut,
    summary="The credit record (price paid minus restocking fee); resolved",
    responses=TRANSITION_409,
)
async def refund(return_id: ReturnId, runtime: RuntimeDep, caller: Service) -> ReturnOut:
    return await _step(runtime, caller, return_id, rules.refund)


@internal.post(
    "/{return_id}/replacement",
    response_model=ReturnOut,
    summary="The replacement order is placed; resolved",
    responses=TRANSITION_409,
)
async def replacement(
    return_id: ReturnId, body: ReplacementIn, runtime: RuntimeDep, caller: Service
) -> ReturnOut:
    return await _step(
        runtime, caller, return_id, lambda s, a, r: rules.replacement(s, a, r, body.order_id)
    )


@internal.post(
    "/{return_id}/resolve",
    response_model=ReturnOut,
    summary="Resolved by repair or by returning the goods to the customer",
    responses=TRANSITION_409,
)
async def resolve(
    return_id: ReturnId, body: ResolveIn, runtime: RuntimeDep, caller: Service
) -> ReturnOut:
    resolution = Resolution(body.resolution)
    return await _step(
        runtime, caller, return_id, lambda s, a, r: rules.resolve(s, a, r, resolution)
    )


@internal.post(
    "/{return_id}/close",
    response_model=ReturnOut,
    summary="Close a resolved return",
    responses=TRANSITION_409,
)
async def close(return_id: ReturnId, runtime: RuntimeDep, caller: Service) -> ReturnOut:
    return await _step(runtime, caller, return_id, rules.close)


@internal.post(
    "/{return_id}/attention",
    response_model=ReturnOut,
    summary="A workflow step failed for good: mark the return for a coordinator",
)
async def attention(
    return_id: ReturnId, body: AttentionIn, runtime: RuntimeDep, caller: Service
) -> ReturnOut:
    return await _step(
        runtime,
        caller,
        return_id,
        lambda s, a, r: rules.need_attention(s, a, r, body.reason, body.detail),
    )


# --- policies -------------------------------------------------------------------------


@policy_router.post(
    "",
    status_code=201,
    response_model=PolicyOut,
    summary="Create a category's return policy",
    responses={
        409: {"description": "`policy_exists`: that id or category has a policy"},
        422: {"description": "`invalid_fee`: a percent restocking fee above 100"},
    },
)
async def create_policy(
    caller: Coordinator, body: PolicyCreate, runtime: RuntimeDep, key: IdempotencyKey
) -> Any:
    async def create(session: AsyncSession) -> tuple[int, Any]:
        policy = await policies.create_policy(session, body)
        return 201, PolicyOut.model_validate(policy).model_dump(mode="json")

    return await run_idempotent(
        runtime.db,
        route="POST /return-policies",
        principal=caller,
        key=key,
        payload=body,
        action=create,
    )


@policy_router.get("", response_model=PolicyPage, summary="Every return policy")
async def list_policies(runtime: RuntimeDep, caller: Staff) -> PolicyPage:
    async with runtime.db.reading() as session:
        rows = (await session.execute(sa.select(ReturnPolicy).order_by(ReturnPolicy.id))).scalars()
        return PolicyPage(items=[PolicyOut.model_validate(p) for p in rows])


@policy_router.get("/{policy_id}", response_model=PolicyOut, summary="One return policy")
async def get_policy(policy_id: PolicyId, runtime: RuntimeDep, caller: Staff) -> PolicyOut:
    async with runtime.db.reading() as session:
        return PolicyOut.model_validate(await policies.get_policy(session, policy_id))


@policy_router.put(
    "/{policy_id}",
    response_model=PolicyOut,
    summary="Replace a return policy (the default keeps no category)",
    responses={
        409: {"description": "`policy_exists`: another policy has that category"},
        422: {
            "description": "`invalid_fee`: a percent restocking fee above 100; "
            "`category_required`: only the default policy has no category"
        },
    },
)
async def replace_policy(
    policy_id: PolicyId, body: PolicyIn, runtime: RuntimeDep, caller: Coordinator
) -> PolicyOut:
    async with runtime.db.transaction() as session:
        policy = await policies.replace_policy(session, policy_id, body)
        return PolicyOut.model_validate(policy)


@policy_router.delete(
    "/{policy_id}",
    status_code=204,
    summary="Delete a category's policy (its category falls back to the default)",
    responses={409: {"description": "`default_policy`: the default stays"}},
)
async def delete_policy(policy_id: PolicyId, runtime: RuntimeDep, caller: Coordinator) -> Response:
    async with runtime.db.transaction() as session:
        await policies.delete_policy(session, policy_id)
    return Response(status_code=204)


routers = [router, internal, policy_router]
