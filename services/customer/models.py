"""Customer service tables."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from services.common.tables import UtcDateTime

Money = Numeric(14, 2)


class Base(DeclarativeBase):
    pass


class Customer(Base):
    """A customer: who they are, how to reach them, and their credit terms."""

    __tablename__ = "customers"
    __table_args__ = (
        CheckConstraint("kind IN ('b2b', 'b2c')", name="ck_customers_kind"),
        CheckConstraint(
            "credit_limit IS NULL OR credit_limit >= 0", name="ck_customers_credit_limit"
        ),
        CheckConstraint("version >= 1", name="ck_customers_version"),
        Index("ix_customers_name_key_id", "name_key", "id"),
        Index("ix_customers_created_at_id", "created_at", "id"),
        # Pattern ops so that prefix searches (`LIKE 'abc%'`) use the index on PostgreSQL.
        Index("ix_customers_email", "email", postgresql_ops={"email": "varchar_pattern_ops"}),
        Index(
            "ix_customers_phone_digits",
            "phone_digits",
            postgresql_ops={"phone_digits": "varchar_pattern_ops"},
        ),
        Index("ix_customers_kind_name_key", "kind", "name_key", "id"),
        CheckConstraint(
            "preferred_language IN ('en', 'zh-Hans')", name="ck_customers_preferred_language"
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # Folded name (lower case, no accents or punctuation): the sort key of the list.
    name_key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(8))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(16))
    phone_digits: Mapped[str | None] = mapped_column(String(15))
    credit_limit: Mapped[Decimal | None] = mapped_column(Money)
    credit_hold: Mapped[bool] = mapped_column(Boolean)
    # The language of the notices the customer gets (`notices.LANGUAGES`).
    preferred_language: Mapped[str] = mapped_column(String(8), default="en")
    version: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())

    addresses: Mapped[list[Address]] = relationship(
        back_populates="customer",
        cascade="all, delete-orphan",
        order_by="Address.position",
        lazy="raise",
    )
    contacts: Mapped[list[Contact]] = relationship(
        back_populates="customer",
        cascade="all, delete-orphan",
        order_by="Contact.position",
        lazy="raise",
    )


class Address(Base):
    """A shipping or billing address; at most one default per kind and customer."""

    __tablename__ = "customer_addresses"
    __table_args__ = (
        CheckConstraint("kind IN ('shipping', 'billing')", name="ck_customer_addresses_kind"),
        CheckConstraint("length(country) = 2", name="ck_customer_addresses_country"),
        Index("ix_customer_addresses_customer", "customer_id", "position"),
        Index(
            "uq_customer_addresses_default",
            "customer_id",
            "kind",
            unique=True,
            sqlite_where=text("is_default"),
            postgresql_where=text("is_default"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8))
    line1: Mapped[str] = mapped_column(String(200))
    line2: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(100))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    country: Mapped[str] = mapped_column(String(2))
    is_default: Mapped[bool] = mapped_column(Boolean)

    customer: Mapped[Customer] = relationship(back_populates="addresses", lazy="raise")


class Contact(Base):
    """A person at the customer."""

    __tablename__ = "customer_contacts"
    __table_args__ = (Index("ix_customer_contacts_customer", "customer_id", "position"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(16))
    role: Mapped[str | None] = mapped_column(String(100))

    customer: Mapped[Customer] = relationship(back_populates="contacts", lazy="raise")


class CustomerSearchGram(Base):
    """One trigram of a customer's folded name, email words or phone digits (search index)."""

    __tablename__ = "customer_search_grams"
    __table_args__ = (Index("ix_customer_search_grams_gram", "gram", "customer_id"),)

    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    gram: Mapped[str] = mapped_column(String(8), primary_key=True)


