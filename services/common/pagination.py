"""Opaque keyset cursors: the last row's sort key as base64url JSON.

A cursor this API did not hand out is a 400 problem with code `invalid_cursor`.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from services.common.problems import BadRequest

Scalar = str | int | float


def _invalid() -> BadRequest:
    return BadRequest("cursor is not one this API handed out", code="invalid_cursor")


def encode_cursor(*key: Scalar) -> str:
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *types: type | tuple[type, ...]) -> list[Any]:
    """The key inside `cursor`; with `types`, each position must have that type."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise _invalid() from exc
    if not isinstance(key, list) or (types and len(key) != len(types)):
        raise _invalid()
    for value, allowed in zip(key, types, strict=False):
        if isinstance(value, bool) or not isinstance(value, allowed):
            raise _invalid()
    return key


def encode_time_cursor(at: datetime, row_id: str) -> str:
    return encode_cursor(at.isoformat(), row_id)


def decode_time_cursor(cursor: str) -> tuple[datetime, str]:
    """A (timestamp, id) cursor, for lists ordered by creation time."""
    at, row_id = decode_cursor(cursor, str, str)
    try:
        moment = datetime.fromisoformat(at)
    except ValueError as exc:
        raise _invalid() from exc
    if moment.tzinfo is None:
        raise _invalid()
    return moment, row_id
