"""SQL for API clients and their secrets."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import delete, or_, select, update

from services.registry.models import ApiClient, ClientCertificate, ClientSecret
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

    async def certificates(self, client_pk: uuid.UUID) -> Sequence[ClientCertificate]:
        """Return a client's TLS client certificates, oldest first."""
        query = (
            select(ClientCertificate)
            .where(ClientCertificate.client_pk == client_pk)
            .order_by(ClientCertificate.created_at)
        )
        return (await self.session.execute(query)).scalars().all()

    async def certificate(self, thumbprint: str) -> ClientCertificate | None:
        """Return the client certificate with this thumbprint (x5t#S256), whoever it identifies."""
        query = select(ClientCertificate).where(ClientCertificate.thumbprint == thumbprint)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def add_certificate(self, certificate: ClientCertificate) -> None:
        self.session.add(certificate)
        await self.session.flush()

    async def remove_certificate(self, client_pk: uuid.UUID, thumbprint: str) -> bool:
        """Remove a client's certificate; return whether there was one."""
        result = await self.session.execute(
            delete(ClientCertificate).where(
                ClientCertificate.client_pk == client_pk, ClientCertificate.thumbprint == thumbprint
            )
        )
        return bool(getattr(result, "rowcount", 0))
