"""aiosqlite for SQLAlchemy with one trip to the connection's thread per statement.

aiosqlite runs each SQLite connection on its own thread. SQLAlchemy's stock adapter
awaits that thread four times per statement (open a cursor, execute, fetch, close the
cursor), and each trip costs far more than the statement itself. This cursor does all
four in one call on the connection's thread; server-side cursors keep the stock one.
Pass `DBAPI` as `create_async_engine(..., module=DBAPI)` for a `sqlite+aiosqlite` URL.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

# description, rowcount, lastrowid, rows
_Outcome = tuple[Any, int, int | None, list[Any]]


def _execute(conn: sqlite3.Connection, operation: str, parameters: Any) -> _Outcome:
    cursor = conn.cursor()
    try:
        cursor.execute(operation, () if parameters is None else parameters)
        rows = cursor.fetchall() if cursor.description else []
        # rowcount is final only once every RETURNING row has been fetched
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


def _executemany(conn: sqlite3.Connection, operation: str, seq: Sequence[Any]) -> _Outcome:
    cursor = conn.cursor()
    try:
        cursor.executemany(operation, seq)
        return None, cursor.rowcount, cursor.lastrowid, []
    finally:
        cursor.close()


class OneStepCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose execute is a single call on the connection's thread."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    async def _run(self, fn: Callable[..., _Outcome], operation: str, parameters: Any) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        async with self._adapt_connection._execute_mutex:
            # aiosqlite's own queue onto its thread (SQLAlchemy's adapter uses it too)
            outcome: _Outcome = await connection._execute(
                fn, connection._conn, operation, parameters
            )
        self._description, self._rowcount, self._lastrowid, rows = outcome
        self._rows = collections.deque(rows)

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        try:
            return await_(self._run(_execute, operation, parameters))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        try:
            return await_(self._run(_executemany, operation, seq_of_parameters))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _async_soft_close(self) -> None:
        return None  # nothing is open on the thread between calls

    def close(self) -> None:
        self._rows.clear()


class _Connection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneStepCursor


class _DBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        stock = super().connect(*arg, **kw)
        return _Connection(self, stock._connection)


DBAPI = _DBAPI(aiosqlite, sqlite3)
