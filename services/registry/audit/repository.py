"""SQL for the audit chain: its head (locked by every append), its entries, its anchors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update

from services.registry.models import AuditAnchor, AuditEntry, AuditHead
from shared.db import utcnow
from shared.repository import Page, Repository


@dataclass(frozen=True)
class EntryFilters:
    agency_code: str | None = None
    document_id: str | None = None
    actor: str | None = None
    action: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


class AuditRepository(Repository[AuditEntry]):
    model = AuditEntry

    async def lock_head(self) -> tuple[int, str]:
        """Lock the chain's head row for this transaction and return its (seq, hash), in one statement.

        The UPDATE takes the row lock on PostgreSQL and the writer's turn on SQLite before the head
        is read (its RETURNING): two appends never start from the same head."""
        statement = (
            update(AuditHead)
            .where(AuditHead.id == 1)
            .values(updated_at=utcnow())
            .returning(AuditHead.seq, AuditHead.hash)
        )
        row = (await self.session.execute(statement)).one()
        return int(row.seq), str(row.hash)

    async def head(self) -> tuple[int, str]:
        """Return the head's (seq, hash) without locking it."""
        row = (await self.session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1))).one()
        return int(row.seq), str(row.hash)

    async def set_head(self, seq: int, hash: str) -> None:
        await self.session.execute(
            update(AuditHead).where(AuditHead.id == 1).values(seq=seq, hash=hash, updated_at=utcnow())
        )

    async def append(self, entries: Sequence[AuditEntry]) -> None:
        """Insert entries in one statement."""
        await self.insert_new(entries)

    async def page_entries(self, filters: EntryFilters, *, cursor: str | None, limit: int) -> Page[AuditEntry]:
        """Return entries matching the filters, newest first."""
        query = select(AuditEntry)
        if filters.agency_code is not None:
            query = query.where(AuditEntry.agency_code == filters.agency_code)
        if filters.document_id is not None:
            query = query.where(AuditEntry.document_id == filters.document_id)
        if filters.actor is not None:
            query = query.where(AuditEntry.actor == filters.actor)
        if filters.action is not None:
            query = query.where(AuditEntry.action == filters.action)
        if filters.since is not None:
            query = query.where(AuditEntry.occurred_at >= filters.since)
        if filters.until is not None:
            query = query.where(AuditEntry.occurred_at < filters.until)
        return await self.page(query, keys=[AuditEntry.seq], cursor=cursor, limit=limit, descending=True)

    async def entries_after(self, seq: int, limit: int) -> Sequence[AuditEntry]:
        """Return up to ``limit`` entries after ``seq``, in chain order (verification)."""
        query = select(AuditEntry).where(AuditEntry.seq > seq).order_by(AuditEntry.seq).limit(limit)
        return (await self.session.execute(query)).scalars().all()

    async def last_anchor(self) -> AuditAnchor | None:
        query = select(AuditAnchor).order_by(AuditAnchor.seq.desc()).limit(1)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def anchors_between(self, first: int, last: int) -> Sequence[AuditAnchor]:
        """Return the anchors of entries ``first`` to ``last`` (included), in chain order."""
        query = select(AuditAnchor).where(AuditAnchor.seq >= first, AuditAnchor.seq <= last).order_by(AuditAnchor.seq)
        return (await self.session.execute(query)).scalars().all()

    async def anchors_after(self, seq: int) -> Sequence[AuditAnchor]:
        """Return the anchors after entry ``seq`` (anchors of entries that are gone)."""
        query = select(AuditAnchor).where(AuditAnchor.seq > seq).order_by(AuditAnchor.seq)
        return (await self.session.execute(query)).scalars().all()

    async def add_anchor(self, anchor: AuditAnchor) -> None:
        self.session.add(anchor)
        await self.session.flush()
