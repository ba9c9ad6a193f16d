"""``shared.bulk``: rows of several tables written together (one statement on PostgreSQL) are the
rows an ``INSERT`` through SQLAlchemy writes, value for value, or nothing at all."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    event,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import registry

from shared.bulk import deferred_inserts, insert_rows
from shared.db import Database, UTCDateTime, column_json, new_id, utcnow
from tests.conftest import scratch_tables
from tests.helpers import wait_until

metadata = MetaData()
PARENT = Table(
    "bulk_parent",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("code", String(35), nullable=False, unique=True),
    Column("subject", Text),
    Column("issued", Date),
    Column("at", UTCDateTime),
    Column("flag", Boolean),
    Column("count", Integer),
    Column("details", JSON),
)
CHILD = Table(
    "bulk_child",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("parent_id", ForeignKey("bulk_parent.id"), nullable=False),
    Column("note", String(200)),
)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def bulk_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Database]:
    """One database per module and kind (the tables made once); each test starts them empty."""
    if request.param == "sqlite":
        database = Database(f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('bulk') / 'bulk.db'}", "bulk")
        async with database.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        yield database
        await database.dispose()
        return
    async with scratch_tables("_bulk", metadata) as database:
        yield database


@pytest.fixture
async def db(bulk_database: Database) -> AsyncIterator[Database]:
    async with bulk_database.session() as session:
        for table in reversed(metadata.sorted_tables):
            await session.execute(table.delete())
    yield bulk_database


def parent(code: str, **values: Any) -> dict[str, Any]:
    row = {
        "id": new_id(),
        "code": code,
        "subject": 'Về việc tổ chức hội nghị "tổng kết" năm 2026 — đ/ệ/ữ \\ \n tab\t',
        "issued": dt.date(2026, 11, 29),
        "at": dt.datetime(2026, 11, 29, 8, 30, 15, 123456, tzinfo=dt.timezone(dt.timedelta(hours=7))),
        "flag": True,
        "count": 7,
        "details": {"to_places": ["Sở Tư pháp", "UBND huyện"], "n": 1.5, "none": None},
    }
    row.update(values)
    return row


async def rows_of(db: Database, table: Table) -> list[tuple[Any, ...]]:
    async with db.session() as session:
        return [tuple(r) for r in (await session.execute(select(table).order_by(*table.primary_key))).all()]


class Statements:
    """The statements sent to the database while the block runs."""

    def __init__(self, db: Database) -> None:
        self.engine = db.engine.sync_engine
        self.sent: list[str] = []

    def on_execute(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.sent.append(statement)

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self.on_execute)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self.on_execute)


async def test_rows_written_together_are_the_rows_an_insert_writes(db: Database) -> None:
    """Text with quotes, backslashes and Vietnamese, dates, aware datetimes (stored in UTC), JSON with
    a null inside, a JSON column given None (JSON null, as SQLAlchemy binds it), a NULL column."""
    plain = [parent("A-1"), parent("A-2", details=None, at=None, subject=None)]
    together = [parent("B-1"), parent("B-2", details=None, at=None, subject=None)]
    async with db.session() as session:
        await session.execute(insert(PARENT), plain)
    async with db.session() as session, deferred_inserts(session):
        await insert_rows(session, PARENT, together)
        await insert_rows(session, CHILD, [{"parent_id": together[0]["id"], "note": "con"}])
    written = {row[1]: row[2:] for row in await rows_of(db, PARENT)}
    assert written["B-1"] == written["A-1"]
    assert written["B-2"] == written["A-2"]
    assert written["B-1"][2] == dt.datetime(2026, 11, 29, 1, 30, 15, 123456, tzinfo=dt.UTC)
    assert written["B-1"][5] == {"to_places": ["Sở Tư pháp", "UBND huyện"], "n": 1.5, "none": None}
    # None in a JSON column is JSON null, not SQL NULL, both ways
    async with db.session() as session:
        nulls = (await session.execute(select(PARENT.c.code).where(PARENT.c.details.is_(None)))).scalars().all()
    assert nulls == []
    assert [row[1:] for row in await rows_of(db, CHILD)] == [(together[0]["id"], "con")]


async def test_on_postgresql_the_tables_rows_are_one_statement_and_their_foreign_keys_hold(db: Database) -> None:
    first = parent("C-1")
    with Statements(db) as statements:
        async with db.session() as session, deferred_inserts(session):
            await insert_rows(session, PARENT, [first])
            await insert_rows(session, CHILD, [{"parent_id": first["id"], "note": str(i)} for i in range(3)])
            assert await rows_of(db, PARENT) == []  # nothing sent yet
    inserts = [s for s in statements.sent if "INSERT" in s.upper()]
    assert len(inserts) == (1 if not db.is_sqlite else 2), inserts
    assert len(await rows_of(db, CHILD)) == 3

    orphan = parent("C-2")
    with pytest.raises(IntegrityError):  # a child whose parent is not in the statement: refused
        async with db.session() as session, deferred_inserts(session):
            await insert_rows(session, PARENT, [orphan])
            await insert_rows(session, CHILD, [{"parent_id": uuid.uuid4(), "note": "mồ côi"}])
    assert [row[1] for row in await rows_of(db, PARENT)] == ["C-1"]  # the whole statement undone


async def test_a_block_that_raises_writes_nothing_and_a_conflict_writes_nothing(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.session() as session, deferred_inserts(session):
            await insert_rows(session, PARENT, [parent("D-1")])
            raise RuntimeError("changed my mind")
    assert await rows_of(db, PARENT) == []

    async with db.session() as session:
        await session.execute(insert(PARENT), [parent("D-2")])
    with pytest.raises(IntegrityError):
        async with db.session() as session, deferred_inserts(session):
            await insert_rows(session, PARENT, [parent("D-3")])
            await insert_rows(session, PARENT, [parent("D-2")])  # the unique code again
    assert [row[1] for row in await rows_of(db, PARENT)] == ["D-2"]


async def test_a_naive_datetime_is_refused_as_an_insert_refuses_it(db: Database) -> None:
    with pytest.raises(StatementError, match="naive"):
        async with db.session() as session, deferred_inserts(session):
            await insert_rows(session, PARENT, [parent("E-0")])
            await insert_rows(session, CHILD, [])
            await insert_rows(session, PARENT, [parent("E-1", at=dt.datetime(2026, 1, 1))])
    assert await rows_of(db, PARENT) == []


async def test_a_nested_block_adds_to_the_outer_one_and_rows_must_share_their_keys(db: Database) -> None:
    first = parent("F-1")
    async with db.session() as session, deferred_inserts(session) as outer:
        async with deferred_inserts(session) as inner:
            assert inner is outer
            await insert_rows(session, PARENT, [first])
        assert await rows_of(db, PARENT) == []  # the inner block's end wrote nothing
        await insert_rows(session, CHILD, [{"parent_id": first["id"], "note": None}])
    assert [row[1] for row in await rows_of(db, PARENT)] == ["F-1"]

    uneven = [parent("F-2"), {k: v for k, v in parent("F-3").items() if k != "subject"}]
    with pytest.raises(ValueError, match="differ in their keys"):
        async with db.session() as session, deferred_inserts(session):
            await insert_rows(session, PARENT, uneven)
            await insert_rows(session, CHILD, [{"parent_id": first["id"], "note": "x"}])
    assert len(await rows_of(db, PARENT)) == 1


async def test_outside_a_block_rows_are_inserted_at_once(db: Database) -> None:
    async with db.session() as session:
        await insert_rows(session, PARENT, [parent("G-1", at=utcnow())])
        assert [row[1] for row in (await session.execute(select(PARENT))).all()] == ["G-1"]


async def test_a_column_left_out_takes_its_python_default_as_an_insert_gives_it(db: Database) -> None:
    table = Table(
        "bulk_defaults",
        MetaData(),
        Column("id", Uuid, primary_key=True, default=new_id),
        Column("kind", String(10), nullable=False, default="new"),
        Column("note", String(20)),
    )
    async with db.engine.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
    async with db.session() as session, deferred_inserts(session):
        await insert_rows(session, table, [{"note": "một"}, {"note": "hai"}])
        await insert_rows(session, PARENT, [parent("H-1")])
    rows = await rows_of(db, table)
    assert sorted((kind, note) for _id, kind, note in rows) == [("new", "hai"), ("new", "một")]
    assert all(isinstance(row[0], uuid.UUID) for row in rows)


async def test_on_sqlite_the_tables_rows_are_one_call_of_the_connections_thread_in_the_writers_turn(
    db: Database,
) -> None:
    """One hand-over to aiosqlite's thread for both tables (not one per table), taken in the
    database's queue of writers: another session's write waits until this transaction ends."""
    if not db.is_sqlite:
        pytest.skip("SQLite's path (PostgreSQL's is one statement: the test above)")
    assert db.writers is not None
    first = parent("K-1")
    handovers: list[object] = []
    async with db.session() as session:
        driver = (await (await session.connection()).get_raw_connection()).driver_connection
        assert driver is not None
        execute = driver._execute

        async def counted(function: Any, *args: Any, **kwargs: Any) -> Any:
            handovers.append(function)
            return await execute(function, *args, **kwargs)

        driver._execute = counted
        try:
            async with deferred_inserts(session):
                await insert_rows(session, PARENT, [first])
                await insert_rows(session, CHILD, [{"parent_id": first["id"], "note": str(i)} for i in range(3)])
        finally:
            del driver._execute
        assert len(handovers) == 1, handovers

        async def another_write() -> None:
            async with db.session() as other:
                await other.execute(insert(PARENT), [parent("K-2")])

        waiting = asyncio.create_task(another_write())
        await wait_until(lambda: db.writers is not None and db.writers.queued == 1, 5, "the other writer to queue")
        assert not waiting.done()
    await waiting  # this session committed: the other's turn
    assert sorted(row[1] for row in await rows_of(db, PARENT)) == ["K-1", "K-2"]
    assert len(await rows_of(db, CHILD)) == 3


class ParentRow:
    """PARENT mapped, for a test that holds an object in the session before the block."""


registry().map_imperatively(ParentRow, PARENT)


async def test_what_the_session_holds_is_written_before_the_blocks_rows(db: Database) -> None:
    pending = ParentRow()
    for key, value in parent("L-1").items():
        setattr(pending, key, value)
    async with db.session() as session:
        session.add(pending)  # not flushed yet: the child rows' foreign key needs it first
        async with deferred_inserts(session):
            await insert_rows(session, CHILD, [{"parent_id": pending.id, "note": "con"}])  # type: ignore[attr-defined]
    assert [row[1] for row in await rows_of(db, PARENT)] == ["L-1"]
    assert len(await rows_of(db, CHILD)) == 1


async def test_cursor_listeners_hear_the_rows_with_sqlalchemys_own_context(db: Database) -> None:
    """Tracing reads the execution context SQLAlchemy passes its listeners: with a listener on the
    engine, the batch goes through SQLAlchemy's execution (one INSERT per table on SQLite)."""
    heard: list[str] = []

    def listener(_conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool) -> None:
        context.execution_options.get("trace_id")  # as a tracer does: no context, no trace
        heard.append(statement)

    first = parent("M-1")
    event.listen(db.engine.sync_engine, "before_cursor_execute", listener)
    try:
        async with db.session() as session, deferred_inserts(session):
            await insert_rows(session, PARENT, [first])
            await insert_rows(session, CHILD, [{"parent_id": first["id"], "note": "x"}])
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", listener)
    inserts = [statement for statement in heard if "INSERT" in statement.upper()]
    assert len(inserts) == (1 if not db.is_sqlite else 2), heard
    assert len(await rows_of(db, CHILD)) == 1


