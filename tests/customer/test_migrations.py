"""The customer migrations build exactly the tables models.py describes, and go down again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from services.common.db import Database
from services.common.migrate import alembic_config, upgrade_to_head
from services.common.tables import metadata as plumbing
from services.customer.models import Base
from tests.harness import Databases

CUSTOMER_TABLES = {
    "customers",
    "customer_addresses",
    "customer_contacts",
    "customer_search_grams",
    "credit_checks",
    "customer_open_orders",
    "notices",
    "interactions",
    "customer_shipments",
}


@pytest.fixture
async def customer_db(databases: Databases) -> AsyncIterator[Database]:
    db = Database(await databases.new("customer"))
    await upgrade_to_head(db, "customer")
    yield db
    await db.dispose()


def _diff(connection: Connection) -> list[Any]:
    ignored = set(plumbing.tables) | {"alembic_version"}

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        return type_ != "table" or name not in ignored

    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_name": include_name}
    )
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(sa.inspect(connection).get_table_names())


async def test_migrations_match_the_models(customer_db: Database) -> None:
    async with customer_db.engine.connect() as conn:
        assert await conn.run_sync(_diff) == []
        assert await conn.run_sync(_tables) >= CUSTOMER_TABLES


async def test_downgrade_to_plumbing_and_back(customer_db: Database) -> None:
    cfg = alembic_config("customer")

    def migrate(connection: Connection, target: str, up: bool) -> None:
        cfg.attributes["connection"] = connection
        (command.upgrade if up else command.downgrade)(cfg, target)

    async with customer_db.engine.begin() as conn:
        await conn.run_sync(migrate, "0001", False)
        assert not CUSTOMER_TABLES & await conn.run_sync(_tables)
        await conn.run_sync(migrate, "head", True)
        assert await conn.run_sync(_tables) >= CUSTOMER_TABLES


async def test_constraints_hold_in_the_database(customer_db: Database) -> None:
    """The CHECK constraints and the one-default index refuse what the API never writes."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    row = {
        "id": "c1",
        "name": "A",
        "name_key": "a",
        "kind": "b2b",
        "credit_hold": False,
        "version": 1,
        "created_by": "t",
        "created_at": now,
        "updated_at": now,
    }
    insert = sa.text(
        "INSERT INTO customers (id, name, name_key, kind, credit_limit, credit_hold, version,"
        " created_by, created_at, updated_at) VALUES (:id, :name, :name_key, :kind,"
        " :credit_limit, :credit_hold, :version, :created_by, :created_at, :updated_at)"
    )
    for bad in ({"credit_limit": -1}, {"kind": "b2x", "credit_limit": None}):
        with pytest.raises(sa.exc.IntegrityError):
            async with customer_db.engine.begin() as conn:
                await conn.execute(insert, {**row, "credit_limit": None, **bad})
    async with customer_db.engine.begin() as conn:
        await conn.execute(insert, {**row, "credit_limit": 0})
    address = sa.text(
        "INSERT INTO customer_addresses (id, customer_id, position, kind, line1, city,"
        " country, is_default) VALUES (:id, 'c1', 0, 'billing', 'l', 'c', 'GB', :d)"
    )
    async with customer_db.engine.begin() as conn:
        await conn.execute(address, {"id": "a1", "d": True})
        await conn.execute(address, {"id": "a2", "d": False})
    with pytest.raises(sa.exc.IntegrityError):
        async with customer_db.engine.begin() as conn:
            await conn.execute(address, {"id": "a3", "d": True})
