"""`Idempotency-Key` for POSTs that create things.

The stored response is written in the same transaction as the creation, so a
replay returns exactly what the first call answered, and a crash leaves either
both or neither. Same key with a different body is a 422; a missing key is a 400.
Keys are scoped to the route and the caller's stable identity (subject, role and
tenant ids; `Principal.identity`), not to the token: a retry with a refreshed token
replays, and two callers never see each other's answers.
Stored answers are kept `idempotency_keep_days` (see housekeeping.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Header
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.auth import Principal
from services.common.db import Database
from services.common.problems import BadRequest, Unprocessable
from services.common.tables import idempotency_keys

REPLAY_HEADER = "Idempotent-Replayed"
# What a key may be: 1 to 255 printable ASCII characters, spaces only inside (the
# OpenAPI documents say so).
KEY_MAX_LENGTH = 255
KEY_PATTERN = r"^[!-~]([ -~]*[!-~])?$"
_KEY = re.compile(KEY_PATTERN)


async def idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Unique per intended creation; a retry with the same key and body "
            "returns the first response.",
        ),
    ] = None,
) -> str:
    """The request's Idempotency-Key header; 400 problem when absent or unusable."""
    if key is None or not key.strip():
        raise BadRequest(
            "POSTs that create something need an `Idempotency-Key` header",
            code="idempotency_key_missing",
        )
    key = key.strip()
    if len(key) > KEY_MAX_LENGTH or not _KEY.fullmatch(key):
        raise BadRequest(
            f"Idempotency-Key must be 1 to {KEY_MAX_LENGTH} printable ASCII characters",
            code="idempotency_key_invalid",
        )
    return key


def fingerprint(payload: Any) -> str:
    canonical = json.dumps(jsonable_encoder(payload), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


Action = Callable[[AsyncSession], Awaitable[tuple[int, Any]]]


async def _stored(session: AsyncSession, scope: str, key: str) -> Any:
    result = await session.execute(
        sa.select(
            idempotency_keys.c.request_hash,
            idempotency_keys.c.status_code,
            idempotency_keys.c.response,
        ).where(idempotency_keys.c.scope == scope, idempotency_keys.c.key == key)
    )
    return result.first()


def _replay(row: Any, request_hash: str) -> JSONResponse:
    if row.request_hash != request_hash:
        raise Unprocessable(
            "this Idempotency-Key was already used with a different request body",
            code="idempotency_key_reused",
        )
    return JSONResponse(row.response, status_code=row.status_code, headers={REPLAY_HEADER: "true"})


async def run_idempotent(
    db: Database,
    *,
    route: str,
    principal: Principal,
    key: str,
    payload: Any,
    action: Action,
    prepare: Callable[[], Awaitable[None]] | None = None,
) -> JSONResponse:
    """Run `action` once per (route, caller identity, key); replays answer the stored response.

    `action` writes in the given session and returns (status, body); it shares the
    transaction in which the response is remembered. `prepare`, when given, runs first
    and outside any transaction (unless the key was answered already): the place for a
    call to another system, such as buying a carrier label, that must not hold the
    database's write lock. It must be idempotent itself: a retry after a crash runs it again.
    """
    scope = f"{route}|{principal.identity}"
    request_hash = fingerprint(payload)
    if prepare is not None:
        async with db.reading() as session:
            row = await _stored(session, scope, key)
        if row is not None:
            return _replay(row, request_hash)
        await prepare()
    try:
        async with db.transaction() as session:
            row = await _stored(session, scope, key)
            if row is not None:
                return _replay(row, request_hash)
            status, body = await action(session)
            body = jsonable_encoder(body)
            await session.execute(
                idempotency_keys.insert().values(
                    scope=scope,
                    key=key,
                    request_hash=request_hash,
                    status_code=status,
                    response=body,
                    created_at=datetime.now(UTC),
                )
            )
    except IntegrityError:
        # A concurrent request with the same key committed first: answer what it stored.
        async with db.reading() as session:
            row = await _stored(session, scope, key)
        if row is None:
            raise
        return _replay(row, request_hash)
    return JSONResponse(body, status_code=status)
