"""The gateway's check of every proxied token: the client is not revoked and its agency is active.

Answers from the registry are cached (30 s at most) and dropped at once by ``client.revoked.v1``,
``client.rotated.v1`` and ``agency.status_changed.v1``: a revoked client or a suspended agency is
refused within the time an event takes to arrive.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from shared.auth import Scope, TokenIssuer, TokenVerifier
from shared.cache import TTLCache
from shared.errors import DependencyUnavailableError, ForbiddenError, UnauthorizedError
from shared.messaging import Envelope

log = logging.getLogger("lienthong.gateway.guard")
EVENTS = ("client.revoked.v1", "client.rotated.v1", "agency.status_changed.v1")


class TokenRevokedError(UnauthorizedError):
    code, title = "token_revoked", "The client of this token has been revoked"


class AgencySuspendedError(ForbiddenError):
    code, title = "agency_not_active", "The agency of this client is not active"


class CredentialGuard:
    def __init__(self, verifier: TokenVerifier, issuer: TokenIssuer, registry: httpx.AsyncClient, ttl: float = 30.0):
        self.verifier = verifier
        self.issuer = issuer
        self.registry = registry
        self.cache: TTLCache[str, dict[str, Any]] = TTLCache(ttl)
        self.generation = 0  # bumped by every invalidating event

    async def _status(self, client_id: str) -> dict[str, Any]:
        cached = self.cache.get(client_id)
        if cached is not None:
            return cached
        generation = self.generation
        internal = self.issuer.issue("gateway", None, [Scope.INTERNAL])
        try:
            response = await self.registry.get(
                f"/internal/v1/clients/{client_id}/status", headers={"Authorization": f"Bearer {internal}"}
            )
        except httpx.HTTPError as exc:
            raise DependencyUnavailableError(f"The registry does not answer ({exc}); retry later") from exc
        if response.status_code != 200:
            raise DependencyUnavailableError(f"The registry answered {response.status_code}; retry later")
        status: dict[str, Any] = response.json()
        if generation == self.generation:  # an answer that raced an invalidation is used once, not kept
            self.cache.set(client_id, status)
        return status

    async def check(self, authorization: str | None) -> None:
        """Refuse a valid token whose client is revoked or whose agency is not active."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return  # the service answers 401 itself
        principal = self.verifier.verify(authorization[7:].strip())
        if principal.client_id == "gateway":
            return
        status = await self._status(principal.client_id)
        if status["active"]:
            return
        if status["reason"] in ("revoked", "unknown"):
            raise TokenRevokedError("This client has been revoked; ask the province IT office for a new one")
        raise AgencySuspendedError(
            f"Agency {status['agency_code']} is {status['agency_status']}: it cannot send or receive",
            agency_code=status["agency_code"],
            agency_status=status["agency_status"],
        )

    async def on_event(self, envelope: Envelope) -> None:
        """Drop what an event makes stale."""
        self.generation += 1
        if envelope.type == "agency.status_changed.v1":
            self.cache.clear()
        else:
            self.cache.invalidate(str(envelope.data.get("client_id", "")))
        log.debug("credential cache invalidated by %s", envelope.type)
