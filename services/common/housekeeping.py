"""Retention for the plumbing tables, so a long-running service's database stays bounded.

Published outbox rows are kept `outbox_keep_days` for audit; inbox rows (processed event
ids) at least as long as the streams keep messages, or a redelivered old message would be
handled twice; stored `Idempotency-Key` answers `idempotency_keep_days` (a retry after
that is a new request). Rows go in small batches, each its own short transaction, so a
purge never holds SQLite's write lock for long.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from services.common import telemetry
from services.common.db import Database
from services.common.settings import ServiceSettings
from services.common.tables import idempotency_keys, inbox, outbox

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Purged:
    outbox: int
    inbox: int
    idempotency_keys: int


def _batches(now: datetime, settings: ServiceSettings, size: int) -> dict[str, sa.Delete]:
    """One DELETE per table, each removing at most `size` expired rows (oldest first)."""
    published_before = now - timedelta(days=settings.outbox_keep_days)
    processed_before = now - timedelta(days=settings.inbox_keep_days)
    answered_before = now - timedelta(days=settings.idempotency_keep_days)
    old_outbox = (
        sa.select(outbox.c.seq)
        .where(outbox.c.published_at.is_not(None), outbox.c.published_at < published_before)
        .order_by(outbox.c.seq)
        .limit(size)
    )
    old_inbox = (
        sa.select(inbox.c.consumer, inbox.c.event_id)
        .where(inbox.c.processed_at < processed_before)
        .limit(size)
    )
    old_keys = (
        sa.select(idempotency_keys.c.scope, idempotency_keys.c.key)
        .where(idempotency_keys.c.created_at < answered_before)
        .limit(size)
    )
    return {
        "outbox": outbox.delete().where(outbox.c.seq.in_(old_outbox.scalar_subquery())),
        "inbox": inbox.delete().where(sa.tuple_(inbox.c.consumer, inbox.c.event_id).in_(old_inbox)),
        "idempotency_keys": idempotency_keys.delete().where(
            sa.tuple_(idempotency_keys.c.scope, idempotency_keys.c.key).in_(old_keys)
        ),
    }


async def purge(
    db: Database, settings: ServiceSettings, now: datetime | None = None, batch: int = 1000
) -> Purged:
    """Delete every plumbing row past its retention; returns how many per table."""
    statements = _batches(now or datetime.now(UTC), settings, batch)
    counts: dict[str, int] = {}
    with telemetry.tracer().start_as_current_span("housekeeping purge") as span:
        for table, statement in statements.items():
            counts[table] = 0
            while True:
                async with db.transaction() as session:
                    deleted = (await session.execute(statement)).rowcount or 0  # type: ignore[attr-defined]
                counts[table] += deleted
                if deleted < batch:
                    break
                await asyncio.sleep(0)  # let requests in between batches
            span.set_attribute(f"waybill.purged.{table}", counts[table])
    return Purged(**counts)


async def run(db: Database, settings: ServiceSettings) -> None:
    """Purge every `housekeeping_interval_seconds`, the first time one interval after start."""
    while True:
        await asyncio.sleep(settings.housekeeping_interval_seconds)
        purged = await purge(db, settings)
        if purged.outbox or purged.inbox or purged.idempotency_keys:
            log.info("housekeeping: purged %s", purged)
