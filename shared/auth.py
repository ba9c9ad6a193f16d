"""Authentication primitives: Ed25519-signed JWTs (the gateway signs, every service verifies),
argon2 hashing of client secrets, and the FastAPI dependencies that require a token and scopes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.errors import ForbiddenError, UnauthorizedError

ALGORITHM = "EdDSA"


class Scope:
    """The scopes an API client may hold."""

    SEND = "documents:send"
    RECEIVE = "documents:receive"
    SEARCH = "archive:search"
    REGISTRY_ADMIN = "registry:admin"
    AUDIT = "audit:read"
    STATS = "stats:read"
    INTERNAL = "internal"

    AGENCY_DEFAULT = (SEND, RECEIVE, SEARCH)
    ALL = (SEND, RECEIVE, SEARCH, REGISTRY_ADMIN, AUDIT, STATS)


def generate_keypair(directory: Path) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair as PEM files (private key mode 0600) unless both exist."""
    directory.mkdir(parents=True, exist_ok=True)
    private_path, public_path = directory / "jwt-private.pem", directory / "jwt-public.pem"
    if private_path.exists() and public_path.exists():
        return private_path, public_path
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # created with mode 0600: the key is never readable by others, not even for a moment
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public_path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private_path, public_path


@dataclass(frozen=True)
class Principal:
    """Who is calling: the API client, the agency it acts for (None for the bootstrap admin), its scopes."""

    client_id: str
    agency_code: str | None
    scopes: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return Scope.REGISTRY_ADMIN in self.scopes


class TokenIssuer:
    """Signs short-lived access tokens (the gateway only)."""

    def __init__(self, private_key_pem: bytes, issuer: str, audience: str, ttl_seconds: int) -> None:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the JWT private key must be an Ed25519 key")
        self._key = key
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds

    def issue(self, client_id: str, agency_code: str | None, scopes: list[str] | tuple[str, ...]) -> str:
        now = dt.datetime.now(dt.UTC)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": client_id,
            "agency": agency_code,
            "scope": " ".join(scopes),
            "iat": now,
            "nbf": now,
            "exp": now + dt.timedelta(seconds=self.ttl_seconds),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)


def load_issuer(path: Path, issuer: str, audience: str, ttl_seconds: int) -> TokenIssuer:
    """Load the JWT signing key; fails with a clear message when it is missing."""
    if not path.exists():
        raise RuntimeError(
            f"JWT private key {path} not found: run `lienthong keys generate` or set LIENTHONG_AUTH__PRIVATE_KEY_FILE"
        )
    return TokenIssuer(path.read_bytes(), issuer, audience, ttl_seconds)


class TokenVerifier:
    """Verifies access tokens with the gateway's public key (every service)."""

    def __init__(self, public_key_pem: bytes, issuer: str, audience: str) -> None:
        key = serialization.load_pem_public_key(public_key_pem)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the JWT public key must be an Ed25519 key")
        self._key = key
        self.issuer = issuer
        self.audience = audience
        self._verified: dict[str, tuple[float, Principal]] = {}

    def verify(self, token: str) -> Principal:
        """Return the principal of a valid token; raise UnauthorizedError otherwise.

        A verified token is remembered until it expires (a signature check per request is the
        largest cost of a small request)."""
        cached = self._verified.get(token)
        if cached is not None and cached[0] > time.time():
            return cached[1]
        principal, expires = self._verify(token)
        if len(self._verified) >= 10000:
            self._verified.clear()
        self._verified[token] = (expires, principal)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError as exc:
            raise UnauthorizedError("The access token has expired; request a new one at /v1/auth/token") from exc
        except jwt.PyJWTError as exc:
            raise UnauthorizedError(f"The access token is not valid: {exc}") from exc
        principal = Principal(
            client_id=str(claims["sub"]),
            agency_code=claims.get("agency"),
            scopes=frozenset(str(claims.get("scope", "")).split()),
        )
        return principal, float(claims["exp"])


_hasher = PasswordHasher()


def configure_secret_hashing(time_cost: int, memory_kib: int) -> None:
    """Set the argon2id cost of new hashes (existing hashes keep the cost they were made with)."""
    global _hasher
    _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)


def hash_secret(secret: str) -> str:
    """Hash a client secret with argon2id."""
    return _hasher.hash(secret)


def verify_secret(secret_hash: str, secret: str) -> bool:
    """Return whether ``secret`` matches ``secret_hash`` (constant-time inside argon2)."""
    try:
        return _hasher.verify(secret_hash, secret)
    except (VerificationError, InvalidHashError, ValueError):  # ValueError: a hash that is not ASCII
        return False


_verify_pool: ThreadPoolExecutor | None = None
_verify_slots: int = 2


def configure_secret_verification(concurrency: int) -> None:
    """Set how many argon2 verifications may run at once (``LIENTHONG_LIMITS__SECRET_VERIFY_CONCURRENCY``)."""
    global _verify_pool, _verify_slots
    if concurrency != _verify_slots or _verify_pool is None:
        old, _verify_pool, _verify_slots = _verify_pool, None, concurrency
        if old is not None:
            old.shutdown(wait=False)


def _pool() -> ThreadPoolExecutor:
    global _verify_pool
    if _verify_pool is None:
        _verify_pool = ThreadPoolExecutor(max_workers=_verify_slots, thread_name_prefix="argon2")
    return _verify_pool


async def verify_secret_async(secret_hash: str, secret: str) -> bool:
    """:func:`verify_secret` off the event loop, in a small pool of threads (argon2 releases the
    GIL): a burst of wrong secrets queues for the pool and never stalls other requests."""
    return await asyncio.get_running_loop().run_in_executor(_pool(), verify_secret, secret_hash, secret)


def new_secret() -> str:
    """Return a new random client secret (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


_bearer = HTTPBearer(auto_error=False, description="Access token from POST /v1/auth/token")


async def _principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise UnauthorizedError("Send an access token: Authorization: Bearer <token> (from /v1/auth/token)")
    from shared.runtime import AppRuntime, runtime_of

    return runtime_of(request, AppRuntime).token_verifier.verify(credentials.credentials)


PrincipalDep = Annotated[Principal, Depends(_principal)]


def require_scope(scope: str) -> Any:
    """Return a dependency that requires a valid token holding ``scope``."""

    async def dependency(principal: PrincipalDep) -> Principal:
        if scope not in principal.scopes:
            raise ForbiddenError(f"This call needs the scope '{scope}'", required_scope=scope)
        return principal

    return Depends(dependency)


def agency_of(principal: Principal) -> str:
    """Return the agency a principal acts for, refusing clients that act for none."""
    if principal.agency_code is None:
        raise ForbiddenError("This call is made by an agency; this client acts for no agency")
    return principal.agency_code
