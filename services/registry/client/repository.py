"""SQL for API clients and their secrets."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import or_, select, update

from services.registry.models import ApiClient, ClientSecret
from shared.repository import Repository


class ClientRepository(Repository[ApiClient]):
    model = ApiClient

    async def by_client_id(self, client_id: str) -> ApiClient | None:
        """Return the client with this public client id, or None."""
        query = select(ApiClient).where(ApiClient.client_id == client_id)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def of_agency(self, agency_id: uuid.UUID) -> Sequence[ApiClient]:
        """Return an agency's clients, oldest first."""
        query = select(ApiClient).where(ApiClient.agency_id == agency_id).order_by(ApiClient.created_at)
        return (await self.session.execute(query)).scalars().all()

    async def live_secrets(self, client_pk: uuid.UUID, now: dt.datetime) -> Sequence[ClientSecret]:
        """Return a client's secrets that have not expired at ``now``, newest first."""
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
        """Add a secret (its argon2id hash) to a client."""
        self.session.add(ClientSecret(client_pk=client_pk, secret_hash=secret_hash))
        await self.session.flush()
