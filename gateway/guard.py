"""The gateway's check of every proxied token: the client is not revoked and its agency is active.

Answers from the registry are cached (``LIENTHONG_GATEWAY__CREDENTIAL_CACHE_SECONDS``, 30 s) and
dropped at once by ``client.revoked.v1``, ``client.rotated.v1``, ``agency.status_changed.v1`` and
``user.updated.v1``: a revoked client, a disabled console user or a suspended agency is refused
within the time an event takes to arrive. A console user's token (``user:<name>``) is also refused
once it holds scopes the user's role no longer gives.
"""

from __future__ import annotations

import logging

from gateway.errors import TokenCertificateMismatchError, TokenRevokedError
from shared.auth import Principal, TokenVerifier
from shared.cache import TTLCache
from shared.clients import ClientStatus, RegistryClient
from shared.errors import AgencyInactiveError
from shared.messaging import Envelope

log = logging.getLogger("lienthong.gateway.guard")


class CredentialGuard:
    def __init__(self, verifier: TokenVerifier, registry: RegistryClient, ttl: float = 30.0) -> None:
        self.verifier = verifier
        self.registry = registry
        self.cache: TTLCache[str, ClientStatus] = TTLCache(ttl)
        self.generation = 0  # bumped by every invalidating event

    async def _status(self, client_id: str) -> ClientStatus:
        cached = self.cache.get(client_id)
        if cached is not None:
            return cached
        generation = self.generation
        status = await self.registry.client_status(client_id)
        if generation == self.generation:  # an answer that raced an invalidation is used once, not kept
            self.cache.set(client_id, status)
        return status

    async def check(self, authorization: str | None, certificate: str | None = None) -> Principal | None:
        """Refuse a valid token whose client is revoked or whose agency is not active, and a token
        bound to a client certificate (``cnf.x5t#S256``, RFC 8705) that comes without that
        certificate (``certificate``: the x5t#S256 of the request's, gateway/mtls.py); return the
        token's principal (None without a bearer token) for the rate limits and the access log."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return None  # the service answers 401 itself
        principal = await self.verifier.verify_async(authorization[7:].strip())
        if principal.client_id == "gateway":
            return principal
        if principal.certificate_thumbprint is not None and principal.certificate_thumbprint != certificate:
            raise TokenCertificateMismatchError(
                "This token was issued on a client certificate: send it over a connection that presents that"
                " certificate"
            )
        status = await self._status(principal.client_id)
        if status.active and (status.scopes is None or principal.scopes <= set(status.scopes)):
            return principal
        if status.active:  # a console user whose role changed since its session began
            raise TokenRevokedError("This user's role has changed; sign in again")
        if status.reason in ("revoked", "unknown"):
            raise TokenRevokedError("This client has been revoked; ask the province IT office for a new one")
        raise AgencyInactiveError(
            f"Agency {status.agency_code} is {status.agency_status}: it cannot send or receive",
            agency_code=status.agency_code,
            agency_status=status.agency_status,
        )

    async def on_event(self, envelope: Envelope) -> None:
        """Drop what an event makes stale."""
        self.generation += 1
        if envelope.type == "agency.status_changed.v1":
            self.cache.clear()
        else:
            self.cache.invalidate(str(envelope.data.get("client_id", "")))
        log.debug("credential cache invalidated by %s", envelope.type)
