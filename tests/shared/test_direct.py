"""``shared.direct``: a hot path's statements straight to the session's asyncpg connection — in the
session's transaction when one is open, else a transaction of their own (a read, or a write the
caller says is alone) — with SQLAlchemy's errors, and SQLAlchemy's own execution wherever it is owed
(SQLite, cursor listeners, ORM changes to flush)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, event, literal, select, union_all
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import registry

from shared import direct
from shared.bulk import deferred_inserts, insert_rows
from shared.db import Database
from tests.conftest import PG_ADMIN_DSN, scratch_tables

metadata = MetaData()
ITEM = Table(
    "direct_item",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(20), nullable=False, unique=True),
    Column("owner", String(20), nullable=False),
)
NOTE = Table("direct_note", metadata, Column("id", Integer, primary_key=True), Column("text", String(50)))
# a look-up shaped as the send's: literals bound as parameters, one parameter used twice
LOOKUP = union_all(
    select(ITEM.c.id, literal("by code").label("why")).where(
        ITEM.c.owner == bindparam("owner"), ITEM.c.code == bindparam("code")
    ),
    select(ITEM.c.id, literal("by id").label("why")).where(
        ITEM.c.owner == bindparam("owner"), ITEM.c.id == bindparam("id")
    ),
)
INSERT_ITEM = "INSERT INTO direct_item (id, code, owner) VALUES ($1, $2, $3)"


class ItemRow:
    pass


registry().map_imperatively(ItemRow, ITEM)


@pytest.fixture(scope="module")
async def pg() -> AsyncIterator[Database]:
    async with scratch_tables("_direct", metadata) as database:
        yield database


@pytest.fixture
async def db(pg: Database) -> AsyncIterator[Database]:
    async with pg.session() as session:
        for table in (ITEM, NOTE):
            await session.execute(table.delete())
    yield pg


class Sent:
    """The simple queries (BEGIN, COMMIT …) and the direct statements asyncpg is sent on the
    connections checked out meanwhile (its query loggers; SQLAlchemy's prepared statements are not
    logged)."""

    def __init__(self, db: Database) -> None:
        self.engine = db.engine.sync_engine
        self.queries: list[str] = []
        self.drivers: list[Any] = []

    def log(self, record: Any) -> None:
        self.queries.append(record.query.split()[0].rstrip(";").upper())

    def on_checkout(self, _dbapi: Any, _record: Any, proxy: Any) -> None:
        proxy.driver_connection.add_query_logger(self.log)
        self.drivers.append(proxy.driver_connection)

    def __enter__(self) -> Sent:
        event.listen(self.engine, "checkout", self.on_checkout)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "checkout", self.on_checkout)
        for driver in self.drivers:
            driver.remove_query_logger(self.log)


async def ids(db: Database, table: Table = ITEM) -> list[int]:
    async with db.session() as session:
        return list((await session.execute(select(table.c.id).order_by(table.c.id))).scalars())


async def test_a_read_gives_the_rows_sqlalchemy_gives_without_a_transaction(db: Database) -> None:
    async with db.session() as session:
        await session.execute(
            ITEM.insert(), [{"id": 1, "code": "A", "owner": "x"}, {"id": 2, "code": "B", "owner": "x"}]
        )
    values = {"owner": "x", "code": "A", "id": 2}
    with Sent(db) as sent:
        async with db.session() as session:
            rows = await direct.fetch(session, LOOKUP, values)
        await asyncio.sleep(0.05)  # asyncpg calls its loggers soon after a query
    async with db.session() as session:
        expected = (await session.execute(LOOKUP, values)).all()
    assert rows is not None
    assert sorted(tuple(r) for r in rows) == sorted(tuple(r) for r in expected) == [(1, "by code"), (2, "by id")]
    assert sent.queries == ["SELECT"]  # no BEGIN, no COMMIT around it


async def test_a_write_alone_commits_by_itself_one_not_alone_waits_for_a_transaction(db: Database) -> None:
    async with db.session() as session:
        with Sent(db) as sent:
            assert await direct.execute(session, INSERT_ITEM, [1, "A", "x"], alone=True)
            await asyncio.sleep(0.05)
        assert sent.queries == ["INSERT"], sent.queries  # no BEGIN before it
        assert await ids(db) == [1]  # committed when the statement ended, seen from another session
        await session.rollback()  # nothing left to undo
    assert await ids(db) == [1]

    async with db.session() as session:  # not alone, no transaction open: SQLAlchemy's to run
        assert not await direct.execute(session, INSERT_ITEM, [2, "B", "x"], alone=False)
    assert await ids(db) == [1]


async def test_inside_the_sessions_transaction_a_write_commits_or_rolls_back_with_it(db: Database) -> None:
    class Undo(Exception):
        pass

    with pytest.raises(Undo):
        async with db.session() as session:
            await session.execute(NOTE.insert().values(id=1, text="trước"))  # SQLAlchemy sends BEGIN
            assert await direct.execute(session, INSERT_ITEM, [1, "A", "x"], alone=False)
            raise Undo
    assert await ids(db) == [] and await ids(db, NOTE) == []

    async with db.session() as session:
        await session.execute(NOTE.insert().values(id=2, text="trước"))
        assert await direct.execute(session, INSERT_ITEM, [2, "B", "x"], alone=True)  # alone or not: joins it
    assert await ids(db) == [2] and await ids(db, NOTE) == [2]


async def test_sqlalchemy_runs_what_it_is_owed(db: Database, tmp_path: Any) -> None:
    """Cursor listeners (tracing) hear every statement, and ORM changes waiting for a flush go first:
    the caller is told to go through SQLAlchemy. SQLite is SQLAlchemy's."""
    heard: list[str] = []

    def listener(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        heard.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", listener)
    try:
        async with db.session() as session:
            assert await direct.fetch(session, LOOKUP, {"owner": "x", "code": "A", "id": 1}) is None
            assert not await direct.execute(session, INSERT_ITEM, [1, "A", "x"], alone=True)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", listener)

    async with db.session() as session:
        pending = ItemRow()
        pending.id, pending.code, pending.owner = 5, "E", "x"  # type: ignore[attr-defined]
        session.add(pending)
        assert await direct.fetch(session, LOOKUP, {"owner": "x", "code": "E", "id": 5}) is None
        assert not await direct.execute(session, INSERT_ITEM, [6, "F", "x"], alone=True)
    assert await ids(db) == [5]

    lite = Database(f"sqlite+aiosqlite:///{tmp_path / 'direct.db'}", "direct")
    try:
        async with lite.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        async with lite.session() as session:
            assert await direct.fetch(session, LOOKUP, {"owner": "x", "code": "A", "id": 1}) is None
            assert not await direct.execute(session, INSERT_ITEM, [1, "A", "x"], alone=True)
    finally:
        await lite.dispose()


async def test_errors_are_sqlalchemys_and_a_broken_connection_is_thrown_away(db: Database) -> None:
    async with db.session() as session:
        assert await direct.execute(session, INSERT_ITEM, [1, "A", "x"], alone=True)
    with pytest.raises(IntegrityError) as refused:
        async with db.session() as session:
            await direct.execute(session, INSERT_ITEM, [2, "A", "x"], alone=True)  # the unique code again
    cause: BaseException | None = refused.value.orig
    while cause is not None and not isinstance(cause, asyncpg.PostgresError):
        cause = cause.__cause__
    assert isinstance(cause, asyncpg.UniqueViolationError) and cause.sqlstate == "23505"
    assert not refused.value.connection_invalidated

    async with db.session() as session:  # the connection killed under the session
        await session.connection()
        pid = (await (await session.connection()).get_raw_connection()).driver_connection.get_server_pid()  # type: ignore[union-attr]
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        with pytest.raises(DBAPIError) as lost:
            await direct.execute(session, INSERT_ITEM, [3, "C", "x"], alone=True)
        assert lost.value.connection_invalidated
        await session.rollback()
    async with db.session() as session:  # a new connection: the dead one is not handed out again
        assert await direct.execute(session, INSERT_ITEM, [4, "D", "x"], alone=True)
    assert await ids(db) == [1, 4]


async def test_a_batch_alone_is_one_statement_with_no_begin_and_its_rows_all_or_none(db: Database) -> None:
    with Sent(db) as sent:
        async with db.session() as session, deferred_inserts(session, alone=True):
            await insert_rows(session, ITEM, [{"id": 1, "code": "A", "owner": "x"}])
            await insert_rows(session, NOTE, [{"id": 1, "text": "một"}, {"id": 2, "text": "hai"}])
        await asyncio.sleep(0.05)
    assert sent.queries == ["WITH"], sent.queries  # the one statement, straight, nothing around it
    assert await ids(db) == [1] and await ids(db, NOTE) == [1, 2]

    with pytest.raises(IntegrityError):
        async with db.session() as session, deferred_inserts(session, alone=True):
            await insert_rows(session, NOTE, [{"id": 3, "text": "ba"}])
            await insert_rows(session, ITEM, [{"id": 2, "code": "A", "owner": "x"}])  # the code taken
    assert await ids(db) == [1] and await ids(db, NOTE) == [1, 2]  # the statement undone whole


async def _server_pid(session: Any) -> int:
    driver = (await (await session.connection()).get_raw_connection()).driver_connection
    pid: int = driver.get_server_pid()
    return pid


async def _terminate(pids: list[int]) -> None:
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        for pid in pids:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    await asyncio.sleep(0.2)


async def _backends(db: Database) -> list[int]:
    """The server pids of every connection to the test's database but this one's own admin."""
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        rows = await admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", db.engine.url.database
        )
    finally:
        await admin.close()
    return [row["pid"] for row in rows]


