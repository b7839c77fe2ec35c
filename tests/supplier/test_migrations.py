"""The supplier migrations build exactly the tables models.py describes, go down and up
again, and the database itself refuses a second open signal of a pair."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
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
from services.supplier.models import Base, ReplenishmentSignal
from tests.harness import Databases

SUPPLIER_TABLES = {
    "suppliers",
    "supplier_items",
    "replenishment_policies",
    "stock_positions",
    "demand_daily",
    "demand_orders",
    "purchase_orders",
    "replenishment_signals",
    "signal_history",
    "webhook_deliveries",
    "po_history",
    "po_receipts",
    "vendor_returns",
}


@pytest.fixture
async def supplier_db(databases: Databases) -> AsyncIterator[Database]:
    db = Database(await databases.new("supplier"))
    await upgrade_to_head(db, "supplier")
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


async def test_migrations_match_the_models(supplier_db: Database) -> None:
    async with supplier_db.engine.connect() as conn:
        assert await conn.run_sync(_diff) == []
        assert await conn.run_sync(_tables) >= SUPPLIER_TABLES


async def test_downgrade_to_plumbing_and_back(supplier_db: Database) -> None:
    cfg = alembic_config("supplier")

    def migrate(connection: Connection, target: str, up: bool) -> None:
        cfg.attributes["connection"] = connection
        (command.upgrade if up else command.downgrade)(cfg, target)

    async with supplier_db.engine.begin() as conn:
        await conn.run_sync(migrate, "0001", False)
        assert not SUPPLIER_TABLES & await conn.run_sync(_tables)
        await conn.run_sync(migrate, "head", True)
        assert await conn.run_sync(_tables) >= SUPPLIER_TABLES


def _signal(status: str, supplier: str = "ACME") -> dict[str, Any]:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return {
        "id": str(uuid.uuid4()),
        "supplier_id": supplier,
        "supplier_item_id": "i1",
        "sku": "TEA",
        "warehouse_id": "WH-A",
        "status": status,
        "origin": "policy",
        "review_mode": "continuous",
        "on_hand": 0,
        "reserved": 0,
        "held": 0,
        "backordered": 0,
        "on_order": 0,
        "position": 0,
        "forecast_method": "mean",
        "forecast_daily_mean": 1.0,
        "forecast_daily_sigma": 0.0,
        "safety_stock": 0,
        "reorder_point": 1,
        "target": 1,
        "eoq": 0,
        "quantity": 1,
        "need_by": date(2026, 1, 1),
        "lead_time_days": 1,
        "unit_cost": 1,
        "currency": "EUR",
        "raised_by": "policy",
        "created_at": now,
        "updated_at": now,
    }


async def test_one_open_signal_per_pair_and_supplier(supplier_db: Database) -> None:
    """The partial unique index: closed signals of a pair may be many, open ones one."""
    insert = sa.insert(ReplenishmentSignal)
    async with supplier_db.engine.begin() as conn:
        await conn.execute(insert, [_signal("open"), _signal("cancelled"), _signal("ordered")])
        await conn.execute(insert, [_signal("open", supplier="OTHER")])
    with pytest.raises(sa.exc.IntegrityError):
        async with supplier_db.engine.begin() as conn:
            await conn.execute(insert, [_signal("open")])
