"""Rules for API clients: issue credentials (secret shown once, argon2id stored), rotate with an
overlap window, revoke at once, check them for the gateway."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import secrets

from cryptography.hazmat.primitives import hashes, serialization

from services.registry.agency.repository import AgencyRepository
from services.registry.agency.service import require_agency
from services.registry.certificate.service import parse_certificate
from services.registry.client.repository import ClientRepository
from services.registry.client.schemas import (
    ClientCertificateRead,
    ClientCreate,
    ClientCreated,
    ClientRead,
    ClientStatus,
    CredentialsValid,
    Rotated,
)
from services.registry.errors import (
    AgencyNotFoundError,
    CertificateInvalidError,
    ClientCertificateExistsError,
    ClientCertificateNotFoundError,
    ClientNotFoundError,
)
from services.registry.events import ApiClientCreated, ApiClientRevoked, ApiClientRotated, record
from services.registry.models import Agency, ApiClient, ClientCertificate, messaging
from shared.audit import record_audit
from shared.auth import Principal, Scope, hash_secret, new_secret, verify_secret, verify_secret_async
from shared.clients import InvalidClientError
from shared.db import utcnow
from shared.errors import AgencyInactiveError
from shared.roles import role_of

BOOTSTRAP_ADMIN_SCOPES = (Scope.REGISTRY_ADMIN, Scope.AUDIT, Scope.STATS)


@functools.cache
def _dummy_hash() -> str:
    """Return the hash checked when the client id is unknown, made once, at the configured cost."""
    # Checked so that the answer takes as long for an unknown client as for a wrong secret: it is
    # made on first use, after create_app has set the cost the real hashes are made with.
    return hash_secret(secrets.token_urlsafe(16))


class ClientService:
    def __init__(self, clients: ClientRepository, agencies: AgencyRepository, *, actor: str | None = None) -> None:
        self.clients = clients
        self.agencies = agencies
        self.actor = actor  # the calling client's id, recorded in the audit trail

    async def _agency_of(self, client: ApiClient) -> Agency | None:
        """Return the agency a client acts for (None for the bootstrap admin)."""
        return await self.agencies.get(client.agency_id) if client.agency_id else None

    async def _read(self, client: ApiClient) -> ClientRead:
        """Return a client as the API shows it (never its secrets)."""
        agency = await self._agency_of(client)
        return ClientRead(
            client_id=client.client_id,
            name=client.name,
            agency_code=agency.code if agency else None,
            role=role_of(client.scopes),
            scopes=list(client.scopes),
            created_at=client.created_at,
            revoked_at=client.revoked_at,
        )

    async def _visible(self, client_id: str, *, principal: Principal) -> ApiClient:
        """Return a client the principal may see (admin: any; an agency: its own); 404 otherwise."""
        client = await self.clients.by_client_id(client_id)
        if client is not None and not principal.is_admin:
            agency = await self._agency_of(client)
            if agency is None or agency.code != principal.agency_code:
                client = None
        if client is None:
            raise ClientNotFoundError(f"No API client {client_id} is visible to you")
        return client

    async def _issue(self, client: ApiClient, *, secret: str) -> ApiClient:
        """Store a new client with its first secret (hashed)."""
        await self.clients.add(client)
        await self.clients.add_secret(client.id, hash_secret(secret))
        return client

    async def create(self, agency_code: str, data: ClientCreate) -> ClientCreated:
        """Issue a new credential for an agency; the secret is returned this once."""
        agency = await require_agency(self.agencies, agency_code)
        secret = new_secret()
        client = await self._issue(
            ApiClient(
                client_id=f"lt_{secrets.token_hex(12)}", name=data.name, agency_id=agency.id, scopes=data.granted
            ),
            secret=secret,
        )
        read = await self._read(client)
        await record(
            self.clients,
            ApiClientCreated(**read.model_dump(exclude={"role"})),
            ordering_key=f"client:{client.client_id}",
        )
        await self._audit("client.created", client.client_id, agency.code, {"scopes": list(client.scopes)})
        return ClientCreated(**read.model_dump(), client_secret=secret)

    async def list_for(self, agency_code: str, *, principal: Principal) -> list[ClientRead]:
        """List an agency's credentials (admin, or the agency itself)."""
        agency = await require_agency(self.agencies, agency_code)
        if not principal.is_admin and principal.agency_code != agency.code:
            raise AgencyNotFoundError(f"No agency has the code {agency_code}", agency_code=agency_code)
        return [await self._read(c) for c in await self.clients.of_agency(agency.id)]

    async def get(self, client_id: str, *, principal: Principal) -> ClientRead:
        """Return a client the principal may see."""
        return await self._read(await self._visible(client_id, principal=principal))

    async def rotate(self, client_id: str, *, overlap_seconds: int) -> Rotated:
        """Issue a new secret; the old ones stay valid for ``overlap_seconds``, then expire."""
        client = await self.clients.by_client_id(client_id)
        if client is None or client.revoked_at is not None:
            raise ClientNotFoundError(f"No active API client {client_id}")
        expires = utcnow() + dt.timedelta(seconds=overlap_seconds)
        await self.clients.expire_secrets(client.id, expires)
        secret = new_secret()
        await self.clients.add_secret(client.id, hash_secret(secret))
        rotated = ApiClientRotated(client_id=client.client_id, previous_secrets_expire_at=expires)
        await record(self.clients, rotated, ordering_key=f"client:{client.client_id}")
        await self._audit("client.rotated", client.client_id, None, {"overlap_seconds": overlap_seconds})
        return Rotated(client_id=client.client_id, client_secret=secret, previous_secrets_expire_at=expires)

    async def revoke(self, client_id: str) -> ClientRead:
        """Revoke a client at once: no new token, and the gateway refuses its live tokens."""
        client = await self.clients.by_client_id(client_id)
        if client is None:
            raise ClientNotFoundError(f"No API client {client_id}")
        if client.revoked_at is not None:
            return await self._read(client)
        client.revoked_at = utcnow()
        await self.clients.expire_secrets(client.id, client.revoked_at)
        await self.clients.flush()
        read = await self._read(client)
        revoked = ApiClientRevoked(client_id=client.client_id, agency_code=read.agency_code)
        await record(self.clients, revoked, ordering_key=f"client:{client.client_id}")
        await self._audit("client.revoked", client.client_id, read.agency_code, {})
        return read

    async def verify(self, client_id: str, client_secret: str) -> CredentialsValid:
        """Check a client id and secret; the same error whatever is wrong."""
        client = await self.clients.by_client_id(client_id)
        hashes = [s.secret_hash for s in await self.clients.live_secrets(client.id, utcnow())] if client else []
        # every live hash is checked (no early exit), each off the event loop
        checks = [await verify_secret_async(h, client_secret) for h in hashes or [_dummy_hash()]]
        ok = bool(hashes) and any(checks)
        if client is None or not hashes or not ok or client.revoked_at is not None:
            raise InvalidClientError("Unknown client, wrong or expired secret, or revoked client")
        return await self._issued(client, {"scopes": list(client.scopes)})

    # -- TLS client certificates (mutual TLS at the token endpoint, RFC 8705) -----------------

    async def add_certificate(self, client_id: str, text: str) -> ClientCertificateRead:
        """Register the certificate that identifies a client's system at the token endpoint."""
        client = await self.clients.by_client_id(client_id)
        if client is None or client.revoked_at is not None:
            raise ClientNotFoundError(f"No active API client {client_id}")
        cert = parse_certificate(text)
        not_after = cert.not_valid_after_utc.astimezone(dt.UTC)
        if not_after <= utcnow():
            raise CertificateInvalidError(f"This certificate expired on {not_after.isoformat()}")
        thumbprint = certificate_thumbprint(cert.public_bytes(serialization.Encoding.DER))
        existing = await self.clients.certificate(thumbprint)
        if existing is not None:
            owner = "this client" if existing.client_pk == client.id else "another client"
            raise ClientCertificateExistsError(f"This certificate identifies {owner} already", thumbprint=thumbprint)
        row = ClientCertificate(
            client_pk=client.id,
            thumbprint=thumbprint,
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            not_before=cert.not_valid_before_utc.astimezone(dt.UTC),
            not_after=not_after,
            pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        )
        await self.clients.add_certificate(row)
        agency = await self._agency_of(client)
        await self._audit(
            "client.certificate_added", client.client_id, agency.code if agency else None, {"thumbprint": thumbprint}
        )
        return self._certificate(client, row)

    @staticmethod
    def _certificate(client: ApiClient, row: ClientCertificate) -> ClientCertificateRead:
        return ClientCertificateRead(
            client_id=client.client_id,
            thumbprint=row.thumbprint,
            subject=row.subject,
            issuer=row.issuer,
            not_before=row.not_before,
            not_after=row.not_after,
            created_at=row.created_at,
        )

    async def certificates(self, client_id: str, *, principal: Principal) -> list[ClientCertificateRead]:
        """A client's certificates (admin, or a client of the same agency)."""
        client = await self._visible(client_id, principal=principal)
        return [self._certificate(client, row) for row in await self.clients.certificates(client.id)]

    async def remove_certificate(self, client_id: str, thumbprint: str) -> None:
        """Stop a certificate identifying a client (new tokens; live ones run out, or revoke the client)."""
        client = await self.clients.by_client_id(client_id)
        if client is None or not await self.clients.remove_certificate(client.id, thumbprint):
            raise ClientCertificateNotFoundError(f"No certificate {thumbprint} is registered for {client_id}")
        agency = await self._agency_of(client)
        await self._audit(
            "client.certificate_removed", client.client_id, agency.code if agency else None, {"thumbprint": thumbprint}
        )

    async def verify_certificate(self, client_id: str, thumbprint: str) -> CredentialsValid:
        """Check that a TLS client certificate identifies a client; the same error whatever is wrong."""
        client = await self.clients.by_client_id(client_id)
        row = await self.clients.certificate(thumbprint)
        now = utcnow()
        if (
            client is None
            or row is None
            or row.client_pk != client.id
            or client.revoked_at is not None
            or not row.not_before <= now < row.not_after
        ):
            raise InvalidClientError("Unknown client, or a certificate not registered for it, expired, or revoked")
        return await self._issued(client, {"scopes": list(client.scopes), "certificate": thumbprint})

    async def _issued(self, client: ApiClient, details: dict[str, object]) -> CredentialsValid:
        """Accepted credentials: the agency the client acts for (403 unless active), and the
        ``token.issued`` entry of the audit trail in the check's transaction."""
        agency = await self._acting_agency(client)
        await record_audit(
            self.clients,
            messaging,
            "token.issued",
            actor=client.client_id,
            agency_code=agency.code if agency else None,
            target=client.client_id,
            details=details,
            deferred=True,  # many: published with the others at the relay's next poll
        )
        return CredentialsValid(
            client_id=client.client_id, agency_code=agency.code if agency else None, scopes=list(client.scopes)
        )

    async def record_refusal(self, client_id: str, reason: str) -> None:
        """Record a refused credential check in the audit trail (the route answers the refusal
        instead of raising it, so that the entry commits with the check)."""
        await record_audit(
            self.clients,
            messaging,
            "token.refused",
            actor=None,
            target=client_id,
            outcome="refused",
            details={"reason": reason},
            deferred=True,
        )

    async def _audit(self, action: str, client_id: str, agency_code: str | None, details: dict[str, object]) -> None:
        """Record a change of an API client in the audit trail (the admin's call is the actor)."""
        await record_audit(
            self.clients,
            messaging,
            action,
            actor=self.actor,
            agency_code=agency_code,
            target=client_id,
            details=details,
        )

    async def _acting_agency(self, client: ApiClient) -> Agency | None:
        """Return the agency a client acts for (None: the bootstrap admin); 403 unless it is active."""
        if client.agency_id is None:
            return None
        agency = await self.agencies.get(client.agency_id)
        if agency is None or agency.status != "active":
            status = agency.status if agency else "missing"
            raise AgencyInactiveError(
                f"The agency of this client is {status}; ask the province IT office", agency_status=status
            )
        return agency

    async def status(self, client_id: str) -> ClientStatus:
        """Return whether a client's tokens are still to be honoured (not revoked, agency active)."""
        client = await self.clients.by_client_id(client_id)
        if client is None:
            return ClientStatus(
                client_id=client_id, active=False, reason="unknown", agency_code=None, agency_status=None
            )
        agency = await self._agency_of(client)
        reason = None
        if client.revoked_at is not None:
            reason = "revoked"
        elif agency is not None and agency.status != "active":
            reason = f"agency_{agency.status}"
        return ClientStatus(
            client_id=client.client_id,
            active=reason is None,
            reason=reason,
            agency_code=agency.code if agency else None,
            agency_status=agency.status if agency else None,
        )

    async def ensure_bootstrap_admin(self, client_id: str, secret: str) -> None:
        """Create the bootstrap admin credential from settings, or bring it back to them."""
        client = await self.clients.by_client_id(client_id)
        if client is None:
            admin = ApiClient(
                client_id=client_id, name="Bootstrap administrator", agency_id=None, scopes=list(BOOTSTRAP_ADMIN_SCOPES)
            )
            await self._issue(admin, secret=secret)
            return
        live = await self.clients.live_secrets(client.id, utcnow())
        if client.revoked_at is not None or not any(verify_secret(s.secret_hash, secret) for s in live):
            client.revoked_at = None
            client.scopes = list(BOOTSTRAP_ADMIN_SCOPES)
            await self.clients.expire_secrets(client.id, utcnow())
            await self.clients.add_secret(client.id, hash_secret(secret))


def certificate_thumbprint(der: bytes) -> str:
    """x5t#S256 of a certificate (RFC 8705): the base64url SHA-256 of its DER, without padding."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return base64.urlsafe_b64encode(digest.finalize()).rstrip(b"=").decode()
