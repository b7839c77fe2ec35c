"""Retention of the plumbing tables: what is past its time goes, nothing else does."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from services.common.bus import Bus
from services.common.db import Database
from services.common.housekeeping import purge
from services.common.settings import STREAM_RETENTION_DAYS
from services.common.tables import idempotency_keys, inbox, outbox
from services.order.settings import OrderSettings
from tests.harness import Stack, auth, eventually

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


async def seed(db: Database) -> None:
    """Rows on both sides of each default retention (7 d, 31 d, 7 d)."""
    outbox_rows = [
        (days_ago(20), days_ago(20)),  # published long ago: goes
        (days_ago(8), days_ago(7.5)),  # published 7.5 days ago: goes
        (days_ago(8), days_ago(6)),  # published 6 days ago: stays
        (days_ago(40), None),  # never published: stays, however old
    ]
    async with db.transaction() as s:
        for created, published in outbox_rows:
            await s.execute(
                outbox.insert().values(
                    event_id=str(uuid.uuid4()),
                    subject="order.test.happened",
                    type="test",
                    envelope="{}",
                    headers={},
                    created_at=created,
                    published_at=published,
                )
            )
        for n, age in enumerate((45, 32, 30, 1)):  # 45 and 32 go
            await s.execute(
                inbox.insert().values(
                    consumer="c", event_id=f"e{n}", event_type="t", processed_at=days_ago(age)
                )
            )
        for n, age in enumerate((9, 8, 7.5, 6.9, 0)):  # 9, 8 and 7.5 go
            await s.execute(
                idempotency_keys.insert().values(
                    scope="POST /x|someone",
                    key=f"k{n}",
                    request_hash="h",
                    status_code=201,
                    response={},
                    created_at=days_ago(age),
                )
            )


async def remaining(db: Database) -> tuple[int, int, list[str]]:
    async with db.reading() as s:
        n_outbox = (await s.execute(sa.select(sa.func.count()).select_from(outbox))).scalar()
        n_inbox = (await s.execute(sa.select(sa.func.count()).select_from(inbox))).scalar()
        keys = (await s.execute(sa.select(idempotency_keys.c.key))).scalars().all()
    return int(n_outbox or 0), int(n_inbox or 0), sorted(keys)


async def test_purge_removes_only_rows_past_retention(stack: Stack) -> None:
    """In batches smaller than the backlog; unpublished events are never purged."""
    svc = await stack.start("order", relay_enabled=False, consumers_enabled=False)
    db = svc.runtime.db
    await seed(db)
    purged = await purge(db, svc.runtime.settings, now=NOW, batch=1)
    assert (purged.outbox, purged.inbox, purged.idempotency_keys) == (2, 2, 3)
    assert await remaining(db) == (2, 2, ["k3", "k4"])
    again = await purge(db, svc.runtime.settings, now=NOW)
    assert (again.outbox, again.inbox, again.idempotency_keys) == (0, 0, 0)


def test_processed_event_ids_must_outlive_the_streams() -> None:
    """An inbox kept shorter than the streams keep messages would let a redelivered old
    message through twice: such a setting is refused at start."""
    with pytest.raises(ValidationError):
        OrderSettings(inbox_keep_days=STREAM_RETENTION_DAYS - 1)
    assert OrderSettings().inbox_keep_days > STREAM_RETENTION_DAYS


@pytest.mark.settings(order={"housekeeping_interval_seconds": 0.2, "outbox_keep_days": 0})
async def test_the_service_purges_on_its_own(stack: Stack, bus: Bus) -> None:
    """The running service's housekeeping loop drops an event once it is on the stream
    (kept 0 days here), while the answered Idempotency-Key stays (kept 7 days)."""
    svc = await stack.start("order")
    r = await svc.http.post(
        "/diagnostics/pings",
        json={"message": "purge me once published"},
        headers={**auth("ops"), "Idempotency-Key": "ping-1"},
    )
    assert r.status_code == 202, r.text
    db = svc.runtime.db

    async def published_and_purged() -> bool:
        on_stream = (await bus.js.stream_info("ORDER")).state.messages
        async with db.reading() as s:
            left = (await s.execute(sa.select(outbox.c.seq))).first()
        return on_stream >= 1 and left is None

    await eventually(published_and_purged, timeout=20, message="published event purged")
    async with db.reading() as s:
        assert (await s.execute(sa.select(idempotency_keys.c.key))).scalars().all() == ["ping-1"]
