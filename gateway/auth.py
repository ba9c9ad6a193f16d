"""OAuth2 client credentials: the token endpoint, backed by the registry's credential check."""

from __future__ import annotations

import base64
import logging
import weakref
from typing import Annotated, Any

from fastapi import APIRouter, Form, Header, Request, Response
from pydantic import BaseModel

from gateway.errors import InvalidScopeError, UnsupportedGrantTypeError
from gateway.mtls import peer_thumbprint
from gateway.runtime import GatewayDep, GatewayRuntime
from shared.audit import audit_throttled
from shared.clients import InvalidClientError
from shared.errors import AuthThrottledError
from shared.observability import app_metrics
from shared.ratelimit import AuthThrottle

log = logging.getLogger("lienthong.gateway.auth")

router = APIRouter(tags=["auth"])


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    scope: str
    agency_code: str | None


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except ValueError as exc:  # not base64 (binascii.Error), not ASCII, not UTF-8 underneath
        raise InvalidClientError("The Basic credentials are not valid base64", error="invalid_client") from exc
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClientError("Basic credentials must be client_id:client_secret", error="invalid_client")
    return client_id, secret


_throttles: weakref.WeakKeyDictionary[GatewayRuntime, AuthThrottle] = weakref.WeakKeyDictionary()


def auth_throttle(gateway: GatewayRuntime) -> AuthThrottle:
    """The gateway's counter of failed authentications (one per gateway, made on first use): the
    token endpoint's and the web console's sign-in."""
    throttle = _throttles.get(gateway)
    if throttle is None:
        limits = gateway.settings.limits
        throttle = _throttles[gateway] = AuthThrottle(
            limits.auth_failures_per_client, limits.auth_failures_per_address, limits.auth_failure_window_seconds
        )
    return throttle


class JsonWebKey(BaseModel):
    kty: str = "OKP"
    crv: str = "Ed25519"
    x: str
    kid: str
    use: str = "sig"
    alg: str = "EdDSA"
    exp: int | None = None


class JsonWebKeySet(BaseModel):
    keys: list[JsonWebKey]


@router.get("/.well-known/jwks.json", response_model=JsonWebKeySet, response_model_exclude_none=True)
async def jwks(gateway: GatewayDep, response: Response) -> dict[str, Any]:
    """The public keys that verify the gateway's tokens (RFC 7517, OKP/Ed25519 keys of RFC 8037):
    the key that signs now, a staged next key, and the previous keys until their last token has
    expired (`exp`, seconds since the epoch: the key stops verifying then). A token names its key in
    its `kid` header (the key's RFC 7638 thumbprint). No authentication."""
    response.headers["Cache-Control"] = "public, max-age=60"
    return gateway.token_verifier.ring.jwks()


@router.post("/v1/auth/token", response_model=TokenResponse)
async def issue_token(
    gateway: GatewayDep,
    request: Request,
    grant_type: Annotated[str, Form()],
    client_id: Annotated[str | None, Form(max_length=64)] = None,
    client_secret: Annotated[str | None, Form(max_length=200)] = None,
    scope: Annotated[str | None, Form(max_length=500)] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> TokenResponse:
    """OAuth2 client credentials (form-encoded): exchange a client id and secret for an access token.

    Credentials go in the form (`client_id`, `client_secret`) or in HTTP Basic. With mutual TLS
    (RFC 8705), `client_id` alone over a connection that presents the client certificate registered
    for the client: the token is then bound to that certificate (`cnf.x5t#S256`) and usable only with
    it. `scope` may narrow the token to a subset of the client's scopes.
    """
    if grant_type != "client_credentials":
        raise UnsupportedGrantTypeError("Use grant_type=client_credentials", error="unsupported_grant_type")
    basic = _basic_credentials(authorization)
    if basic is not None:
        client_id, client_secret = basic
    # mutual TLS (RFC 8705): without a secret, the client certificate registered for the client
    certificate = None if client_secret else peer_thumbprint(request, gateway.settings.gateway)
    if not client_id or not (client_secret or certificate):
        raise InvalidClientError(
            "Send client_id and client_secret, or client_id over a connection presenting the client's registered"
            " certificate",
            error="invalid_client",
        )

    address = request.client.host if request.client else "unknown"
    throttle = auth_throttle(gateway)
    metrics = app_metrics(request.app)
    refused = throttle.refused(client_id, address)
    if refused is not None:
        what, wait = refused
        if metrics is not None:
            metrics.auth_throttled.labels(metrics.service, what).inc()
        log.warning(
            "token request refused: too many failed authentications of this %s (client %r, address %s); retry in %d s",
            what,
            client_id,
            address,
            wait,
        )
        await audit_throttled(  # the first per client id or address and window, confirmed by the broker
            gateway,
            gateway.broker,
            client_id=client_id,
            address=address,
            what=what,
            window_seconds=gateway.settings.limits.auth_failure_window_seconds,
        )
        raise AuthThrottledError(
            f"Too many failed authentications of this {what}; try again in {wait} s", retry_after=wait
        )
    succeeded = throttle.attempt(client_id, address)
    try:
        if certificate is not None:
            granted = await gateway.registry().verify_certificate(client_id, certificate)
        else:
            assert client_secret is not None
            granted = await gateway.registry().verify_credentials(client_id, client_secret)
    except InvalidClientError:
        if metrics is not None:
            metrics.auth_failures.labels(metrics.service).inc()
        raise
    succeeded()
    scopes = list(granted.scopes)
    if scope and scope.split():
        wanted = sorted(set(scope.split()))
        if not set(wanted) <= set(scopes):
            raise InvalidScopeError(
                f"Not granted: {sorted(set(wanted) - set(scopes))}", error="invalid_scope", granted=scopes
            )
        scopes = wanted
    confirmation = {"x5t#S256": certificate} if certificate is not None else None
    token = gateway.issuer.issue(granted.client_id, granted.agency_code, scopes, confirmation=confirmation)
    return TokenResponse(
        access_token=token,
        expires_in=gateway.issuer.ttl_seconds,
        scope=" ".join(scopes),
        agency_code=granted.agency_code,
    )
