"""schemathesis hooks for the contract run (loaded through `SCHEMATHESIS_HOOKS`).

A client sends a fresh `Idempotency-Key` for every creation it intends, and the same
key only to retry the same request; a generator draws the same few keys again and
again, with other bodies, which the contract answers with 422
`idempotency_key_reused`. So in every positive case the key is made unique before the
request goes out; negative cases go out as drawn.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import schemathesis

from services.common.idempotency import KEY_PATTERN

_KEY = re.compile(KEY_PATTERN)


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if case.meta is not None and not case.meta.generation.mode.is_positive:
        return  # a negative case goes out as drawn (and a changed header would make it positive)
    headers = case.headers or {}
    for name, value in headers.items():
        if name.lower() == "idempotency-key" and isinstance(value, str) and _KEY.fullmatch(value):
            headers[name] = f"contract-{uuid.uuid4().hex}"
