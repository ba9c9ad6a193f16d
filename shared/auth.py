"""Authentication primitives: Ed25519-signed JWTs (the gateway signs, every service verifies),
argon2 hashing of client secrets, and the FastAPI dependencies that require a token and scopes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
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
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.errors import ForbiddenError, UnauthorizedError
from shared.keyring import (
    KeyRing,
    SigningKey,
    VerificationKey,
    load_public_key,
    private_pem,
    public_pem,
    thumbprint,
    write_atomically,
)

ALGORITHM = "EdDSA"
LEEWAY_SECONDS = 5  # clock skew allowed on exp, nbf and iat


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
    # the public key first: a verifier knows a key before it signs (shared/keyring.py)
    write_atomically(public_path, public_pem(key.public_key()))
    # created with mode 0600: the key is never readable by others, not even for a moment
    write_atomically(private_path, private_pem(key), 0o600)
    return private_path, public_path


@dataclass(frozen=True)
class Principal:
    """Who is calling: the API client, the agency it acts for (None for the bootstrap admin), its scopes."""

    client_id: str
    agency_code: str | None
    scopes: frozenset[str]
    certificate_thumbprint: str | None = None  # a certificate-bound token's cnf x5t#S256 (RFC 8705)

    @property
    def is_admin(self) -> bool:
        return Scope.REGISTRY_ADMIN in self.scopes


class UnknownKeyError(UnauthorizedError):
    """A token signed by a key no verifier knows (``kid`` not in the key ring)."""


class TokenIssuer:
    """Signs short-lived access tokens, with the signing key's id in their header (``kid``).

    Given a key file, the issuer reads it again when it changes (``lienthong keys rotate``): the
    gateway, and the services that sign their own calls, sign with the new key without a restart."""

    def __init__(
        self,
        private_key_pem: bytes | None,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        *,
        key_file: Path | None = None,
    ) -> None:
        self._signing = SigningKey(private_key_pem, key_file)
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds

    @property
    def kid(self) -> str:
        """The id of the key that signs now."""
        return self._signing.current()[0]

    def issue(
        self,
        client_id: str,
        agency_code: str | None,
        scopes: list[str] | tuple[str, ...],
        *,
        confirmation: dict[str, str] | None = None,
    ) -> str:
        """Sign a token; ``confirmation`` is the RFC 7800 ``cnf`` claim (a certificate-bound token:
        ``{"x5t#S256": …}``, RFC 8705)."""
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
        if confirmation is not None:
            claims["cnf"] = confirmation
        kid, key = self._signing.current()
        return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid})


def load_issuer(path: Path, issuer: str, audience: str, ttl_seconds: int) -> TokenIssuer:
    """Load the JWT signing key (read again when the file changes); fails with a clear message
    when it is missing."""
    if not path.exists():
        raise RuntimeError(
            f"JWT private key {path} not found: run `lienthong keys generate` or set LIENTHONG_AUTH__PRIVATE_KEY_FILE"
        )
    return TokenIssuer(None, issuer, audience, ttl_seconds, key_file=path)


class _FixedKey(KeyRing):
    """A ring of one key, given as PEM (tests, tools): no files."""

    def __init__(self, public_key_pem: bytes) -> None:
        key = load_public_key(public_key_pem)
        self.public_key_file = Path()
        self.ring_file = None
        self.fetch = None
        self.reload_seconds = self.jwks_max_age = 0.0
        self.version = 0
        self._fixed = VerificationKey(thumbprint(key), key, "current")

    def check(self, now_: bool = False) -> None:
        return None

    def reload(self) -> bool:
        return False

    async def refresh(self) -> bool:
        return False

    def refresh_if_stale(self) -> None:
        return None

    def keys(self) -> list[VerificationKey]:
        return [self._fixed]

    def get(self, kid: str) -> VerificationKey | None:
        return self._fixed if kid == self._fixed.kid else None


class TokenVerifier:
    """Verifies access tokens with the keys of the ring (every service and the gateway).

    Only EdDSA is accepted, whatever the token's header says (no ``none``, no HMAC keyed with a
    public key). A token names its key (``kid``); a token without one (signed before key ids
    existed) is tried against every key that verifies. An unknown ``kid`` makes the ring look at its
    files again (and, in :meth:`verify_async`, the gateway's JWKS), rate-limited."""

    def __init__(
        self, public_key_pem: bytes | None, issuer: str, audience: str, *, ring: KeyRing | None = None
    ) -> None:
        if ring is None:
            if public_key_pem is None:
                raise ValueError("give the public key's PEM or a key ring")
            ring = _FixedKey(public_key_pem)
        self.ring = ring
        self.issuer = issuer
        self.audience = audience
        self._verified: dict[str, tuple[float, Principal]] = {}
        self._version = ring.version

    def verify(self, token: str) -> Principal:
        """Return the principal of a valid token; raise UnauthorizedError otherwise.

        A verified token is remembered until it expires (a signature check per request is the
        largest cost of a small request), and forgotten when the set of keys changes."""
        self.ring.check()
        if self.ring.version != self._version:
            self._verified.clear()
            self._version = self.ring.version
        cached = self._verified.get(token)
        if cached is not None and cached[0] > time.time():
            return cached[1]
        principal, expires = self._verify(token)
        if len(self._verified) >= 10000:
            self._verified.clear()
        self._verified[token] = (expires, principal)
        return principal

    async def verify_async(self, token: str) -> Principal:
        """:meth:`verify`, fetching the gateway's JWKS when the token's key is unknown (services
        configured with ``LIENTHONG_AUTH__JWKS_URL``)."""
        self.ring.refresh_if_stale()
        try:
            return self.verify(token)
        except UnknownKeyError:
            if not await self.ring.refresh():
                raise
        return self.verify(token)

    def _keys_for(self, token: str) -> list[VerificationKey]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise UnauthorizedError(f"The access token is not valid: {exc}") from exc
        if header.get("alg") != ALGORITHM:
            raise UnauthorizedError(f"The access token is not valid: the algorithm must be {ALGORITHM}")
        kid = header.get("kid")
        if kid is None:
            return self.ring.keys()
        if not isinstance(kid, str):
            raise UnauthorizedError("The access token is not valid: its kid is not a string")
        key = self.ring.get(kid)
        if key is None:  # the files may have changed within the last second (a stat, no read)
            self.ring.check(now_=True)
            key = self.ring.get(kid)
        if key is None and self.ring.reload():
            key = self.ring.get(kid)
        if key is None:
            raise UnknownKeyError(
                "The access token is not valid: it is signed by a key this system does not know (or no longer"
                " trusts); request a new one at /v1/auth/token"
            )
        return [key]

    def _verify(self, token: str) -> tuple[Principal, float]:
        keys = self._keys_for(token)
        claims: dict[str, Any] | None = None
        for candidate in keys:
            try:
                claims = jwt.decode(
                    token,
                    candidate.key,
                    algorithms=[ALGORITHM],
                    issuer=self.issuer,
                    audience=self.audience,
                    options={"require": ["exp", "iat", "sub", "iss", "aud"]},
                    leeway=LEEWAY_SECONDS,
                )
                break
            except jwt.InvalidSignatureError as exc:
                if candidate is keys[-1]:
                    raise UnauthorizedError(f"The access token is not valid: {exc}") from exc
            except jwt.ExpiredSignatureError as exc:
                raise UnauthorizedError("The access token has expired; request a new one at /v1/auth/token") from exc
            except jwt.PyJWTError as exc:
                raise UnauthorizedError(f"The access token is not valid: {exc}") from exc
        if claims is None:
            raise UnauthorizedError("The access token is not valid: no key verifies it")
        principal = Principal(
            client_id=str(claims["sub"]),
            agency_code=claims.get("agency"),
            scopes=frozenset(str(claims.get("scope", "")).split()),
            certificate_thumbprint=_certificate_thumbprint(claims),
        )
        return principal, float(claims["exp"])


def _certificate_thumbprint(claims: dict[str, Any]) -> str | None:
    cnf = claims.get("cnf")
    if isinstance(cnf, dict) and isinstance(cnf.get("x5t#S256"), str):
        return str(cnf["x5t#S256"])
    return None


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

    return await runtime_of(request, AppRuntime).token_verifier.verify_async(credentials.credentials)


PrincipalDep = Annotated[Principal, Depends(_principal)]


def check_scope(principal: Principal, scope: str) -> Principal:
    """The principal, when its token holds ``scope``; 403 otherwise."""
    if scope not in principal.scopes:
        raise ForbiddenError(f"This call needs the scope '{scope}'", required_scope=scope)
    return principal


def require_scope(scope: str) -> Any:
    """Return a dependency that requires a valid token holding ``scope``."""

    async def dependency(principal: PrincipalDep) -> Principal:
        return check_scope(principal, scope)

    return Depends(dependency)


def agency_of(principal: Principal) -> str:
    """Return the agency a principal acts for, refusing clients that act for none."""
    if principal.agency_code is None:
        raise ForbiddenError("This call is made by an agency; this client acts for no agency")
    return principal.agency_code
