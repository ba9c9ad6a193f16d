"""SQL for agencies, their levels and their history."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Select, or_, select

from services.registry.models import Agency, AgencyChange, AgencyLevel
from shared.repository import Page, Repository

CHUNK = 500  # stay under driver parameter limits for IN (...)


class AgencyRepository(Repository[Agency]):
    model = Agency

    async def by_code(self, code: str) -> Agency | None:
        """Return the agency with this QCVN 102 code or Decision 20/2020 code, or None."""
        query = select(Agency).where(or_(Agency.code == code, Agency.new_code == code))
        return (await self.session.execute(query)).scalars().first()

    async def by_ids(self, ids: Iterable[uuid.UUID]) -> list[Agency]:
        """Return the agencies with these ids (unknown ids are left out)."""
        unique = list(set(ids))
        found: list[Agency] = []
        for start in range(0, len(unique), CHUNK):
            query = select(Agency).where(Agency.id.in_(unique[start : start + CHUNK]))
            found.extend((await self.session.execute(query)).scalars())
        return found

    async def codes_by_id(self, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
        """Return the QCVN 102 code of each agency id given."""
        wanted = [i for i in set(ids) if i is not None]
        result: dict[uuid.UUID, str] = {}
        for start in range(0, len(wanted), CHUNK):
            rows = await self.session.execute(
                select(Agency.id, Agency.code).where(Agency.id.in_(wanted[start : start + CHUNK]))
            )
            result.update({row.id: row.code for row in rows})
        return result

    async def by_codes(self, codes: Iterable[str]) -> list[Agency]:
        """Return the agencies named by these codes, either form (unknown codes are left out)."""
        unique = sorted(set(codes))
        found: list[Agency] = []
        for start in range(0, len(unique), CHUNK):
            chunk = unique[start : start + CHUNK]
            query = select(Agency).where(or_(Agency.code.in_(chunk), Agency.new_code.in_(chunk)))
            found.extend((await self.session.execute(query)).scalars())
        return found

    async def all(self) -> Sequence[Agency]:
        """Return every agency, ordered by code."""
        return (await self.session.execute(select(Agency).order_by(Agency.code))).scalars().all()

    @staticmethod
    def _subtree(root_id: uuid.UUID) -> Select[tuple[uuid.UUID]]:
        """Return a query of the ids of every agency below ``root_id``, at any depth."""
        tree = select(Agency.id).where(Agency.parent_id == root_id).cte("subtree", recursive=True)
        tree = tree.union_all(select(Agency.id).where(Agency.parent_id == tree.c.id))
        return select(tree.c.id)

    async def subtree_ids(self, root_id: uuid.UUID) -> set[uuid.UUID]:
        """Return the ids of every agency below ``root_id``, at any depth."""
        rows = (await self.session.execute(self._subtree(root_id))).all()
        return {uuid.UUID(str(row[0])) for row in rows}

    async def page_by_code(
        self,
        *,
        cursor: str | None,
        limit: int,
        parent_id: uuid.UUID | None = None,
        subtree_of: uuid.UUID | None = None,
        level: str | None = None,
        status: str | None = None,
        words: Sequence[str] = (),
    ) -> Page[Agency]:
        """Return one page of the agencies matching every filter given, ordered by code."""
        query = select(Agency)
        if parent_id:
            query = query.where(Agency.parent_id == parent_id)
        if subtree_of:
            query = query.where(Agency.id.in_(self._subtree(subtree_of)))
        if level:
            query = query.where(Agency.level == level)
        if status:
            query = query.where(Agency.status == status)
        for word in words:
            query = query.where(Agency.search_text.contains(word, autoescape=True))
        return await self.page(query, keys=[Agency.code], cursor=cursor, limit=limit)

    async def in_subtree_at_level(
        self, *, root_id: uuid.UUID | None, level: str | None, statuses: Sequence[str]
    ) -> Sequence[Agency]:
        """Return the agencies in ``statuses`` below ``root_id`` at ``level`` (None: anywhere, any level)."""
        query = select(Agency).where(Agency.status.in_(statuses)).order_by(Agency.code)
        if root_id is not None:
            query = query.where(Agency.id.in_(self._subtree(root_id)))
        if level is not None:
            query = query.where(Agency.level == level)
        return (await self.session.execute(query)).scalars().all()

    async def record_change(self, agency_id: uuid.UUID, *, action: str, actor: str, changes: Mapping[str, Any]) -> None:
        """Add an entry to an agency's history."""
        self.session.add(AgencyChange(agency_id=agency_id, action=action, actor=actor, changes=dict(changes)))
        await self.session.flush()

    async def history(self, agency_id: uuid.UUID) -> Sequence[AgencyChange]:
        """Return an agency's history, oldest first."""
        query = (
            select(AgencyChange)
            .where(AgencyChange.agency_id == agency_id)
            .order_by(AgencyChange.created_at, AgencyChange.id)
        )
        return (await self.session.execute(query)).scalars().all()

    async def levels(self) -> Sequence[AgencyLevel]:
        """Return the administrative levels, by rank."""
        return (await self.session.execute(select(AgencyLevel).order_by(AgencyLevel.rank))).scalars().all()

    async def level(self, code: str) -> AgencyLevel | None:
        """Return the level with this code, or None."""
        return await self.session.get(AgencyLevel, code)

    async def add_level(self, level: AgencyLevel) -> AgencyLevel:
        """Add an administrative level."""
        self.session.add(level)
        await self.session.flush()
        return level
