"""SQLite through aiosqlite, one statement per call of the connection's thread.

aiosqlite runs each SQLite call in the connection's own thread and hands the result back to the
event loop. SQLAlchemy's adapter makes three or four such calls per statement: open a cursor,
execute, fetch the rows, close the cursor. Each is a round of the thread waking, the loop waking
and the session's coroutines resuming, and under load each waits for a turn of a busy loop: the
embedded mode's send made about fifteen a document, and a transaction holding SQLite's one writer's
turn (shared.db.SQLiteWriters) held it that much longer (docs/performance.md, "The sixth
session's changes").

:class:`OneCallCursor` runs the whole statement (cursor, execute, rows, close) in one call of the
thread and keeps the rows, the description, the row count and the last row id it answered with;
:func:`use_one_call_cursors` makes a connection of SQLAlchemy's aiosqlite dialect use it (the
engine's ``connect`` listener, shared.db.create_engine). Server-side cursors (``stream_results``)
keep SQLAlchemy's own. Like SQLAlchemy's adapter itself, this reaches aiosqlite's thread through
its ``_execute`` and ``_conn`` (aiosqlite pinned in constraints.txt; the SQLite tests run through it).
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_connection, AsyncAdapt_aiosqlite_cursor
from sqlalchemy.util import EMPTY_DICT


class _Answered:
    """What a statement answered, kept after its SQLite cursor is closed."""

    __slots__ = ("arraysize", "description", "lastrowid", "rowcount", "rows")

    def __init__(
        self,
        description: Any = None,
        rowcount: int = -1,
        lastrowid: int | None = None,
        rows: list[Any] | None = None,
    ) -> None:
        self.description = description
        self.rowcount = rowcount
        self.lastrowid = lastrowid
        self.rows = rows
        self.arraysize = 1

    def close(self) -> None:  # the SQLite cursor closed already, in the thread
        return None


def _run(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Answered:
    """In the connection's thread: the statement from its cursor's opening to its closing."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        rows = cursor.fetchall() if cursor.description else None
        return _Answered(cursor.description, cursor.rowcount, cursor.lastrowid, rows)
    finally:
        cursor.close()


class OneCallCursor(AsyncAdapt_aiosqlite_cursor):
    """SQLAlchemy's aiosqlite cursor, each statement one call of the connection's thread."""

    __slots__ = ()
    _awaitable_cursor_close = False  # nothing is left open in the thread

    def __init__(self, adapt_connection: Any) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = _Answered()  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        return await self._call(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        return await self._call(operation, seq_of_parameters, many=True)

    def nextset(self) -> None:
        raise NotImplementedError("SQLite answers a statement with one result set")

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None  # sqlite3 takes no input sizes (the DB-API lets a driver ignore them)

    async def _call(self, operation: Any, parameters: Any, *, many: bool) -> None:
        async with self._adapt_connection._execute_mutex:
            driver = self._connection
            answered: _Answered = await driver._execute(_run, driver._conn, operation, parameters, many)
            self._cursor = answered  # type: ignore[assignment]
            if answered.rows is not None:
                self._rows = collections.deque(answered.rows)


class _OneCallConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneCallCursor


def use_one_call_cursors(dbapi_connection: Any) -> None:
    """Make a connection of SQLAlchemy's aiosqlite dialect run each statement in one call of its
    thread (an engine ``connect`` listener calls it); any other connection is left as it is."""
    if type(dbapi_connection) is AsyncAdapt_aiosqlite_connection:
        dbapi_connection.__class__ = _OneCallConnection
