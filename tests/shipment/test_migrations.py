"""The shipment migrations build exactly the tables models.py describes, and go down."""

from __future__ import annotations

from collections.abc import AsyncIterator
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
from services.shipment.models import Base
from tests.harness import Databases


@pytest.fixture
async def shipment_db(databases: Databases) -> AsyncIterator[Database]:
    db = Database(await databases.new("shipment"))
    await upgrade_to_head(db, "shipment")
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


def _columns(connection: Connection) -> set[str]:
    return {c["name"] for c in sa.inspect(connection).get_columns("shipments")}


async def test_migrations_match_the_models(shipment_db: Database) -> None:
    async with shipment_db.engine.connect() as conn:
        assert await conn.run_sync(_diff) == []


async def test_return_shipments_migrate_down_and_up(shipment_db: Database) -> None:
    cfg = alembic_config("shipment")

    def migrate(connection: Connection, target: str, up: bool) -> None:
        cfg.attributes["connection"] = connection
        (command.upgrade if up else command.downgrade)(cfg, target)

    async with shipment_db.engine.begin() as conn:
        await conn.run_sync(migrate, "0003", False)
        assert not {"direction", "return_id"} & await conn.run_sync(_columns)
        await conn.run_sync(migrate, "head", True)
        assert {"direction", "return_id"} <= await conn.run_sync(_columns)