async def _state(pid: int) -> tuple[str | None, str | None]:
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        row = await admin.fetchrow("SELECT state, wait_event_type FROM pg_stat_activity WHERE pid = $1", pid)
    finally:
        await admin.close()
    return (row["state"], row["wait_event_type"]) if row else (None, None)


async def test_after_the_database_restarts_one_request_fails_not_one_per_pooled_connection(db: Database) -> None:
    """As SQLAlchemy's own execution: the first lost connection marks the pool's older ones stale."""
    sessions = [db.sessionmaker() for _ in range(3)]
    for session in sessions:  # three connections at once …
        await _server_pid(session)
    for session in sessions:
        await session.close()  # … back in the pool, with whatever the earlier tests left there
    pids = await _backends(db)
    assert len(pids) >= 3
    await _terminate(pids)  # every connection of the pool killed: the database restarted
    failures = 0
    for _ in range(4):
        try:
            async with db.session() as session:
                assert await direct.fetch(session, LOOKUP, {"owner": "x", "code": "A", "id": 1}) is not None
        except DBAPIError as lost:
            assert lost.connection_invalidated
            failures += 1
    assert failures == 1


async def test_a_statement_alone_cancelled_while_it_waits_is_cancelled_on_the_server_too(db: Database) -> None:
    """The task cancelled while its write alone waits for another transaction's row of the same code:
    asyncpg's cancel request stops the statement on the server, so it does not commit when that
    transaction ends; the connection serves the next session."""
    blocker = await asyncpg.connect(db.url.replace("postgresql+asyncpg", "postgresql"))
    holding = blocker.transaction()
    await holding.start()
    await blocker.execute("INSERT INTO direct_item (id, code, owner) VALUES (1, 'A', 'x')")
    used: list[int] = []

    async def send() -> None:
        async with db.session() as session:
            used.append(await _server_pid(session))
            await direct.execute(session, INSERT_ITEM, [2, "A", "x"], alone=True)

    task = asyncio.create_task(send())
    try:
        for _ in range(200):  # until the statement waits for the lock (a loaded machine is slow)
            if used and (await _state(used[0]))[1] == "Lock":
                break
            await asyncio.sleep(0.05)
        assert used and (await _state(used[0]))[1] == "Lock"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(200):  # the cancel request reached the server: the statement is over
            if (await _state(used[0]))[0] != "active":
                break
            await asyncio.sleep(0.05)
    finally:
        await holding.rollback()  # the row of code A gone: a statement still waiting would commit now
        await blocker.close()
    await asyncio.sleep(0.3)
    assert await ids(db) == []
    async with db.session() as session:  # the pool's connections still serve
        assert await direct.execute(session, INSERT_ITEM, [3, "C", "x"], alone=True)
    assert await ids(db) == [3]
