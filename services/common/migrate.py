"""Alembic, driven from code: each service applies its migrations at start-up."""

from __future__ import annotations

import zlib
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from services.common.db import Database, postgres_schema


def alembic_config(service: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", f"services.{service}:migrations")
    return cfg


def _upgrade(connection: Connection, cfg: Config, service: str) -> None:
    if connection.dialect.name == "postgresql":
        # Replicas starting together must not race each other through the same migration.
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(service.encode())}
        )
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


async def upgrade_to_head(db: Database, service: str) -> None:
    """Bring the service's database to the newest migration."""
    cfg = alembic_config(service)
    schema = postgres_schema(db.url)
    if schema:
        async with db.engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    async with db.engine.begin() as conn:
        await conn.run_sync(_upgrade, cfg, service)


def run_env(target_metadata: MetaData | None = None, **options: Any) -> None:
    """Body of every service's `migrations/env.py` (online mode, given connection)."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through services.common.migrate.upgrade_to_head")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        **options,
    )
    with context.begin_transaction():
        context.run_migrations()