class CreditCheck(Base):
    """The first credit decision for an order; repeat checks for the order answer this one."""

    __tablename__ = "credit_checks"
    __table_args__ = (
        CheckConstraint("decision IN ('approved', 'hold')", name="ck_credit_checks_decision"),
        CheckConstraint("amount >= 0", name="ck_credit_checks_amount"),
        Index("ix_credit_checks_customer", "customer_id", "checked_at"),
        Index(
            "ix_credit_checks_uncounted",
            "customer_id",
            postgresql_where=text("counted_at IS NULL"),
            sqlite_where=text("counted_at IS NULL"),
        ),
    )

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    amount: Mapped[Decimal] = mapped_column(Money)
    decision: Mapped[str] = mapped_column(String(8))
    reason_code: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    credit_limit: Mapped[Decimal | None] = mapped_column(Money)
    credit_hold: Mapped[bool] = mapped_column(Boolean)
    open_order_value: Mapped[Decimal] = mapped_column(Money)
    available: Mapped[Decimal | None] = mapped_column(Money)
    checked_by: Mapped[str] = mapped_column(String(128))
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # When the order's own event reached the open orders; until then the check's
    # amount is pending exposure (the order exists, its `order.placed` is in flight).
    counted_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class OpenOrder(Base):
    """An order's contribution to its customer's exposure, from order events.

    Closed rows (cancelled, completed) stay, so a late or repeated OrderPlaced cannot
    reopen an order whose end was already seen. No foreign key: events may name a
    customer this service does not know (yet).
    """

    __tablename__ = "customer_open_orders"
    __table_args__ = (
        CheckConstraint(
            "status IN ('open', 'cancelled', 'completed')", name="ck_customer_open_orders_status"
        ),
        CheckConstraint("amount >= 0", name="ck_customer_open_orders_amount"),
        Index("ix_customer_open_orders_customer", "customer_id", "status"),
    )

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(16))
    placed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Notice(Base):
    """One email to one customer caused by one event (`notices.py`): rendered when the
    event arrives, then sent by the sender loop, retried until it is sent or fails for good.

    Unique per (source event, customer), so a repeated event never notifies twice. No
    foreign key: an event may name a customer this service does not know (the notice is
    then failed, visibly).
    """

    __tablename__ = "notices"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="ck_notices_status"),
        CheckConstraint("attempts >= 0", name="ck_notices_attempts"),
        Index("uq_notices_source", "source_event_id", "customer_id", unique=True),
        Index("ix_notices_due", "status", "next_attempt_at"),
        Index("ix_notices_customer", "customer_id", "created_at", "id"),
        Index("ix_notices_status_created", "status", "created_at", "id"),
        Index("ix_notices_created", "created_at", "id"),
        Index("uq_notices_dedupe", "customer_id", "dedupe_key", unique=True),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    source_event_id: Mapped[str] = mapped_column(String(64))
    source_type: Mapped[str] = mapped_column(String(128))
    reference: Mapped[str | None] = mapped_column(String(64))
    # What the notice says, once per customer (`notices.create`); null: once per event.
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8))
    to_address: Mapped[str | None] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    # The template's variables, kept so a notice can be rendered again (retry after a fix).
    context: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(8))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    message_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Interaction(Base):
    """One entry of a customer's interaction log: a contact through any channel, either
    way (notices sent by email today; calls, meetings and notes later)."""

    __tablename__ = "interactions"
    __table_args__ = (
        CheckConstraint("direction IN ('inbound', 'outbound')", name="ck_interactions_direction"),
        Index("ix_interactions_customer", "customer_id", "occurred_at", "id"),
        Index("uq_interactions_notice", "notice_id", unique=True),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(String(300))
    summary: Mapped[str] = mapped_column(String(1000))
    # What it is about: a return, recall, shipment or order id (`reference_kind` says which).
    reference: Mapped[str | None] = mapped_column(String(64))
    reference_kind: Mapped[str | None] = mapped_column(String(32))
    notice_id: Mapped[str | None] = mapped_column(String(36))
    recorded_by: Mapped[str] = mapped_column(String(128))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ShipmentCustomer(Base):
    """Which customer a shipment goes to (from `ShipmentCreated`), for shipment events
    published before they carried `customer_id`."""

    __tablename__ = "customer_shipments"

    shipment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[str] = mapped_column(String(64))
    tracking_number: Mapped[str | None] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())
