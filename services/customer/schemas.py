"""Customer service API models."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from services.customer.domain import (
    fold,
    money,
    normalise_country,
    normalise_email,
    normalise_phone,
)


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _has_letter_or_digit(value: str) -> str:
    if not fold(value):
        raise ValueError("a name needs at least one letter or digit")
    return value


Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_has_letter_or_digit)]
Email = Annotated[
    str,
    Field(max_length=254, examples=["ops@acme-logistics.example"]),
    AfterValidator(normalise_email),
]
Phone = Annotated[
    str,
    Field(
        max_length=32,
        description="Stored as digits with an optional leading + (`+44 20 7946-0958` -> "
        "`+442079460958`)",
        examples=["+44 20 7946 0958"],
    ),
    AfterValidator(normalise_phone),
]
Country = Annotated[
    str,
    Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2", examples=["GB"]),
    AfterValidator(normalise_country),
]
CreditLimit = Annotated[
    Decimal,
    Field(
        ge=0,
        max_digits=14,
        decimal_places=2,
        description="Maximum open order value; null means no limit",
        examples=["25000.00"],
    ),
    AfterValidator(money),
]

# Optional free text: blank means null.
Text20 = Annotated[Annotated[str, Field(max_length=20)] | None, BeforeValidator(_blank_to_none)]
Text100 = Annotated[Annotated[str, Field(max_length=100)] | None, BeforeValidator(_blank_to_none)]
Text200 = Annotated[Annotated[str, Field(max_length=200)] | None, BeforeValidator(_blank_to_none)]
CustomerKind = Literal["b2b", "b2c"]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class AddressIn(_Input):
    kind: Literal["shipping", "billing"]
    line1: str = Field(min_length=1, max_length=200)
    line2: Text200 = None
    city: str = Field(min_length=1, max_length=100)
    region: Text100 = None
    postal_code: Text20 = None
    country: Country
    is_default: bool = Field(
        False,
        description="At most one default per kind; when none is marked, the first address "
        "of each kind becomes the default",
    )


class ContactIn(_Input):
    name: Name
    email: Annotated[Email | None, BeforeValidator(_blank_to_none)] = None
    phone: Annotated[Phone | None, BeforeValidator(_blank_to_none)] = None
    role: Text100 = Field(None, examples=["accounts payable"])


Addresses = Annotated[list[AddressIn], Field(max_length=50)]
Contacts = Annotated[list[ContactIn], Field(max_length=50)]


def _one_default_per_kind(addresses: list[AddressIn]) -> list[AddressIn]:
    for kind in ("shipping", "billing"):
        if sum(1 for a in addresses if a.kind == kind and a.is_default) > 1:
            raise ValueError(f"more than one default {kind} address")
    return addresses


class CustomerCreate(_Input):
    name: Name = Field(examples=["Acme Logistics Ltd"])
    kind: CustomerKind
    email: Annotated[Email | None, BeforeValidator(_blank_to_none)] = None
    phone: Annotated[Phone | None, BeforeValidator(_blank_to_none)] = None
    addresses: Addresses = []
    contacts: Contacts = []
    credit_limit: CreditLimit | None = None
    credit_hold: bool = False

    @field_validator("addresses")
    @classmethod
    def _defaults(cls, value: list[AddressIn]) -> list[AddressIn]:
        return _one_default_per_kind(value)


class CustomerUpdate(_Input):
    """Only the fields sent change; `addresses` and `contacts` replace the whole list.

    `email`, `phone` and `credit_limit` may be null (cleared; a null limit means no limit).
    """

    name: Name | None = None
    email: Annotated[Email | None, BeforeValidator(_blank_to_none)] = None
    phone: Annotated[Phone | None, BeforeValidator(_blank_to_none)] = None
    addresses: Addresses | None = None
    contacts: Contacts | None = None
    credit_limit: CreditLimit | None = None
    credit_hold: bool | None = None

    @field_validator("addresses")
    @classmethod
    def _defaults(cls, value: list[AddressIn] | None) -> list[AddressIn] | None:
        return None if value is None else _one_default_per_kind(value)

    @model_validator(mode="after")
    def _not_null(self) -> CustomerUpdate:
        for name in ("name", "addresses", "contacts", "credit_hold"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class AddressPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    line1: str
    line2: str | None
    city: str
    region: str | None
    postal_code: str | None
    country: str
    is_default: bool


class ContactPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    email: str | None
    phone: str | None
    role: str | None


class CustomerPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    kind: CustomerKind
    email: str | None
    phone: str | None
    addresses: list[AddressPublic]
    contacts: list[ContactPublic]
    credit_limit: Decimal | None
    credit_hold: bool
    version: int = Field(description="Increases with every change; the ETag of the customer")
    created_at: datetime
    updated_at: datetime


class CustomerListItem(CustomerPublic):
    score: float | None = Field(
        None, description="Search relevance 0..1 when `q` was given, else null"
    )


class CustomerPage(BaseModel):
    items: list[CustomerListItem]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page"
    )


class CreditCheckRequest(_Input):
    order_id: str = Field(min_length=1, max_length=64)
    amount: Annotated[
        Decimal,
        Field(gt=0, max_digits=14, decimal_places=2, examples=["1250.00"]),
        AfterValidator(money),
    ]


class CreditCheckResult(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    order_id: str
    customer_id: str
    amount: Decimal
    decision: Literal["approved", "hold"]
    reason_code: Literal["credit_hold", "over_limit", "within_limit", "no_limit"]
    reason: str
    credit_limit: Decimal | None
    credit_hold: bool
    open_order_value: Decimal = Field(
        description="Value of the customer's other open orders when the check ran, "
        "including orders checked before whose placement had not reached the customer "
        "service yet"
    )
    available: Decimal | None = Field(
        description="Credit limit minus open_order_value (negative when already over); "
        "null without a limit"
    )
    checked_at: datetime


class OpenOrderPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    order_id: str
    amount: Decimal
    placed_at: datetime | None


class CreditStatus(BaseModel):
    customer_id: str
    credit_limit: Decimal | None
    credit_hold: bool
    open_order_value: Decimal = Field(description="Sum of the open orders listed below")
    pending_value: Decimal = Field(
        description="Orders already credit-checked whose placement has not reached the "
        "customer service yet (seconds, normally); they count against the limit too"
    )
    available: Decimal | None = Field(
        description="Credit limit minus open_order_value and pending_value (negative when "
        "over the limit); null without a limit"
    )
    open_orders: list[OpenOrderPublic]
