"""The gateway's own errors (the shared tree is in shared/errors.py; ``invalid_client`` and
``agency_inactive`` belong to the registry's contract, in shared/clients)."""

from __future__ import annotations

from shared.errors import (
    BadRequestError,
    DependencyUnavailableError,
    NotFoundError,
    TooManyRequestsError,
    UnauthorizedError,
)


class TokenRevokedError(UnauthorizedError):
    code, title = "token_revoked", "The client of this token has been revoked"


class TokenCertificateMismatchError(UnauthorizedError):
    code, title = "token_certificate_mismatch", "The token is bound to a certificate the request lacks"


class UnsupportedGrantTypeError(BadRequestError):
    code, title = "unsupported_grant_type", "Only the client_credentials grant is supported"


class InvalidScopeError(BadRequestError):
    code, title = "invalid_scope", "The requested scope is not granted to this client"


class RouteNotFoundError(NotFoundError):
    code, title = "route_not_found", "No API answers this path"


class RateLimitedError(TooManyRequestsError):
    code, title = "rate_limited", "Too many requests from this client for this kind of route"


class CircuitOpenError(DependencyUnavailableError):
    code, title = "circuit_open", "The service failed repeatedly; the gateway is not calling it for a moment"
