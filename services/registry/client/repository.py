"""SQL for API clients."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.models import ApiClient


class ClientRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_client_id(self, client_id: str) -> ApiClient | None:
        query = select(ApiClient).where(ApiClient.client_id == client_id)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def of_agency(self, agency_id: uuid.UUID) -> Sequence[ApiClient]:
        query = select(ApiClient).where(ApiClient.agency_id == agency_id).order_by(ApiClient.created_at)
        return (await self.session.execute(query)).scalars().all()

    async def add(self, client: ApiClient) -> ApiClient:
        self.session.add(client)
        await self.session.flush()
        return client
