"""SQLite statements through aiosqlite are one call of the connection's thread each (shared.sqlite),
and answer as SQLAlchemy's own cursor does: rows, row counts, generated ids, errors, streams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from shared.db import Database
from shared.sqlite import OneCallCursor

metadata = MetaData()
NOTE = Table(
    "note",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("code", String(20), nullable=False, unique=True),
    Column("text", String(200)),
)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'one-call.db'}", "one_call")
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield database
    await database.dispose()


class Handovers:
    """Counts the calls made to the session's aiosqlite connection thread."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self.count = 0
        self._execute = driver._execute

    async def _counted(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        self.count += 1
        return await self._execute(function, *args, **kwargs)

    def __enter__(self) -> Handovers:
        self.driver._execute = self._counted
        return self

    def __exit__(self, *_exc: object) -> None:
        del self.driver._execute


async def test_each_statement_is_one_call_of_the_thread_and_answers_as_a_cursor_does(db: Database) -> None:
    async with db.session() as session:
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        assert isinstance(raw.dbapi_connection.cursor(), OneCallCursor)  # type: ignore[union-attr]
        with Handovers(raw.driver_connection) as handovers:
            added = await session.execute(insert(NOTE).values(code="A", text="Về việc họp"))
            assert added.inserted_primary_key is not None and added.inserted_primary_key[0] == 1  # lastrowid
            await session.execute(insert(NOTE), [{"code": f"B{i}", "text": None} for i in range(3)])  # executemany
            changed = await session.execute(update(NOTE).where(NOTE.c.code.like("B%")).values(text="đã sửa"))
            assert changed.rowcount == 3
            rows = (await session.execute(select(NOTE.c.code, NOTE.c.text).order_by(NOTE.c.id))).all()
            assert rows == [("A", "Về việc họp"), ("B0", "đã sửa"), ("B1", "đã sửa"), ("B2", "đã sửa")]
            assert (await session.execute(text("SELECT count(*) FROM note WHERE text IS NULL"))).scalar() == 0
            assert (await session.execute(select(NOTE).where(NOTE.c.code == "none"))).first() is None
        # six statements, one call each (SQLAlchemy's own cursor: three or four)
        assert handovers.count == 6, handovers.count


async def test_a_constraint_error_is_sqlalchemys_and_the_transaction_rolls_back(db: Database) -> None:
    async with db.session() as session:
        await session.execute(insert(NOTE).values(code="C"))
    with pytest.raises(IntegrityError, match="UNIQUE"):
        async with db.session() as session:
            await session.execute(insert(NOTE).values(code="D"))
            await session.execute(insert(NOTE).values(code="C"))
    async with db.session() as session:
        assert (await session.execute(select(NOTE.c.code))).scalars().all() == ["C"]


async def test_a_stream_of_rows_still_reads_in_parts(db: Database) -> None:
    async with db.session() as session:
        await session.execute(insert(NOTE), [{"code": f"S{i:03}", "text": "x"} for i in range(250)])
    async with db.session() as session:
        streamed = await session.stream(select(NOTE.c.code).order_by(NOTE.c.code).execution_options(yield_per=100))
        codes = [code async for code in streamed.scalars()]
    assert codes == [f"S{i:03}" for i in range(250)]
