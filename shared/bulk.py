"""New rows of several tables written together: on PostgreSQL one statement, one round trip.

A change that inserts into five or six tables (a send: the document, its attachments, deliveries,
their history, feed entries, outbox events) pays a round trip and the ORM's execution per table.
Inside :func:`deferred_inserts`, :func:`insert_rows` collects the rows instead; when the block
ends they are written:

- on PostgreSQL, in **one statement**: a data-modifying CTE per table, each table's rows one JSON
  parameter read by ``json_to_recordset`` with the columns' own types, e.g.::

      WITH w0 AS (INSERT INTO document (id, …) SELECT r.id, … FROM json_to_recordset(CAST($1 AS json))
                  AS r(id UUID, …))
      INSERT INTO attachment (…) SELECT … FROM json_to_recordset(CAST($2 AS json)) AS r(…)

  Foreign keys between the tables hold: PostgreSQL checks them when the statement ends. The
  statement's text depends only on the tables and their column lists, so it is built once. It
  goes straight to the session's asyncpg connection (:mod:`shared.direct`) when that connection is
  in a transaction, or when the block says its rows are all the unit of work writes (``alone``: the
  statement is then a transaction of its own, with no ``BEGIN`` or ``COMMIT``); otherwise through
  SQLAlchemy, which begins the transaction;
- on SQLite (aiosqlite), in **one call of the connection's thread**: one ``executemany`` per
  table, in the order they were given, all run by the thread that owns the connection in a single
  hand-over. Each statement through SQLAlchemy is a hand-over of its own (the thread runs it, the
  event loop resumes the session), and the whole database's writes wait while a transaction holds
  SQLite's one writer's turn: one hand-over instead of one per table is what shortens that turn.
  The statements are SQLAlchemy's own compiled ``INSERT``, after the session's pending changes are
  flushed. An engine with cursor listeners (``before_cursor_execute``, ``after_cursor_execute``,
  ``handle_error``: tracing, the tests' statement counters) gets one ``INSERT`` per table through
  SQLAlchemy instead, as does any other SQLite driver. (aiosqlite has no public way to run a
  function in its thread: its ``_execute``, as SQLAlchemy's own adapter reaches into it; pinned
  in constraints.txt.)

Values are converted as SQLAlchemy would bind them: a column type's own bind step first (a
``TypeDecorator`` such as :class:`shared.db.UTCDateTime` refuses naive datetimes), then to JSON;
a ``JSON`` column's value travels as its serialized text and is cast back, so Python ``None`` is
stored as JSON ``null`` there, exactly as an ``INSERT`` through SQLAlchemy stores it.

Rows are not visible to the transaction's own queries until the block ends: only code that writes
new rows and reads none of them back may defer (the send path).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import JSON, Table, TypeDecorator, insert, text
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import TextClause

from shared import direct, jsoncodec

_BATCH = "lienthong_deferred_inserts"


class InsertBatch:
    """Rows for several tables, in the order they were added; written by :meth:`write`."""

    def __init__(self) -> None:
        self.parts: list[tuple[Table, list[dict[str, Any]]]] = []

    def add(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            _columns_of(table, rows)
            self.parts.append((table, _with_defaults(table, rows)))

    async def write(self, session: AsyncSession, *, alone: bool = False) -> None:
        """Insert every row: one statement on PostgreSQL, one per table elsewhere. ``alone``: these
        rows are all the session's unit of work writes, so on PostgreSQL their one statement may be
        a transaction of its own (shared.direct)."""
        parts, self.parts = self.parts, []
        if not parts:
            return
        dialect = session.get_bind().dialect
        if dialect.name == "sqlite" and await _write_in_sqlite_thread(session, parts, dialect):
            return
        if dialect.name != "postgresql" or len(parts) == 1:
            for table, rows in parts:
                await session.execute(insert(table), rows)
            return
        statement, params = postgresql_statement(parts, dialect)
        native = _NATIVE[statement]  # the same statement with asyncpg's $1, $2 …
        if await direct.execute(session, native, [params[f"w{i}"] for i in range(len(parts))], alone=alone):
            return
        await session.execute(statement, params)


def postgresql_statement(
    parts: Sequence[tuple[Table, Sequence[dict[str, Any]]]], dialect: Dialect
) -> tuple[TextClause, dict[str, str]]:
    """The one statement that inserts every table's rows on PostgreSQL, and its parameters (each
    table's rows as JSON: ``w0``, ``w1`` …)."""
    shape = tuple((table, _columns_of(table, rows)) for table, rows in parts)
    statement = _statement(shape, dialect)
    serialize = getattr(dialect, "_json_serializer", None) or json.dumps  # what SQLAlchemy binds JSON with
    try:
        params = {
            f"w{i}": jsoncodec.dumps(
                _encoded(table, columns, list(rows), dialect, serialize), default=json_default, ensure_ascii=True
            ).decode()
            for i, ((table, columns), (_table, rows)) in enumerate(zip(shape, parts, strict=True))
        }
    except (TypeError, ValueError) as exc:  # a value no column takes: as SQLAlchemy's binding says it
        raise StatementError(str(exc), str(statement), None, exc) from exc
    return statement, params


