"""Whole numbers on the wire: JSON `true` and `false` are no integers.

Pydantic's lax mode reads `true` as 1 and `false` as 0, which the OpenAPI schema
(`type: integer`) refuses; `NOT_BOOL` refuses them too, while still taking `59.0`. Put
it after the bounds, `Annotated[int, Field(ge=1), NOT_BOOL]`: before them, pydantic
drops `minimum`/`maximum` from the JSON schema.
"""

from __future__ import annotations

from typing import Any

from pydantic import BeforeValidator


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a number, not a boolean")
    return value


NOT_BOOL = BeforeValidator(_not_bool)
