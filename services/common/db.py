"""Database engines and sessions: SQLite (WAL, synchronous=FULL) by default, PostgreSQL by URL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

from services.common import sqlite


def normalize_url(url: str) -> str:
    """Pick the async driver for a plain `postgresql://` or `sqlite://` URL."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url


def postgres_schema(url: str) -> str | None:
    """The `schema` query option of a PostgreSQL URL, if any."""
    value = make_url(normalize_url(url)).query.get("schema")
    return value if isinstance(value, str) and value else None


def is_sqlite(url: str) -> bool:
    return make_url(normalize_url(url)).get_backend_name() == "sqlite"


READ_ONLY = "waybill_read_only"


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # Committed writes must survive power loss; readers must not block the writer.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
    # Let SQLAlchemy, not the driver, issue BEGIN so that writers can use IMMEDIATE.
    dbapi_conn.isolation_level = None


def _sqlite_begin(conn: Any) -> None:
    # A writer takes the lock at BEGIN and queues on busy_timeout; a deferred BEGIN
    # that later upgrades to a write can fail outright under WAL.
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for `url`; SQLite gets durable pragmas and serialized writers."""
    url = normalize_url(url)
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, module=sqlite.DBAPI, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    schema = postgres_schema(url)
    if schema:
        # `?schema=name` keeps this service's tables (and Alembic's) in their own schema.
        url = make_url(url).difference_update_query(["schema"]).render_as_string(False)
        kwargs.setdefault("connect_args", {}).setdefault("server_settings", {})["search_path"] = (
            schema
        )
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


class Database:
    """A service's engine with a session factory for writes and one for reads."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = normalize_url(url)
        self.engine = create_engine(self.url, **engine_kwargs)
        self.commit_hooks: list[Callable[[Session], None]] = []
        session_cls = type("WaybillSession", (Session,), {})
        event.listen(session_cls, "after_commit", self._after_commit)
        self.sessions = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=session_cls
        )
        self.read_sessions = async_sessionmaker(
            self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )

    def _after_commit(self, session: Session) -> None:
        for hook in self.commit_hooks:
            hook(session)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits on success, rolls back on any exception."""
        async with self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A read-only unit of work that does not take SQLite's write lock."""
        async with self.read_sessions() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
