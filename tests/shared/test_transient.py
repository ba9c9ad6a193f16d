"""``shared.repository.transient``: a row made without the mapped class's constructor is the row the
constructor makes, as ``Repository.insert_new`` writes it and as its readers read it."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import JSON, DateTime, String, inspect, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import Database, new_id
from shared.repository import Repository, transient


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "transient_note"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(10), default="pending")
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class Notes(Repository[Note]):
    model = Note


@pytest.fixture
async def db(tmp_path: Any) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'transient.db'}", "transient")
    async with database.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield database
    await database.dispose()


def test_a_transient_row_reads_as_the_constructors_and_tracks_later_changes():
    at = dt.datetime(2026, 11, 30, 8, 0)
    made = transient(Note, {"title": "Công văn", "details": {"a": [1]}, "at": at})
    built = Note(title="Công văn", details={"a": [1]}, at=at)
    state = inspect(made)
    assert state.transient and type(made) is Note
    assert (made.title, made.details, made.at, made.status, made.id) == (built.title, built.details, at, None, None)
    made.status = "sent"  # an assignment after it is an ordinary, tracked one
    assert made.status == "sent" and state.attrs.status.history.added == ["sent"]


def test_an_unknown_key_is_refused_as_the_constructor_refuses_it():
    with pytest.raises(TypeError, match="'titel' is an invalid keyword argument for Note"):
        Note(titel="x")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="'titel' is an invalid keyword argument for Note"):
        transient(Note, {"titel": "x"})
    transient(Note, {"title": "x"})  # the keys checked once per set: a known set still passes
    with pytest.raises(TypeError, match="'titel'"):
        transient(Note, {"title": "x", "titel": "y"})


async def test_insert_new_writes_a_transient_row_with_its_defaults_as_a_constructed_one(db: Database):
    made = transient(Note, {"title": "transient", "details": {"n": 1}})
    built = Note(title="built", details={"n": 1})
    async with db.session() as session:
        await Notes(session).insert_new([made])
        await Notes(session).insert_new([built])
    # the defaults completed on the object itself, readable by the caller
    assert isinstance(made.id, uuid.UUID) and made.status == "pending"
    async with db.session() as session:
        rows = {r.title: r for r in (await session.execute(select(Note.__table__))).all()}
    assert rows["transient"].id == made.id
    assert (rows["transient"].status, rows["transient"].details) == (rows["built"].status, rows["built"].details)
    assert inspect(made).transient  # written outside the unit of work: still not in any session


def test_new_ids_are_plain_time_ordered_version_7_uuids():
    """Plain ``uuid.UUID`` (what SQLAlchemy's ``Uuid`` and pydantic take), version 7, RFC 4122, and
    ordered as they were made, within a millisecond too."""
    ids = [new_id() for _ in range(2000)]
    assert {type(i) for i in ids} == {uuid.UUID}
    assert {(i.version, i.variant) for i in ids} == {(7, uuid.RFC_4122)}
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert uuid.UUID(str(ids[0])) == ids[0]


def test_a_model_whose_constructor_does_more_than_assign_is_refused():
    """``@validates``, an ``__init__`` of its own, a key that is a relationship: the constructor's
    work would be skipped, so ``transient`` refuses rather than skip it."""
    from sqlalchemy import ForeignKey
    from sqlalchemy.orm import relationship, validates

    class Checked(Base):
        __tablename__ = "transient_checked"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str] = mapped_column(String(50))

        @validates("title")
        def _title(self, _key: str, value: str) -> str:
            return value.strip()

    class Own(Base):
        __tablename__ = "transient_own"
        id: Mapped[int] = mapped_column(primary_key=True)

        def __init__(self, **values: Any) -> None:
            super().__init__(**values)

    class Child(Base):
        __tablename__ = "transient_child"
        id: Mapped[int] = mapped_column(primary_key=True)
        note_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("transient_note.id"))
        note: Mapped[Note] = relationship()

    with pytest.raises(TypeError, match="validators"):
        transient(Checked, {"title": " x "})
    with pytest.raises(TypeError, match="constructor"):
        transient(Own, {"id": 1})
    with pytest.raises(TypeError, match="'note' of Child is not a column"):
        transient(Child, {"note": Note(title="x")})
    assert transient(Child, {"id": 1, "note_id": uuid.uuid4()}).id == 1
