"""OAuth2 client credentials: the token endpoint, backed by the registry's credential check."""

from __future__ import annotations

import base64
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Form, Header, Request
from pydantic import BaseModel

from shared.auth import Scope, TokenIssuer
from shared.errors import BadRequestError, DependencyUnavailableError, ForbiddenError, UnauthorizedError

router = APIRouter(tags=["auth"])


class InvalidClientError(UnauthorizedError):
    code, title = "invalid_client", "Client authentication failed"


class AgencyInactiveError(ForbiddenError):
    code, title = "agency_inactive", "The agency of this client is not active"


class UnsupportedGrantTypeError(BadRequestError):
    code, title = "unsupported_grant_type", "Only the client_credentials grant is supported"


class InvalidScopeError(BadRequestError):
    code, title = "invalid_scope", "The requested scope is not granted to this client"


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


@router.post("/v1/auth/token", response_model=TokenResponse)
async def issue_token(
    request: Request,
    grant_type: Annotated[str, Form()],
    client_id: Annotated[str | None, Form(max_length=64)] = None,
    client_secret: Annotated[str | None, Form(max_length=200)] = None,
    scope: Annotated[str | None, Form(max_length=500)] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> TokenResponse:
    """OAuth2 client credentials (form-encoded): exchange a client id and secret for an access token.

    Credentials go in the form (`client_id`, `client_secret`) or in HTTP Basic. `scope` may narrow
    the token to a subset of the client's scopes.
    """
    if grant_type != "client_credentials":
        raise UnsupportedGrantTypeError("Use grant_type=client_credentials", error="unsupported_grant_type")
    basic = _basic_credentials(authorization)
    if basic is not None:
        client_id, client_secret = basic
    if not client_id or not client_secret:
        raise InvalidClientError("Send client_id and client_secret", error="invalid_client")

    issuer: TokenIssuer = request.app.state.token_issuer
    registry: httpx.AsyncClient = request.app.state.clients["registry"]
    internal = issuer.issue("gateway", None, [Scope.INTERNAL])
    try:
        response = await registry.post(
            "/internal/v1/credentials/verify",
            json={"client_id": client_id, "client_secret": client_secret},
            headers={"Authorization": f"Bearer {internal}"},
        )
    except httpx.HTTPError as exc:
        raise DependencyUnavailableError(f"The registry does not answer ({exc}); retry later") from exc
    if response.status_code == 403:  # valid credentials of an agency that is not active
        body: dict[str, Any] = response.json()
        raise AgencyInactiveError(
            str(body.get("detail")), error="unauthorized_client", agency_status=body.get("agency_status")
        )
    if response.status_code in (400, 401, 404, 422):
        raise InvalidClientError("Unknown client, wrong or expired secret, or revoked client", error="invalid_client")
    if response.status_code != 200:
        raise DependencyUnavailableError(f"The registry answered {response.status_code}; retry later")
    granted = response.json()
    scopes: list[str] = list(granted["scopes"])
    if scope and scope.split():
        wanted = sorted(set(scope.split()))
        if not set(wanted) <= set(scopes):
            raise InvalidScopeError(
                f"Not granted: {sorted(set(wanted) - set(scopes))}", error="invalid_scope", granted=scopes
            )
        scopes = wanted
    token = issuer.issue(granted["client_id"], granted["agency_code"], scopes)
    return TokenResponse(
        access_token=token,
        expires_in=issuer.ttl_seconds,
        scope=" ".join(scopes),
        agency_code=granted["agency_code"],
    )
