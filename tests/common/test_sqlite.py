"""The SQLite driver: one trip to the connection's thread per statement, DBAPI results intact."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from services.common.db import Database

metadata = sa.MetaData()
items = sa.Table(
    "items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("code", sa.String, nullable=False, unique=True),
    sa.Column("qty", sa.Integer, nullable=False),
)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'driver.db'}")
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield database
    await database.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call aiosqlite queues onto a connection's thread, by function name."""
    seen: list[str] = []
    queue = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(getattr(fn, "__name__", repr(fn)))
        return await queue(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return seen


async def test_a_statement_is_one_trip_to_the_thread(db: Database, trips: list[str]) -> None:
    """A read transaction costs BEGIN, one trip per SELECT, COMMIT and the pool's reset."""
    async with db.transaction() as s:
        await s.execute(sa.insert(items), [{"code": f"c{i}", "qty": i} for i in range(3)])
    trips.clear()
    async with db.reading() as s:
        rows = (await s.execute(sa.select(items.c.code).order_by(items.c.id))).scalars().all()
        one = (await s.execute(sa.select(items.c.qty).where(items.c.code == "c2"))).scalar()
    assert rows == ["c0", "c1", "c2"] and one == 2
    # the stock adapter takes four trips per statement (cursor, execute, fetch, close)
    assert trips == ["_execute", "_execute", "_execute", "commit", "rollback"]


async def test_results_match_the_dbapi(db: Database) -> None:
    """RETURNING rows, rowcounts of updates and of executemany, lastrowid."""
    async with db.transaction() as s:
        inserted = await s.execute(
            sa.insert(items).returning(items.c.id, items.c.code),
            [{"code": "a", "qty": 1}, {"code": "b", "qty": 2}],
        )
        assert [r.code for r in inserted] == ["a", "b"]
        single = await s.execute(sa.insert(items).values(code="c", qty=3))
        assert single.inserted_primary_key == (3,)
        updated = await s.execute(sa.update(items).where(items.c.qty >= 2).values(qty=0))
        assert updated.rowcount == 2
        conn = await s.connection()
        many = await conn.exec_driver_sql(
            "UPDATE items SET qty = ? WHERE code = ?", [(5, "a"), (6, "b"), (7, "zz")]
        )
        assert many.rowcount == 2
        deleted = await s.execute(
            sa.delete(items).where(items.c.code == "c").returning(items.c.qty)
        )
        assert deleted.scalars().all() == [0]
    async with db.reading() as s:
        got = (await s.execute(sa.select(items.c.code, items.c.qty).order_by("code"))).all()
    assert [tuple(r) for r in got] == [("a", 5), ("b", 6)]


async def test_errors_are_sqlalchemy_errors_and_roll_back(db: Database) -> None:
    """A constraint violation surfaces as IntegrityError and leaves no partial write;
    the connection goes back to the pool usable."""
    with pytest.raises(IntegrityError):
        async with db.transaction() as s:
            await s.execute(sa.insert(items).values(code="x", qty=1))
            await s.execute(sa.insert(items).values(code="x", qty=2))
    async with db.reading() as s:
        assert (await s.execute(sa.select(sa.func.count()).select_from(items))).scalar() == 0
    with pytest.raises(sa.exc.OperationalError):
        async with db.reading() as s:
            await s.execute(sa.text("SELECT nope FROM items"))
    async with db.transaction() as s:
        await s.execute(sa.insert(items).values(code="x", qty=1))
    async with db.reading() as s:
        assert (await s.execute(sa.select(items.c.qty))).scalar() == 1


async def test_streamed_results_use_a_server_side_cursor(db: Database) -> None:
    """stream() keeps the stock cursor, fetching in batches from the open statement."""
    async with db.transaction() as s:
        await s.execute(sa.insert(items), [{"code": f"s{i:03}", "qty": i} for i in range(250)])
    async with db.reading() as s:
        result = await s.stream(sa.select(items.c.qty).order_by(items.c.id))
        total = 0
        async for partition in result.partitions(100):
            total += sum(row.qty for row in partition)
    assert total == sum(range(250))
