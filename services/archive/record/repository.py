"""SQL for archive records."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    event,
    func,
    insert,
    literal_column,
    or_,
    select,
    tuple_,
    update,
)

from services.archive.models import ArchiveRecord
from shared.repository import Repository

_RECORDS = cast(Table, ArchiveRecord.__table__)  # Core: no ORM bulk machinery on the hot path
# what the index takes of a record (:func:`services.archive.search.index.document_of`), as Core rows
# with the records' attribute names: no ORM object, identity map or change tracking per record
_INDEXED = select(
    *(
        column
        for column in _RECORDS.c
        if column.name not in ("text_error", "text_claimed_at", "file_name", "content_type", "ingested_by")
    )
)

# what a record's text extraction needs, returned by the claim
_CLAIMED = (
    _RECORDS.c.document_id,
    _RECORDS.c.source,
    _RECORDS.c.file_sha256,
    _RECORDS.c.content_type,
    _RECORDS.c.details,
)


class Claimed(NamedTuple):
    """A record claimed for its text: what its extraction needs."""

    document_id: uuid.UUID
    source: str
    file_sha256: str | None
    content_type: str | None
    details: dict[str, Any] | None


class ArchiveRecordRepository(Repository[ArchiveRecord]):
    model = ArchiveRecord

    async def by_document_id(self, document_id: uuid.UUID) -> ArchiveRecord | None:
        return await self.get(document_id)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """``callback`` called once this session's transaction has committed (never if it rolls back)."""
        event.listen(self.session.sync_session, "after_commit", lambda _session: callback(), once=True)

    async def by_document_ids(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, ArchiveRecord]:
        """The records of these documents that exist, by id (one query)."""
        if not ids:
            return {}
        rows = await self.session.scalars(select(ArchiveRecord).where(ArchiveRecord.document_id.in_(set(ids))))
        return {row.document_id: row for row in rows}

    async def existing(self, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these documents have a record (their ids only: no record loaded)."""
        if not ids:
            return set()
        return set(
            (await self.session.scalars(select(_RECORDS.c.document_id).where(_RECORDS.c.document_id.in_(ids)))).all()
        )

    async def insert_records(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert new records, given as column values, with one statement (a batch of events)."""
        if rows:
            await self.session.execute(insert(_RECORDS), list(rows))

    async def changes_since(
        self, since: dt.datetime, after: tuple[dt.datetime, uuid.UUID] | None, limit: int
    ) -> Sequence[Any]:
        """The keys (``document_id``, ``changed_at``) of the records changed at or after ``since``,
        oldest change first, after the key ``after``."""
        query = select(ArchiveRecord.document_id, ArchiveRecord.changed_at).where(ArchiveRecord.changed_at >= since)
        if after is not None:  # a row-value comparison: a range scan of (changed_at, document_id)
            query = query.where(tuple_(ArchiveRecord.changed_at, ArchiveRecord.document_id) > tuple_(*after))
        query = query.order_by(ArchiveRecord.changed_at, ArchiveRecord.document_id).limit(limit)
        return (await self.session.execute(query)).all()

    async def indexed(self, ids: Sequence[uuid.UUID]) -> Sequence[Any]:
        """These records as the index takes them (rows with the fields of
        :func:`services.archive.search.index.document_of`)."""
        return (await self.session.execute(_INDEXED.where(ArchiveRecord.document_id.in_(ids)))).all()

    async def chunks(self, size: int) -> AsyncIterator[Sequence[Any]]:
        """Every record, ``size`` at a time, in document id order (keyset: no offset scans); rows
        with the fields the index takes."""
        after: uuid.UUID | None = None
        while True:
            query = _INDEXED.order_by(ArchiveRecord.document_id).limit(size)
            if after is not None:
                query = query.where(ArchiveRecord.document_id > after)
            rows = (await self.session.execute(query)).all()
            if not rows:
                return
            yield rows
            after = rows[-1].document_id

    async def count(self) -> int:
        return int((await self.session.execute(select(func.count()).select_from(_RECORDS))).scalar_one())

    async def claim_pending_text(self, now: dt.datetime, stale_before: dt.datetime, limit: int) -> list[Claimed]:
        """Mark up to ``limit`` records waiting for their text as being extracted (by this replica)
        and return what their extraction needs: one statement (an UPDATE … RETURNING of the records
        a CTE picks; on PostgreSQL the rows another replica is claiming are skipped, not waited
        for). A record claimed ``stale_before`` and never finished (its replica stopped) is claimed
        again."""
        # the statuses as literals, not parameters, and the partial index's condition written as
        # itself: every plan of PostgreSQL, and SQLite's planner, then read that index (a generic
        # plan with parameters read the whole table; SQLite does not see it through an OR; 0006)
        pending: ColumnElement[str] = literal_column("'pending'")
        extracting: ColumnElement[str] = literal_column("'extracting'")
        waiting = and_(
            _RECORDS.c.text_status.in_([pending, extracting]),
            or_(_RECORDS.c.text_status == pending, _RECORDS.c.text_claimed_at < stale_before),
        )
        # a materialised CTE, evaluated once: as a subquery of the UPDATE, PostgreSQL may run it again
        # for each row and claim more than ``limit`` (each run locks and returns other rows)
        picked = (
            select(_RECORDS.c.document_id)
            .where(waiting)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("picked")
            .prefix_with("MATERIALIZED")
        )
        claimed = await self.session.execute(
            update(_RECORDS)
            .where(_RECORDS.c.document_id.in_(select(picked.c.document_id)), waiting)
            .values(text_status="extracting", text_claimed_at=now)
            .returning(*_CLAIMED)
        )
        return [Claimed(*row) for row in claimed]

    async def write_texts(self, results: Sequence[tuple[uuid.UUID, dict[str, Any]]], changed_at: dt.datetime) -> None:
        """Write the extraction's results (a record's id, the columns it fills): an executemany UPDATE
        per set of columns filled (usually one for the whole batch), not a statement per record."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for document_id, values in results:
            columns = tuple(sorted(values))
            groups.setdefault(columns, []).append(
                {"key": document_id, "at": changed_at, **{f"v_{name}": value for name, value in values.items()}}
            )
        for columns, rows in groups.items():
            await self.session.execute(
                update(_RECORDS)
                .where(_RECORDS.c.document_id == bindparam("key"))
                .values(changed_at=bindparam("at"), **{name: bindparam(f"v_{name}") for name in columns}),
                rows,
            )

    async def retention_ended(self, today: dt.date, *, cursor: uuid.UUID | None, limit: int) -> list[ArchiveRecord]:
        """Records with a retention period, in id order (the caller keeps those past their end)."""
        query = (
            select(ArchiveRecord)
            .where(ArchiveRecord.retention_years.is_not(None), ArchiveRecord.promulgation_date <= today)
            .order_by(ArchiveRecord.document_id)
            .limit(limit)
        )
        if cursor is not None:
            query = query.where(ArchiveRecord.document_id > cursor)
        return list((await self.session.scalars(query)).all())
