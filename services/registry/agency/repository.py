"""SQL for agencies."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services.registry.models import Agency


class AgencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_code(self, code: str) -> Agency | None:
        return (await self.session.execute(select(Agency).where(Agency.code == code))).scalar_one_or_none()

    async def by_id(self, agency_id: uuid.UUID) -> Agency | None:
        return await self.session.get(Agency, agency_id)

    async def codes_by_id(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
        if not ids:
            return {}
        rows = await self.session.execute(select(Agency.id, Agency.code).where(Agency.id.in_(set(ids))))
        return {row.id: row.code for row in rows}

    async def page(
        self, *, after_code: str | None, limit: int, parent_code: str | None, level: str | None
    ) -> Sequence[Agency]:
        query = select(Agency).order_by(Agency.code).limit(limit)
        if after_code:
            query = query.where(Agency.code > after_code)
        if level:
            query = query.where(Agency.level == level)
        if parent_code:
            parent = aliased(Agency)
            query = query.join(parent, Agency.parent_id == parent.id).where(parent.code == parent_code)
        return (await self.session.execute(query)).scalars().all()

    async def add(self, agency: Agency) -> Agency:
        self.session.add(agency)
        await self.session.flush()
        return agency

    async def by_codes(self, codes: Sequence[str]) -> Sequence[Agency]:
        found: list[Agency] = []
        unique = sorted(set(codes))
        for start in range(0, len(unique), 500):  # stay under driver parameter limits
            chunk = unique[start : start + 500]
            found.extend((await self.session.execute(select(Agency).where(Agency.code.in_(chunk)))).scalars())
        return found
