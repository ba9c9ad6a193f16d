"""The typed client of the registry's contract, used by the exchange and the gateway.

The registry answers who an agency is, where a document addressed to codes and groups goes, and
whether a client's credentials and tokens are to be honoured. Its answers are cached for a while
(:class:`DirectoryCache`) and dropped at once by the registry's events (:data:`DIRECTORY_EVENTS`).
The client is handed the ``Authorization`` header to send when it is built: the caller's token
(the exchange acts for the agency) or an internal token (the gateway).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from shared.cache import TTLCache
from shared.errors import AgencyInactiveError, DependencyUnavailableError, UnauthorizedError
from shared.messaging import Envelope

# Events after which a cached directory answer may be wrong.
DIRECTORY_EVENTS = ("agency.created.v1", "agency.updated.v1", "agency.status_changed.v1", "group.updated.v1")
# Events after which a cached client status may be wrong.
CREDENTIAL_EVENTS = ("client.revoked.v1", "client.rotated.v1", "agency.status_changed.v1", "user.updated.v1")


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AgencyInfo(_Answer):
    """An agency as the other services need it (its contact details: the edXML From of a packet)."""

    code: str
    name: str
    status: Literal["active", "suspended", "retired"]
    new_code: str | None = None
    email: str | None = None
    phone: str | None = None
    address: str | None = None
    website: str | None = None


class ResolvedAgency(_Answer):
    """A recipient a document goes to, and why (`code`, `group:<name>`, `successor:<retired code>`),
    with its contact details (the edXML To of a packet)."""

    code: str
    name: str
    level: str
    via: str
    email: str | None = None
    phone: str | None = None
    address: str | None = None
    website: str | None = None


class Redirect(_Answer):
    from_code: str
    to_code: str


class InactiveRecipient(_Answer):
    code: str
    status: Literal["suspended", "retired"]


class Resolution(_Answer):
    """The agencies a document addressed to codes and groups goes to, and what stands in the way."""

    recipients: list[ResolvedAgency]
    redirected: list[Redirect]
    unknown_codes: list[str]
    unknown_groups: list[str]
    inactive: list[InactiveRecipient]


class ClientStatus(_Answer):
    """Whether a client's tokens are still to be honoured (not revoked, agency active)."""

    client_id: str
    active: bool
    reason: str | None
    agency_code: str | None
    agency_status: str | None
    scopes: list[str] | None = None  # a console user's: what its role holds now (None: not checked)


class GrantedClient(_Answer):
    """A client whose id and secret were right: what its token may carry."""

    client_id: str
    agency_code: str | None
    scopes: list[str] = Field(default_factory=list)


class SignedInUser(_Answer):
    """A console user whose name and password were right: what the console's token may carry."""

    client_id: str
    username: str
    display_name: str
    agency_code: str
    role: str
    scopes: list[str] = Field(default_factory=list)


HUB_ENTRY_EVENT = "hub.entry_forwarded.v1"
"""A feed entry of an agency whose endpoint is ``hub``, forwarded by the exchange's dispatcher to
the hub connector's work queue (the connector sees no other entry)."""


class DeliveryEndpoint(_Answer):
    """How an agency receives: ``pull`` (its feed only), ``push`` (a webhook, HMAC-signed with the
    secret), ``amqp`` (a queue on the provincial bus) or ``hub`` (outside the province: the hub
    connector forwards across the national hub)."""

    agency_code: str
    mode: Literal["pull", "push", "amqp", "hub"]
    webhook_url: str | None = None
    webhook_secret: str | None = None
    amqp_queue: str | None = None


class RegisteredCertificate(_Answer):
    """A certificate the registry lists for an agency: its seal's (``seal``) or a signer's (``signer``)."""

    sha256: str
    kind: Literal["seal", "signer"]
    subject: str


class InvalidClientError(UnauthorizedError):
    """Unknown client, wrong or expired secret, or revoked client: the registry does not say which."""

    code, title = "invalid_client", "Client authentication failed"


