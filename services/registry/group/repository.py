"""SQL for recipient groups."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.models import GroupMember, RecipientGroup


class GroupRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_name(self, name: str) -> RecipientGroup | None:
        query = select(RecipientGroup).where(RecipientGroup.name == name)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def by_names(self, names: Sequence[str]) -> Sequence[RecipientGroup]:
        query = select(RecipientGroup).where(RecipientGroup.name.in_(set(names)))
        return (await self.session.execute(query)).scalars().all()

    async def all(self) -> Sequence[RecipientGroup]:
        return (await self.session.execute(select(RecipientGroup).order_by(RecipientGroup.name))).scalars().all()

    async def member_ids(self, group_id: uuid.UUID) -> list[uuid.UUID]:
        query = select(GroupMember.agency_id).where(GroupMember.group_id == group_id)
        return list((await self.session.execute(query)).scalars())

    async def set_members(self, group_id: uuid.UUID, agency_ids: Sequence[uuid.UUID]) -> None:
        await self.session.execute(delete(GroupMember).where(GroupMember.group_id == group_id))
        self.session.add_all([GroupMember(group_id=group_id, agency_id=a) for a in agency_ids])
        await self.session.flush()

    async def add(self, group: RecipientGroup) -> RecipientGroup:
        self.session.add(group)
        await self.session.flush()
        return group

    async def remove(self, group: RecipientGroup) -> None:
        await self.session.execute(delete(GroupMember).where(GroupMember.group_id == group.id))
        await self.session.delete(group)
        await self.session.flush()
