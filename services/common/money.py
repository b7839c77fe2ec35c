"""Money on the wire: at most 12 digits before the point and 2 after, not negative.

Sent as a JSON string (`"12.50"`) or number; the schema states exactly what is accepted
(a string pattern, a number in cents), so a client generated from the OpenAPI document
cannot send an amount the server refuses.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

MONEY_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,2})?$"
MONEY_MAX = 999_999_999_999.99
# Above zero: a whole part from 1, or 0 and cents that are not both 0.
_CENTS_ABOVE_ZERO = r"\.([1-9][0-9]?|0[1-9])"
POSITIVE_PATTERN = rf"^([1-9][0-9]{{0,11}}(\.[0-9]{{1,2}})?|0?{_CENTS_ABOVE_ZERO})$"


def cents_of_float(value: Any) -> Any:
    """A JSON number that is a whole number of cents (within float error) as that Decimal:
    0.57 arrives as 0.5700000000000001."""
    if isinstance(value, float) and abs(value * 100 - round(value * 100)) < 1e-6:
        return Decimal(round(value * 100)) / 100
    return value


def money_schema(schema: dict[str, Any]) -> None:
    schema["anyOf"] = [
        {"type": "number", "minimum": 0, "maximum": MONEY_MAX, "multipleOf": 0.01},
        {"type": "string", "pattern": MONEY_PATTERN},
    ]


def positive_money_schema(schema: dict[str, Any]) -> None:
    schema["anyOf"] = [
        {"type": "number", "minimum": 0.01, "maximum": MONEY_MAX, "multipleOf": 0.01},
        {"type": "string", "pattern": POSITIVE_PATTERN},
    ]


Money = Annotated[
    Decimal,
    Field(ge=0, max_digits=14, decimal_places=2, json_schema_extra=money_schema),
    BeforeValidator(cents_of_float),
]
PositiveMoney = Annotated[
    Decimal,
    Field(gt=0, max_digits=14, decimal_places=2, json_schema_extra=positive_money_schema),
    BeforeValidator(cents_of_float),
]
