"""SQL for API clients and their secrets."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.models import ApiClient, ClientSecret


class ClientRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_client_id(self, client_id: str) -> ApiClient | None:
        query = select(ApiClient).where(ApiClient.client_id == client_id)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def of_agency(self, agency_id: uuid.UUID) -> Sequence[ApiClient]:
        query = select(ApiClient).where(ApiClient.agency_id == agency_id).order_by(ApiClient.created_at)
        return (await self.session.execute(query)).scalars().all()

    async def add(self, client: ApiClient, secret_hash: str) -> ApiClient:
        self.session.add(client)
        await self.session.flush()
        self.session.add(ClientSecret(client_pk=client.id, secret_hash=secret_hash))
        await self.session.flush()
        return client

    async def live_secrets(self, client_pk: uuid.UUID, now: dt.datetime) -> Sequence[ClientSecret]:
        query = (
            select(ClientSecret)
            .where(
                ClientSecret.client_pk == client_pk,
                or_(ClientSecret.expires_at.is_(None), ClientSecret.expires_at > now),
            )
            .order_by(ClientSecret.created_at.desc())
        )
        return (await self.session.execute(query)).scalars().all()

    async def expire_secrets(self, client_pk: uuid.UUID, at: dt.datetime) -> None:
        """Make every secret of a client expire at ``at`` at the latest."""
        await self.session.execute(
            update(ClientSecret)
            .where(
                ClientSecret.client_pk == client_pk,
                or_(ClientSecret.expires_at.is_(None), ClientSecret.expires_at > at),
            )
            .values(expires_at=at)
        )

    async def add_secret(self, client_pk: uuid.UUID, secret_hash: str) -> None:
        self.session.add(ClientSecret(client_pk=client_pk, secret_hash=secret_hash))
        await self.session.flush()
