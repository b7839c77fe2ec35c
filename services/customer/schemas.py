"""Customer service API models."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
)

from services.common.money import Money
from services.common.patch import PatchBody
from services.customer.domain import (
    COUNTRIES,
    EMAIL_PATTERN,
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


# The codes `normalise_country` accepts, any case, as a pattern the schema can carry.
COUNTRY_PATTERN = (
    "^("
    + "|".join(f"[{c[0]}{c[0].lower()}][{c[1]}{c[1].lower()}]" for c in sorted(COUNTRIES))
    + ")$"
)
# What `normalise_phone` accepts: 4 to 15 digits amid punctuation, after a `+` or a
# leading `00` (which becomes the `+`).
_P = r"[ ().\-/]*"
_D = rf"(?:[0-9]{_P})"
PHONE_PATTERN = (
    rf"^{_P}(\+{_P}{_D}{{4,15}}|[1-9]{_P}{_D}{{3,14}}|0{_P}[1-9]{_P}{_D}{{2,13}}"
    rf"|0{_P}0{_P}{_D}{{4,15}})$"
)
# Input strings are stripped, so a required one must hold more than spaces; a name needs
# a letter or digit (what `fold` keeps).
NOT_BLANK = r"\S"
Name = Annotated[
    str,
    Field(min_length=1, max_length=200, pattern=r"[^\W_]"),
    AfterValidator(_has_letter_or_digit),
]
Email = Annotated[
    str,
    Field(max_length=254, pattern=EMAIL_PATTERN, examples=["ops@acme-logistics.example"]),
    AfterValidator(normalise_email),
]
Phone = Annotated[
    str,
    Field(
        max_length=32,
        pattern=PHONE_PATTERN,
        description="4 to 15 digits, stored with an optional leading + "
        "(`+44 20 7946-0958` -> `+442079460958`)",
        examples=["+44 20 7946 0958"],
    ),
    AfterValidator(normalise_phone),
]
Country = Annotated[
    str,
    Field(
        pattern=COUNTRY_PATTERN,
        description="ISO 3166-1 alpha-2, any case",
        examples=["GB"],
    ),
    AfterValidator(normalise_country),
]
CreditLimit = Annotated[
    Money,
    Field(description="Maximum open order value; null means no limit", examples=["25000.00"]),
    AfterValidator(money),
]


def _or_blank(schema: dict[str, Any]) -> None:
    """A blank string is accepted as null: say so."""
    schema.setdefault("anyOf", []).append({"type": "string", "pattern": r"^\s*$"})


OptionalEmail = Annotated[
    Email | None, BeforeValidator(_blank_to_none), Field(json_schema_extra=_or_blank)
]
OptionalPhone = Annotated[
    Phone | None, BeforeValidator(_blank_to_none), Field(json_schema_extra=_or_blank)
]

# Optional free text: blank means null.
Text20 = Annotated[Annotated[str, Field(max_length=20)] | None, BeforeValidator(_blank_to_none)]
Text100 = Annotated[Annotated[str, Field(max_length=100)] | None, BeforeValidator(_blank_to_none)]
Text200 = Annotated[Annotated[str, Field(max_length=200)] | None, BeforeValidator(_blank_to_none)]
CustomerKind = Literal["b2b", "b2c"]
Language = Literal["en", "zh-Hans"]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class AddressIn(_Input):
    kind: Literal["shipping", "billing"]
    line1: str = Field(min_length=1, max_length=200, pattern=NOT_BLANK)
    line2: Text200 = None
    city: str = Field(min_length=1, max_length=100, pattern=NOT_BLANK)
    region: Text100 = None
    postal_code: Text20 = None
    country: Country
    is_default: StrictBool = Field(
        False,
        description="At most one default per kind; when none is marked, the first address "
        "of each kind becomes the default",
    )


class ContactIn(_Input):
    name: Name
    email: OptionalEmail = None
    phone: OptionalPhone = None
    role: Text100 = Field(None, examples=["accounts payable"])


def _one_default_per_kind_schema(schema: dict[str, Any]) -> None:
    """`_one_default_per_kind` in the schema: at most one default address of each kind."""
    schema["allOf"] = [
        {
            "contains": {
                "properties": {"kind": {"const": kind}, "is_default": {"const": True}},
                "required": ["kind", "is_default"],
            },
            "minContains": 0,
            "maxContains": 1,
        }
        for kind in ("shipping", "billing")
    ]


Addresses = Annotated[
    list[AddressIn], Field(max_length=50, json_schema_extra=_one_default_per_kind_schema)
]
Contacts = Annotated[list[ContactIn], Field(max_length=50)]


def _one_default_per_kind(addresses: list[AddressIn]) -> list[AddressIn]:
    for kind in ("shipping", "billing"):
        if sum(1 for a in addresses if a.kind == kind and a.is_default) > 1:
            raise ValueError(f"more than one default {kind} address")
    return addresses


class CustomerCreate(_Input):
    name: Name = Field(examples=["Acme Logistics Ltd"])
    kind: CustomerKind
    email: OptionalEmail = None
    phone: OptionalPhone = None
    addresses: Addresses = []
    contacts: Contacts = []
    credit_limit: CreditLimit | None = None
    credit_hold: StrictBool = False
    preferred_language: Language = Field("en", description="The language of notices")

    @field_validator("addresses")
    @classmethod
    def _defaults(cls, value: list[AddressIn]) -> list[AddressIn]:
        return _one_default_per_kind(value)


class CustomerUpdate(PatchBody):
    """Only the fields sent change; `addresses` and `contacts` replace the whole list.

    `email`, `phone` and `credit_limit` may be null (cleared; a null limit means no limit).
    """

    model_config = ConfigDict(str_strip_whitespace=True)
    clearable: ClassVar[frozenset[str]] = frozenset({"email", "phone", "credit_limit"})

    name: Name | None = None
    email: OptionalEmail = None
    phone: OptionalPhone = None
    addresses: Addresses | None = None
    contacts: Contacts | None = None
    credit_limit: CreditLimit | None = None
    credit_hold: StrictBool | None = None
    preferred_language: Language | None = None

    @field_validator("addresses")
    @classmethod
    def _defaults(cls, value: list[AddressIn] | None) -> list[AddressIn] | None:
        return None if value is None else _one_default_per_kind(value)


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
    preferred_language: Language
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
    order_id: str = Field(min_length=1, max_length=64, pattern=NOT_BLANK)
    amount: Annotated[
        Money,
        Field(
            examples=["1250.00"],
            description="the order's total; 0 (a free order) is always approved",
        ),
        AfterValidator(money),
    ]


class CreditCheckResult(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    order_id: str
    customer_id: str
    amount: Decimal
    decision: Literal["approved", "hold"]
    reason_code: Literal["credit_hold", "over_limit", "within_limit", "no_limit", "free_order"]
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


NoticeKindName = Literal[
    "return_authorized",
    "return_awaiting_receipt",
    "return_rejected",
    "return_expired",
    "return_refunded",
    "recall_notice",
    "shipment_exception",
    "shipment_out_for_delivery",
    "shipment_delivered",
]
NoticeStatusName = Literal["pending", "sent", "failed"]


class NoticePublic(BaseModel):
    """A notice: what was (or is to be) sent to whom, and how sending it went."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    customer_id: str
    kind: NoticeKindName
    status: NoticeStatusName
    reference: str | None = Field(description="The return, recall or shipment it is about")
    source_event_id: str
    source_type: str
    language: Language
    to_address: str | None
    subject: str
    body_text: str
    attempts: int = Field(description="Sending attempts so far")
    last_error: str | None = Field(description="Why the last attempt failed (or why failed)")
    next_attempt_at: datetime | None = Field(
        description="When a pending notice is tried next; null once sent or failed"
    )
    created_at: datetime
    sent_at: datetime | None


class NoticePage(BaseModel):
    items: list[NoticePublic]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page"
    )


class InteractionPublic(BaseModel):
    """One entry of a customer's interaction log."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    customer_id: str
    channel: str = Field(description="`email` (notices) today")
    direction: Literal["inbound", "outbound"]
    subject: str
    summary: str
    reference: str | None
    reference_kind: str | None = Field(description="`return`, `recall`, `shipment`...")
    notice_id: str | None
    recorded_by: str
    occurred_at: datetime


class InteractionPage(BaseModel):
    items: list[InteractionPublic]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page"
    )