async def insert_rows(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows (every row the same keys: column keys) now, or with the block's others when a
    :func:`deferred_inserts` block is open on the session."""
    if not rows:
        return
    batch: InsertBatch | None = session.info.get(_BATCH)
    if batch is not None:
        batch.add(table, rows)
    else:
        _columns_of(table, rows)
        await session.execute(insert(table), list(rows))


@asynccontextmanager
async def deferred_inserts(session: AsyncSession, *, alone: bool = False) -> AsyncIterator[InsertBatch]:
    """Collect the rows :func:`insert_rows` is given inside the block and write them together when
    it ends without an error (nothing is written when it raises). A block opened inside another
    adds to the outer one's batch. ``alone``: the block's rows are the only ones the session's unit
    of work writes (:meth:`InsertBatch.write`); a block inside it is part of it."""
    outer: InsertBatch | None = session.info.get(_BATCH)
    if outer is not None:
        yield outer
        return
    batch = session.info[_BATCH] = InsertBatch()
    try:
        yield batch
    finally:
        session.info.pop(_BATCH, None)
    await batch.write(session, alone=alone)


async def _write_in_sqlite_thread(
    session: AsyncSession, parts: Sequence[tuple[Table, list[dict[str, Any]]]], dialect: Dialect
) -> bool:
    """Every part's rows by one call of the aiosqlite connection's thread; False (nothing written)
    when the connection is not aiosqlite's, or when the engine has cursor listeners (they are owed
    SQLAlchemy's own execution: its context, its error events), so the rows go through SQLAlchemy."""
    if session.sync_session.autoflush:
        await session.flush()  # what the session holds first, as an execute through it does
    connection = await session.connection()
    sync = connection.sync_connection
    assert sync is not None
    if sync.dispatch.before_cursor_execute or sync.dispatch.after_cursor_execute or dialect.dispatch.handle_error:
        return False
    driver = (await connection.get_raw_connection()).driver_connection
    run_in_thread = getattr(driver, "_execute", None)
    if run_in_thread is None:
        return False
    statements = [_sqlite_insert(table, rows, dialect) for table, rows in parts]
    writers = getattr(session.sync_session, "sqlite_writers", None)
    if writers is not None:  # the database's turn to write, as an execute through the session takes it
        await session.run_sync(writers.acquire)
    failed: list[int] = []
    try:
        await run_in_thread(_executemany, driver, statements, failed)
    except (sqlite3.Error, ValueError) as exc:  # ValueError: aiosqlite's "Connection closed"
        sql, params = statements[failed[0] if failed else 0]
        original = exc if isinstance(exc, sqlite3.Error) else sqlite3.OperationalError(str(exc))
        raise DBAPIError.instance(
            sql,
            params,
            original,
            sqlite3.Error,
            hide_parameters=sync.engine.hide_parameters,
            dialect=dialect,
            ismulti=True,
        ) from exc
    return True


def _executemany(driver: Any, statements: list[tuple[str, list[tuple[Any, ...]]]], failed: list[int]) -> None:
    """In the aiosqlite connection's thread: each statement with its rows (the sqlite3 module
    begins the transaction at the first, as it does for SQLAlchemy's own)."""
    cursor = driver._conn.cursor()
    try:
        for number, (sql, params) in enumerate(statements):
            failed[:] = [number]
            cursor.executemany(sql, params)
        failed.clear()
    finally:
        cursor.close()


def _sqlite_insert(table: Table, rows: list[dict[str, Any]], dialect: Dialect) -> tuple[str, list[tuple[Any, ...]]]:
    """SQLAlchemy's ``INSERT`` of these columns compiled for SQLite, and the rows as its positional
    parameters, each value through its column type's bind step (a ``TypeDecorator``'s, JSON's)."""
    columns = _columns_of(table, rows)
    # per dialect (its JSON serializer, its types' bind steps) and per Table object (two tables of
    # one name in two MetaData are two statements), kept as long as the dialect's engine lives
    cache: dict[tuple[Table, tuple[str, ...]], _Compiled] = dialect.__dict__.setdefault("lienthong_inserts", {})
    compiled = cache.get((table, columns))
    if compiled is None:
        statement = insert(table).compile(dialect=dialect, column_keys=list(columns))
        binds: list[tuple[str, Callable[[Any], Any] | None]] = [
            (name, table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in statement.positiontup or ()
        ]
        compiled = cache[(table, columns)] = (statement.string, binds)
    sql, order = compiled
    try:
        params = [tuple(row[name] if bind is None else bind(row[name]) for name, bind in order) for row in rows]
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise StatementError(str(exc), sql, None, exc) from exc
    return sql, params


_Compiled = tuple[str, list[tuple[str, Callable[[Any], Any] | None]]]


def _with_defaults(table: Table, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with the Python-side defaults of the columns they leave out, as an ``INSERT``
    through SQLAlchemy fills them (a server default is the database's to fill)."""
    missing = [
        (column.key, column.default)
        for column in table.columns
        if column.key not in rows[0] and column.default is not None and not column.default.is_sequence
    ]
    if not missing:
        return list(rows)
    completed = []
    for row in rows:
        row = dict(row)
        for key, default in missing:
            row[key] = default.arg if default.is_scalar else default.arg(None)  # type: ignore[attr-defined]
        completed.append(row)
    return completed


def _columns_of(table: Table, rows: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    keys = tuple(rows[0])
    for row in rows[1:]:
        if len(row) != len(keys) or any(key not in row for key in keys):
            raise ValueError(f"rows for {table.name} differ in their keys: {sorted(keys)} and {sorted(row)}")
    return keys


_STATEMENTS: dict[tuple[tuple[str, tuple[str, ...]], ...], TextClause] = {}


_NATIVE: dict[TextClause, str] = {}  # each statement as asyncpg takes it: $1 for :w0, $2 for :w1 …


def _statement(shape: tuple[tuple[Table, tuple[str, ...]], ...], dialect: Dialect) -> TextClause:
    key = tuple((table.fullname, columns) for table, columns in shape)
    statement = _STATEMENTS.get(key)
    if statement is None:

        def sql(placeholder: Callable[[int], str]) -> str:
            inserts = [_insert_sql(table, columns, placeholder(i), dialect) for i, (table, columns) in enumerate(shape)]
            ctes = ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(inserts[:-1]))
            return f"WITH {ctes} {inserts[-1]}"

        statement = text(sql(lambda i: f":w{i}"))
        _NATIVE[statement] = sql(lambda i: f"${i + 1}")
        _STATEMENTS[key] = statement
    return statement


def _insert_sql(table: Table, columns: tuple[str, ...], param: str, dialect: Dialect) -> str:
    quote = dialect.identifier_preparer.quote
    names, selected, declared = [], [], []
    for key in columns:
        column = table.c[key]
        name = quote(column.name)
        names.append(name)
        if _is_json(column.type):  # its serialized text, cast back: None stays JSON null
            declared.append(f"{name} TEXT")
            selected.append(f"CAST(r.{name} AS {column.type.compile(dialect=dialect)})")
        else:
            declared.append(f"{name} {column.type.compile(dialect=dialect)}")
            selected.append(f"r.{name}")
    return (
        f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({', '.join(names)}) "
        f"SELECT {', '.join(selected)} FROM json_to_recordset(CAST({param} AS JSON)) AS r({', '.join(declared)})"
    )


def _is_json(type_: Any) -> bool:
    impl = type_.impl_instance if isinstance(type_, TypeDecorator) else type_
    return isinstance(impl, JSON)


def _encoded(
    table: Table,
    columns: tuple[str, ...],
    rows: list[dict[str, Any]],
    dialect: Dialect,
    serialize: Callable[[Any], str],
) -> list[dict[str, Any]]:
    """The rows as ``json_to_recordset`` reads them: only the columns whose binding converts (JSON,
    a ``TypeDecorator``) are touched here; ids, dates and times become text in ``json.dumps``."""
    key = (table.fullname, columns, dialect.name)
    converting = _CONVERTING.get(key)
    if converting is None:
        converting = _CONVERTING[key] = [
            (name, convert)
            for name in columns
            if (convert := _converter(table.c[name].type, dialect, serialize)) is not None
        ]
    if not converting:
        return rows
    return [row | {name: convert(row[name]) for name, convert in converting} for row in rows]


_CONVERTING: dict[tuple[str, tuple[str, ...], str], list[tuple[str, Callable[[Any], Any]]]] = {}


def _converter(type_: Any, dialect: Dialect, serialize: Callable[[Any], str]) -> Callable[[Any], Any] | None:
    if _is_json(type_):
        return serialize  # None too: JSON null, as SQLAlchemy binds it
    if isinstance(type_, TypeDecorator):
        bind = type_.process_bind_param
        return lambda value: None if value is None else bind(value, dialect)
    return None


def json_default(value: Any) -> Any:
    """A bound value JSON has no type for, as text PostgreSQL parses back into the column's type."""
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return f"{value.total_seconds()} seconds"
    raise TypeError(f"{type(value).__name__} is not a value a column takes")
