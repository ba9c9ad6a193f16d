"""Async SQLAlchemy 2 engines and request-scoped sessions for PostgreSQL (asyncpg) and SQLite (aiosqlite).

Each service owns its data: on PostgreSQL a schema of its own (selected through ``search_path``, so
the same table definitions and migrations run unchanged on SQLite), in embedded mode a SQLite file
of its own under ``var/``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import uuid6
from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, event, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import await_only

from shared import jsoncodec
from shared.sqlite import use_one_call_cursors

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    """Return a MetaData with the project's constraint naming convention (stable migration names)."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def new_id() -> uuid.UUID:
    """Return a time-ordered UUID (version 7)."""
    return uuid.UUID(
        int=uuid6.uuid7().int
    )  # a plain UUID (not the library's subclass), without a round trip through text


def utcnow() -> dt.datetime:
    """Return the current time, timezone-aware in UTC."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always returned timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use shared.db.utcnow()")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


SQLITE_SYNCHRONOUS = ("FULL", "EXTRA", "NORMAL")
"""SQLite's ``synchronous`` levels a service may run with (``LIENTHONG_SQLITE_SYNCHRONOUS``)."""


DEFAULT_POOL_SIZE = 20
DEFAULT_MAX_OVERFLOW = 10


def create_engine(
    url: str, schema: str | None = None, *, sqlite_synchronous: str = "FULL", **kwargs: Any
) -> AsyncEngine:
    """Create an async engine; on PostgreSQL every connection works inside ``schema``.

    SQLite runs in WAL mode with ``sqlite_synchronous`` FULL unless told otherwise: a commit has
    synced the log when it returns, so a row answered for survives a power loss (NORMAL keeps it
    through a crash of the process only)."""
    if sqlite_synchronous not in SQLITE_SYNCHRONOUS:
        raise ValueError(f"SQLite synchronous must be one of {', '.join(SQLITE_SYNCHRONOUS)}")
    kwargs.setdefault("json_serializer", column_json)
    if is_sqlite(url):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            use_one_call_cursors(dbapi_connection)  # a statement is one call of aiosqlite's thread
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cursor.close()

        return engine
    connect_args: dict[str, Any] = {}
    if schema:
        # pg_stat_activity names the service each connection is for
        connect_args["server_settings"] = {"search_path": schema, "application_name": f"lienthong-{schema}"}
    if "poolclass" not in kwargs:
        # the pool keeps pool_size connections once opened; the overflow is closed as soon as it is
        # returned to a full pool: a pool smaller than the process's concurrent transactions opens
        # and closes connections under load (a PostgreSQL backend and its TLS handshake each)
        kwargs.setdefault("pool_size", DEFAULT_POOL_SIZE)
        kwargs.setdefault("max_overflow", DEFAULT_MAX_OVERFLOW)
    # No pre-ping (a round trip per checkout): connections are recycled, and a dead one fails one request.
    kwargs.setdefault("pool_recycle", 1800)
    return create_async_engine(url, connect_args=connect_args, **kwargs)


def column_json(value: Any) -> str:
    """The text a JSON column stores, on both databases and on every path (the unit of work, Core,
    ``shared.bulk``): compact JSON from orjson (``shared.jsoncodec``; a send's rows have a dozen JSON
    values, each 10 – 30 µs with ``json.dumps``). Read back, the values are those the standard
    library's text gave; what orjson refuses is written by the standard library with its ASCII
    escapes, as SQLAlchemy's default serializer writes it (a lone surrogate stays a valid escape). A
    float NaN or infinity is written ``null`` (PostgreSQL's ``json`` refused the standard library's ``NaN``)."""
    return jsoncodec.dumps(value, ensure_ascii=True).decode()


async def ensure_schema(url: str, schema: str) -> None:
    """Create the service's PostgreSQL schema when missing (no-op on SQLite).

    Under a transaction's advisory lock on the schema's name: two processes starting together (a
    service's workers, its replicas) would otherwise both try to create it, and ``IF NOT EXISTS``
    does not hold under concurrency (the second fails with a unique violation of
    ``pg_namespace``, and that process with it). With the lock, the second waits for the first's
    commit and finds the schema there."""
    if is_sqlite(url):
        return
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": f"schema:{schema}"})
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    finally:
        await engine.dispose()