class DirectoryCache:
    """Registry answers kept for ``ttl`` seconds, emptied by any directory event."""

    def __init__(self, ttl: float = 60.0) -> None:
        self.agencies: TTLCache[str, AgencyInfo] = TTLCache(ttl)
        self.resolutions: TTLCache[tuple[tuple[str, ...], tuple[str, ...]], Resolution] = TTLCache(ttl, 1000)
        self.endpoints: TTLCache[str, DeliveryEndpoint] = TTLCache(ttl)
        self.certificates: TTLCache[str, list[RegisteredCertificate]] = TTLCache(ttl)

    async def on_event(self, _envelope: Envelope) -> None:
        """Drop every cached answer (listen to :data:`DIRECTORY_EVENTS`)."""
        self.agencies.clear()
        self.resolutions.clear()
        self.endpoints.clear()
        self.certificates.clear()


class RegistryClient:
    """Calls the registry with the ``Authorization`` header ``authorization()`` returns."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        authorization: Callable[[], str],
        *,
        cache: DirectoryCache | None = None,
    ) -> None:
        self.http = http
        self.authorization = authorization
        self.cache = cache

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self.http.request(method, path, headers={"Authorization": self.authorization()}, **kwargs)
        except httpx.HTTPError as exc:
            raise DependencyUnavailableError(f"The registry does not answer ({exc}); retry later") from exc

    @staticmethod
    def _unexpected(response: httpx.Response, what: str) -> DependencyUnavailableError:
        return DependencyUnavailableError(f"The registry answered {response.status_code} to {what}; retry later")

    async def agency(self, code: str) -> AgencyInfo | None:
        """Return an agency by code, either form (None when unknown)."""
        if self.cache is not None and (cached := self.cache.agencies.get(code)) is not None:
            return cached
        response = await self._call("GET", f"/v1/agencies/{code}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._unexpected(response, "an agency lookup")
        info = AgencyInfo.model_validate(response.json())
        if self.cache is not None:
            self.cache.agencies.set(code, info)
        return info

    async def resolve(self, codes: list[str], groups: list[str]) -> Resolution:
        """Resolve addressees to active agencies (retired ones redirected, groups expanded)."""
        key = (tuple(sorted(codes)), tuple(sorted(groups)))
        if self.cache is not None and (cached := self.cache.resolutions.get(key)) is not None:
            return cached
        response = await self._call("POST", "/v1/agencies/resolve", json={"codes": codes, "groups": groups})
        if response.status_code != 200:
            raise self._unexpected(response, "a recipient resolution")
        resolution = Resolution.model_validate(response.json())
        if self.cache is not None:
            self.cache.resolutions.set(key, resolution)
        return resolution

    def known_delivery_endpoint(self, code: str) -> DeliveryEndpoint | None:
        """The agency's endpoint if the cache holds it, without asking the registry (None: not cached)."""
        return self.cache.endpoints.get(code) if self.cache is not None else None

    async def delivery_endpoint(self, code: str) -> DeliveryEndpoint | None:
        """Return how an agency receives, webhook secret included (internal call; None: unknown)."""
        if self.cache is not None and (cached := self.cache.endpoints.get(code)) is not None:
            return cached
        response = await self._call("GET", f"/internal/v1/agencies/{code}/endpoint")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._unexpected(response, "a delivery endpoint lookup")
        endpoint = DeliveryEndpoint.model_validate(response.json())
        if self.cache is not None:
            self.cache.endpoints.set(code, endpoint)
        return endpoint

    async def agency_certificates(self, code: str) -> list[RegisteredCertificate] | None:
        """Return the certificates the registry lists for an agency (None when the agency is unknown)."""
        if self.cache is not None and (cached := self.cache.certificates.get(code)) is not None:
            return cached
        response = await self._call("GET", f"/v1/agencies/{code}/certificates")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._unexpected(response, "a certificate lookup")
        certificates = [RegisteredCertificate.model_validate(item) for item in response.json()]
        if self.cache is not None:
            self.cache.certificates.set(code, certificates)
        return certificates

    async def client_status(self, client_id: str) -> ClientStatus:
        """Return whether a client's tokens are to be honoured (internal call)."""
        response = await self._call("GET", f"/internal/v1/clients/{client_id}/status")
        if response.status_code != 200:
            raise self._unexpected(response, "a client status check")
        return ClientStatus.model_validate(response.json())

    async def verify_credentials(self, client_id: str, client_secret: str) -> GrantedClient:
        """Check a client id and secret (internal call).

        Raises InvalidClientError for wrong credentials, AgencyInactiveError when they are
        right but the agency is suspended or retired."""
        response = await self._call(
            "POST", "/internal/v1/credentials/verify", json={"client_id": client_id, "client_secret": client_secret}
        )
        if response.status_code == 403:  # valid credentials of an agency that is not active
            body: dict[str, Any] = response.json()
            raise AgencyInactiveError(
                str(body.get("detail")), error="unauthorized_client", agency_status=body.get("agency_status")
            )
        if response.status_code in (400, 401, 404, 422):
            raise InvalidClientError(
                "Unknown client, wrong or expired secret, or revoked client", error="invalid_client"
            )
        if response.status_code != 200:
            raise self._unexpected(response, "a credential check")
        return GrantedClient.model_validate(response.json())

    async def verify_certificate(self, client_id: str, thumbprint: str) -> GrantedClient:
        """Check that a TLS client certificate (its x5t#S256) identifies a client (internal call,
        mutual TLS at the token endpoint); errors as :meth:`verify_credentials`."""
        response = await self._call(
            "POST", "/internal/v1/credentials/certificate", json={"client_id": client_id, "thumbprint": thumbprint}
        )
        if response.status_code == 403:
            body: dict[str, Any] = response.json()
            raise AgencyInactiveError(
                str(body.get("detail")), error="unauthorized_client", agency_status=body.get("agency_status")
            )
        if response.status_code in (400, 401, 404, 422):
            raise InvalidClientError(
                "Unknown client, or a certificate not registered for it, expired, or revoked", error="invalid_client"
            )
        if response.status_code != 200:
            raise self._unexpected(response, "a certificate check")
        return GrantedClient.model_validate(response.json())

    async def sign_in(self, username: str, password: str) -> SignedInUser:
        """Check a console user's name and password (internal call); errors as :meth:`verify_credentials`
        (``InvalidClientError`` whatever is wrong, ``AgencyInactiveError`` for a suspended agency)."""
        response = await self._call(
            "POST", "/internal/v1/users/sign-in", json={"username": username, "password": password}
        )
        if response.status_code == 403:
            body: dict[str, Any] = response.json()
            raise AgencyInactiveError(str(body.get("detail")), agency_status=body.get("agency_status"))
        if response.status_code in (400, 401, 404, 422):
            raise InvalidClientError("Wrong user name or password", error="invalid_grant")
        if response.status_code != 200:
            raise self._unexpected(response, "a sign-in check")
        return SignedInUser.model_validate(response.json())

    async def subtree(self, code: str, *, limit: int = 5000) -> list[str] | None:
        """Return ``code`` and the codes of every agency below it, at any depth (None: unknown
        agency); at most ``limit`` codes."""
        root = await self.agency(code)
        if root is None:
            return None
        codes = [root.code]
        cursor: str | None = None
        while len(codes) < limit:
            params: dict[str, Any] = {"subtree": root.code, "limit": 500}
            if cursor:
                params["cursor"] = cursor
            response = await self._call("GET", "/v1/agencies", params=params)
            if response.status_code != 200:
                raise self._unexpected(response, "a subtree listing")
            page: dict[str, Any] = response.json()
            codes += [str(item["code"]) for item in page.get("items", [])]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return codes[:limit]
