"""Rules for API clients: issue credentials (secret shown once, argon2 stored), check them."""

from __future__ import annotations

import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.agency.repository import AgencyRepository
from services.registry.client.repository import ClientRepository
from services.registry.client.schemas import ClientCreate, ClientCreated, ClientRead, CredentialsValid
from services.registry.errors import AgencyInactiveError, AgencyNotFoundError, ClientCredentialsInvalidError
from services.registry.models import Agency, ApiClient, messaging
from shared.auth import Principal, Scope, hash_secret, new_secret, verify_secret
from shared.messaging import record_event

# A hash of a random secret, checked when the client id is unknown, so the answer takes as long
# for an unknown client as for a wrong secret.
_DUMMY_HASH = hash_secret(secrets.token_urlsafe(16))


def _read(client: ApiClient, agency_code: str | None) -> ClientRead:
    return ClientRead(
        client_id=client.client_id,
        name=client.name,
        agency_code=agency_code,
        scopes=list(client.scopes),
        created_at=client.created_at,
        revoked_at=client.revoked_at,
    )


class ClientService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.clients = ClientRepository(session)
        self.agencies = AgencyRepository(session)

    async def _agency(self, code: str) -> Agency:
        agency = await self.agencies.by_code(code.strip().upper())
        if agency is None:
            raise AgencyNotFoundError(f"No agency has the code {code}", agency_code=code)
        return agency

    async def create(self, agency_code: str, data: ClientCreate) -> ClientCreated:
        """Issue a new credential for an agency; the secret is returned this once."""
        agency = await self._agency(agency_code)
        secret = new_secret()
        client = await self.clients.add(
            ApiClient(
                client_id=f"lt_{secrets.token_hex(12)}",
                name=data.name,
                agency_id=agency.id,
                scopes=data.scopes,
                secret_hash=hash_secret(secret),
            )
        )
        read = _read(client, agency.code)
        await record_event(self.session, messaging, "client.created.v1", read.model_dump(mode="json"))
        return ClientCreated(**read.model_dump(), client_secret=secret)

    async def list_for(self, agency_code: str, principal: Principal) -> list[ClientRead]:
        """List an agency's credentials (admin, or the agency itself)."""
        agency = await self._agency(agency_code)
        if not principal.is_admin and principal.agency_code != agency.code:
            raise AgencyNotFoundError(f"No agency has the code {agency_code}", agency_code=agency_code)
        return [_read(c, agency.code) for c in await self.clients.of_agency(agency.id)]

    async def verify(self, client_id: str, client_secret: str) -> CredentialsValid:
        """Check a client id and secret; the same error whatever is wrong."""
        client = await self.clients.by_client_id(client_id)
        ok = verify_secret(client.secret_hash if client else _DUMMY_HASH, client_secret)
        if client is None or not ok or client.revoked_at is not None:
            raise ClientCredentialsInvalidError("Unknown client, wrong secret, or revoked client")
        agency_code = None
        if client.agency_id is not None:
            agency = await self.agencies.by_id(client.agency_id)
            if agency is None or agency.status != "active":
                raise AgencyInactiveError("The agency of this client is not active; ask the province IT office")
            agency_code = agency.code
        return CredentialsValid(client_id=client.client_id, agency_code=agency_code, scopes=list(client.scopes))

    async def ensure_bootstrap_admin(self, client_id: str, secret: str) -> None:
        """Create or refresh the bootstrap admin credential from settings."""
        scopes = [Scope.REGISTRY_ADMIN, Scope.AUDIT, Scope.STATS]
        client = await self.clients.by_client_id(client_id)
        if client is None:
            await self.clients.add(
                ApiClient(
                    client_id=client_id,
                    name="Bootstrap administrator",
                    agency_id=None,
                    scopes=scopes,
                    secret_hash=hash_secret(secret),
                )
            )
        elif not verify_secret(client.secret_hash, secret) or client.revoked_at is not None:
            client.secret_hash = hash_secret(secret)
            client.revoked_at = None
            client.scopes = scopes