class SQLiteWriters:
    """One writing transaction at a time per SQLite database, the others waiting their turn in order.

    SQLite lets one transaction write at a time; left to itself, a second writer is refused and
    retries in a loop of sleeps (``busy_timeout``), so under load writers wait far longer than the
    writes take. Here a session takes this queue's lock at its first write (a flush, or an INSERT,
    UPDATE or DELETE it executes) and gives it back when its transaction ends; reading sessions
    never wait (WAL). A nested session of the task that holds the lock does not queue behind it."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self.queued = 0  # sessions waiting for their turn to write

    def install(self, session_class: type[Session]) -> None:
        """Make every session of ``session_class`` queue for the lock at its first write (the
        listeners are set once on the class: per session they would cost more than the queue saves).
        A write that goes around the session's execution (shared.bulk on SQLite) takes its turn with
        ``session.run_sync(session.sync_session.sqlite_writers.acquire)``."""

        def on_execute(state: ORMExecuteState) -> None:
            if state.is_insert or state.is_update or state.is_delete:
                self.acquire(state.session)

        session_class.sqlite_writers = self  # type: ignore[attr-defined]
        event.listen(session_class, "do_orm_execute", on_execute)
        event.listen(session_class, "before_flush", lambda sync, *_args: self.acquire(sync))
        event.listen(session_class, "after_commit", self.release)
        event.listen(session_class, "after_rollback", self.release)

    def acquire(self, sync: Session) -> None:
        """Wait for the session's turn to write, unless it has it (called inside SQLAlchemy's
        greenlet: a listener, or ``run_sync``)."""
        if sync.info.get(_HOLDS_WRITER):
            return
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            return
        # the connection first, then the turn: a session that waited for the pool while holding
        # the turn would deadlock with sessions that hold connections and wait for the turn
        sync.connection()
        self.queued += 1
        try:
            await_only(self._lock.acquire())
        finally:
            self.queued -= 1
        self._owner = task
        sync.info[_HOLDS_WRITER] = True

    def release(self, sync: Session) -> None:
        """Give the lock back if the session holds it (its transaction ended)."""
        if sync.info.pop(_HOLDS_WRITER, None):
            self._owner = None
            self._lock.release()


_HOLDS_WRITER = "sqlite_writer"


class Database:
    """One service's engine and session factory, owned by the service's lifespan."""

    def __init__(
        self,
        url: str,
        schema: str,
        *,
        sqlite_synchronous: str = "FULL",
        pool_size: int = DEFAULT_POOL_SIZE,
        max_overflow: int = DEFAULT_MAX_OVERFLOW,
    ) -> None:
        self.url = url
        self.schema = schema
        pool = {} if is_sqlite(url) else {"pool_size": pool_size, "max_overflow": max_overflow}
        self.engine = create_engine(url, schema, sqlite_synchronous=sqlite_synchronous, **pool)
        self.writers = SQLiteWriters() if is_sqlite(url) else None
        # this database's own session class: listeners set on it once (the SQLite writers' queue,
        # the outbox relay's wake-up) hear this database's sessions only
        self.session_class: type[Session] = type("ServiceSession", (Session,), {})
        session_class = self.session_class
        if self.writers is not None:
            self.writers.install(session_class)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, sync_session_class=session_class)
        # one-statement reads on PostgreSQL: no BEGIN and COMMIT round trips around the SELECT (the
        # statement is its own snapshot); SQLite's BEGIN costs no round trip, its sessions serve
        self.readmaker = (
            self.sessionmaker
            if self.is_sqlite
            else async_sessionmaker(
                self.engine.execution_options(isolation_level="AUTOCOMMIT"),
                expire_on_commit=False,
                sync_session_class=session_class,
            )
        )

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.url)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """Open a unit of work: commit when the block succeeds, roll back when it raises."""
        async with self.sessionmaker() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
            finally:
                if self.writers is not None:
                    self.writers.release(session.sync_session)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """Open a session for a read of one statement (a long-poll's page): nothing it does is
        committed, and on PostgreSQL it runs outside a transaction. Two statements in it may see two
        different snapshots: use :meth:`session` for a read that must be consistent across queries."""
        async with self.readmaker() as session:
            try:
                yield session
            finally:
                await session.close()  # the connection back to the pool; the rows read stay loaded
                if self.writers is not None:
                    self.writers.release(session.sync_session)

    async def ping(self) -> None:
        """Run a trivial query; raises when the database does not answer."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    from shared.runtime import AppRuntime, runtime_of

    async with runtime_of(request, AppRuntime).db.session() as session:
        yield session


# scope="function": the commit happens before the response is sent, so a client never sees a
# success for a transaction that then fails to commit.
SessionDep = Annotated[AsyncSession, Depends(_request_session, scope="function")]