async def test_a_json_columns_text_is_the_same_compact_json_on_every_path_and_reads_back_as_written(
    db: Database,
) -> None:
    """``shared.db.column_json`` for the unit of work's insert and for the block's rows alike: compact
    orjson text, Vietnamese as UTF-8; what orjson refuses (an integer beyond 64 bits, a lone
    surrogate) in the standard library's text with its escapes; every value read back as given."""
    values = {
        "J-1": {"to_places": ["Sở Tư pháp", "UBND huyện"], "n": 1.5, "big": 2**63 - 1, "none": None},
        "J-2": {"huge": 123456789012345678901234567890, "text": "Hà Nội"},
        "J-3": {"lone": "\ud800 nửa"},
    }
    async with db.session() as session:
        await session.execute(
            insert(PARENT), [parent("U-" + code[2:], details=value) for code, value in values.items()]
        )
    async with db.session() as session, deferred_inserts(session):
        await insert_rows(session, PARENT, [parent(code, details=value) for code, value in values.items()])
    text_of = PARENT.c.details.cast(Text).label("text")
    async with db.session() as session:
        stored = dict((await session.execute(select(PARENT.c.code, text_of))).all())
        read = dict((await session.execute(select(PARENT.c.code, PARENT.c.details))).all())
    for code, value in values.items():
        assert stored[code] == stored["U-" + code[2:]] == column_json(value), code
        assert read[code] == read["U-" + code[2:]] == value, code
    assert stored["J-1"] == '{"to_places":["Sở Tư pháp","UBND huyện"],"n":1.5,"big":9223372036854775807,"none":null}'
    assert stored["J-2"] == '{"huge":123456789012345678901234567890,"text":"H\\u00e0 N\\u1ed9i"}'
    assert stored["J-3"] == '{"lone":"\\ud800 n\\u1eeda"}'
