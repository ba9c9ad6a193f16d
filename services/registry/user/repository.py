"""SQL for agency users."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select

from services.registry.models import AgencyUser
from shared.repository import Repository


class UserRepository(Repository[AgencyUser]):
    model = AgencyUser

    async def by_username(self, username: str) -> AgencyUser | None:
        """Return the user with this name, or None."""
        query = select(AgencyUser).where(AgencyUser.username == username)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def listed(self, *, agency_id: uuid.UUID | None = None, limit: int = 1000) -> Sequence[AgencyUser]:
        """Return the users (of one agency when ``agency_id``), by name."""
        query = select(AgencyUser).order_by(AgencyUser.username).limit(limit)
        if agency_id is not None:
            query = query.where(AgencyUser.agency_id == agency_id)
        return (await self.session.execute(query)).scalars().all()
