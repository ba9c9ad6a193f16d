"""A hot path's statements handed straight to the asyncpg connection a session holds (PostgreSQL).

SQLAlchemy's execution of a statement — the ORM session's execute, the compiled cache's look-up,
the parameters' processing, the result's construction, and the ``BEGIN`` and ``COMMIT`` round
trips of the transaction it opens — costs the exchange more than the statement itself does
(docs/performance.md, "The twelfth session"). A send has two statements, its look-up and its rows'
one statement (shared.bulk); they go to the session's own asyncpg connection as SQL compiled once,
with positional parameters:

- when the connection is in a transaction (SQLAlchemy sent ``BEGIN`` for an earlier statement of the
  session), the statement runs in it: it commits or rolls back with the others;
- otherwise it is a transaction of its own, with no ``BEGIN`` or ``COMMIT`` sent: a read (its
  own snapshot, as every statement under ``READ COMMITTED``), or a write the caller declares the
  unit's only one (``alone``: one statement commits all its rows or none). A write that is not
  goes through SQLAlchemy, which begins the transaction.

Nothing here runs when the session has changes of its ORM objects to flush (they would be written
after the statement, not before, as SQLAlchemy's autoflush writes them), on another driver than
asyncpg, or when the engine has cursor listeners (tracing, the tests' statement watchers: they are
owed every statement); the caller's statement goes through SQLAlchemy then. Errors are
SQLAlchemy's, as its own execution raises them (``IntegrityError`` for a unique violation, the
driver's error and its SQLSTATE as their cause); a connection that broke is invalidated with the
pool's older ones, as SQLAlchemy does. A statement interrupted by the task's cancellation is
cancelled on the server too: asyncpg sends the cancel request. What a statement alone gives up
against a transaction: a transaction that the client abandons (cancelled, crashed, its connection
lost) before its ``COMMIT`` commits nothing, while a statement alone that the server finishes
before the cancel request arrives commits — and if the process dies, the server, which does not
watch the socket of a statement waiting for a lock, finishes it when it gets the lock. A send in
that window was never answered ``202``: retried with its ``Idempotency-Key`` it gets the
document's answer; without one, its number is taken (``409 document_duplicate``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

_COMPILED = "lienthong_direct"  # a dialect's cache of the statements compiled for it


def _usable(session: AsyncSession) -> bool:
    bind = session.get_bind()
    dialect = bind.dialect
    if dialect.driver != "asyncpg":
        return False
    if bind.dispatch.before_cursor_execute or bind.dispatch.after_cursor_execute or dialect.dispatch.handle_error:
        return False
    sync = session.sync_session
    return not (sync.new or sync.dirty or sync.deleted)


def _compiled(statement: ClauseElement, dialect: Dialect) -> tuple[str, tuple[str, ...], dict[str, Any]] | None:
    """The statement's SQL for asyncpg (``$1`` …), its parameters' names in order and the values it
    binds itself (literals); None when a parameter has a bind step of its type (SQLAlchemy's to run)."""
    cache: dict[int, tuple[ClauseElement, tuple[str, tuple[str, ...], dict[str, Any]] | None]]
    cache = dialect.__dict__.setdefault(_COMPILED, {})
    found = cache.get(id(statement))
    if found is not None and found[0] is statement:
        return found[1]
    compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
    processors = getattr(compiled, "_bind_processors", None)
    order = tuple(compiled.positiontup or ())
    literals = {name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required}
    plan = None if processors else (compiled.string, order, literals)
    cache[id(statement)] = (statement, plan)  # the statement kept: its id is not reused while cached
    return plan


async def fetch(session: AsyncSession, statement: ClauseElement, values: Mapping[str, Any]) -> list[Any] | None:
    """Run a read (a Core statement, module-level: compiled once per dialect) on the session's
    asyncpg connection; its rows (asyncpg records), or None when it must go through SQLAlchemy."""
    if not _usable(session):
        return None
    dialect = session.get_bind().dialect
    plan = _compiled(statement, dialect)
    if plan is None:
        return None
    sql, order, literals = plan
    params = {**literals, **values}
    args = [params[name] for name in order]
    connection = await session.connection()
    driver = await _driver(connection)
    rows: list[Any] = await _run(connection, driver.fetch, sql, args)
    return rows


async def execute(session: AsyncSession, sql: str, args: Sequence[Any], *, alone: bool) -> bool:
    """Run a write (asyncpg's SQL, positional parameters) on the session's asyncpg connection:
    in its transaction, or as its own when ``alone``. False (nothing run) when it must go through
    SQLAlchemy: not usable here, or neither in a transaction nor alone."""
    if not _usable(session):
        return False
    connection = await session.connection()
    driver = await _driver(connection)
    if not alone and not driver.is_in_transaction():
        return False
    await _run(connection, driver.execute, sql, args)
    return True


async def _run(connection: AsyncConnection, call: Callable[..., Awaitable[Any]], sql: str, args: Sequence[Any]) -> Any:
    """``call(sql, *args)`` on the driver, its errors made SQLAlchemy's. Interrupted (the task
    cancelled), asyncpg sends PostgreSQL a cancel request for the statement and waits for it before
    the connection's next command: the connection is left to it, not closed, since closing it would
    withdraw that request and a statement alone waiting for a lock would commit once it got it."""
    try:
        return await call(sql, *args)
    except Exception as exc:
        raise await _translated(connection, exc, sql, args) from exc


async def _driver(connection: AsyncConnection) -> Any:
    """The asyncpg connection under SQLAlchemy's: read straight from the connection while it holds
    one (no I/O: ``get_raw_connection`` would start a greenlet to read the same attribute), else
    through SQLAlchemy, which connects again an invalidated one."""
    sync = connection.sync_connection
    if sync is not None and not sync.closed and not sync.invalidated:
        raw = sync.connection
    else:
        raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    return driver


async def _translated(connection: AsyncConnection, exc: Exception, sql: str, args: Sequence[Any]) -> Exception:
    """The error SQLAlchemy raises for the driver's ``exc``; a connection that broke invalidated."""
    raw = await connection.get_raw_connection()
    adapter: Any = raw.dbapi_connection
    dialect = connection.dialect
    try:
        adapter._handle_exception(exc)  # raises the DBAPI error SQLAlchemy's asyncpg adapter makes of it
    except Exception as error:  # the translation, raised by design
        translated = error
    else:  # pragma: no cover — it always raises
        translated = exc
    invalidated = dialect.is_disconnect(translated, adapter, None)  # type: ignore[arg-type]
    if invalidated:
        # as SQLAlchemy's own execution does: the pool's other connections, opened before, are
        # replaced when next checked out (a restarted database fails one request, not one a connection)
        connection.sync_engine.pool._invalidate(raw, translated, _checkin=False)
        await connection.invalidate(translated)
    return DBAPIError.instance(
        sql,
        list(args),
        translated,
        dialect.loaded_dbapi.Error,
        hide_parameters=connection.sync_engine.hide_parameters,
        dialect=dialect,
        connection_invalidated=invalidated,
    )
