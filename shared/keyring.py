"""The gateway's signing keys on disk, their key ids, and the key ring every verifier reads.

A key id (``kid``) is the RFC 7638 JWK thumbprint of the Ed25519 public key: the base64url SHA-256
of ``{"crv":"Ed25519","kty":"OKP","x":"…"}``. It is computed from the key, never stored apart from it,
so a key id cannot name another key.

The files (one directory by default, ``var/keys``; docs/security.md, "Keys and rotation"):

- ``jwt-private.pem`` (``LIENTHONG_AUTH__PRIVATE_KEY_FILE``): the key that signs, as before;
- ``jwt-public.pem`` (``LIENTHONG_AUTH__PUBLIC_KEY_FILE``): its public key, as before;
- ``jwt-keyring.json`` (``LIENTHONG_AUTH__KEYRING_FILE``, next to the public key by default): the
  other public keys that still verify, a JWKS document whose keys carry ``status`` — ``previous``
  (signed before the last rotation; ``exp``: when its last token has expired, it stops verifying
  then) or ``next`` (staged: verifies already, signs after the next rotation);
- ``jwt-next.pem``: the staged private key, next to ``jwt-private.pem`` (``lienthong keys stage``).

Every file is replaced atomically (written aside, then renamed), in an order that never lets a key
sign before the verifiers can know it: the ring first, then the public key, the private key last.
Verifiers look at the files' status at most once a second (and at once when a token names a key
they do not hold), signers at every signature; both read the files again when they changed: a
rotation reaches every process that reads the files without a restart.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.blobs import write_durably

log = logging.getLogger("lienthong.keys")

PRIVATE_KEY_NAME = "jwt-private.pem"
PUBLIC_KEY_NAME = "jwt-public.pem"
RING_FILE_NAME = "jwt-keyring.json"
NEXT_KEY_NAME = "jwt-next.pem"

FILE_CHECK_SECONDS = 1.0  # how often a signer or verifier looks at its files' status

KeyStatus = Literal["current", "previous", "next", "remote"]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def thumbprint(key: Ed25519PublicKey) -> str:
    """The RFC 7638 JWK thumbprint of a public key (SHA-256, base64url): its key id."""
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": _b64url(_raw(key))}, separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode()).digest())


def public_jwk(key: Ed25519PublicKey, **extra: Any) -> dict[str, Any]:
    """The public JWK (RFC 8037, OKP/Ed25519) of a key, with its key id and any ``extra`` members."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _b64url(_raw(key)),
        "kid": thumbprint(key),
        "use": "sig",
        "alg": "EdDSA",
        **extra,
    }


def key_from_jwk(jwk: Any) -> Ed25519PublicKey:
    """The Ed25519 public key of a JWK; ValueError for anything else (another type, a private key)."""
    if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise ValueError("not an OKP/Ed25519 JWK")
    if "d" in jwk:
        raise ValueError("a private JWK has no place in a key ring")
    x = jwk.get("x")
    if not isinstance(x, str):
        raise ValueError("the JWK has no x")
    raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the JWT private key must be an Ed25519 key")
    return key


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the JWT public key must be an Ed25519 key")
    return key


def private_pem(key: Ed25519PrivateKey) -> bytes:
    encoding, private_format = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(encoding, private_format, serialization.NoEncryption())


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` at once: a reader sees the old file or the new, never a part,
    and a power loss keeps the new one (shared.blobs.write_durably). The file is created with
    ``mode`` (0600 for a private key: never readable by others)."""
    write_durably(path, data, mode=mode)


def _signature(paths: tuple[Path | None, ...]) -> tuple[tuple[int, int, int] | None, ...]:
    """What changes when one of the files is replaced (followed through symlinks: a Kubernetes
    Secret volume swaps a symlink)."""
    result: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            status = path.stat() if path is not None else None
        except OSError:
            status = None
        result.append(None if status is None else (status.st_mtime_ns, status.st_size, status.st_ino))
    return tuple(result)


# --- the ring file -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RingEntry:
    """A public key of the ring file: a previous key (verifies until ``expires_at``) or a staged one."""

    key: Ed25519PublicKey
    status: Literal["previous", "next"]
    expires_at: float | None = None

    @property
    def kid(self) -> str:
        return thumbprint(self.key)

    def to_jwk(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"status": self.status}
        if self.expires_at is not None:
            extra["exp"] = int(self.expires_at)
        return public_jwk(self.key, **extra)


def read_ring(path: Path | None) -> list[RingEntry]:
    """The entries of a ring file (none when it does not exist); a malformed entry is skipped with a
    warning, a malformed file is an error (a half-written ring never exists: writes are atomic)."""
    if path is None or not path.exists():
        return []
    document = json.loads(path.read_text(encoding="utf-8"))
    entries: list[RingEntry] = []
    for jwk in document.get("keys", []):
        try:
            key = key_from_jwk(jwk)
            status = jwk.get("status", "previous")
            if status not in ("previous", "next"):
                raise ValueError(f"unknown status {status!r}")
            expires = jwk.get("exp")
            if expires is not None and not isinstance(expires, int | float):
                raise ValueError("exp is not a number")
            entries.append(RingEntry(key, status, float(expires) if expires is not None else None))
        except ValueError as exc:
            kid = jwk.get("kid") if isinstance(jwk, dict) else "?"
            log.warning("key ring %s: entry %s skipped: %s", path, kid, exc)
    return entries


def write_ring(path: Path, entries: list[RingEntry]) -> None:
    body = json.dumps({"keys": [entry.to_jwk() for entry in entries]}, indent=2) + "\n"
    write_atomically(path, body.encode())


# --- what verifies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class VerificationKey:
    kid: str
    key: Ed25519PublicKey
    status: KeyStatus
    expires_at: float | None = None

    def active(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at

    def to_jwk(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.expires_at is not None:
            extra["exp"] = int(self.expires_at)
        return public_jwk(self.key, **extra)


JwksFetcher = Callable[[], Awaitable[dict[str, Any]]]


def http_jwks_fetcher(url: str, timeout: float = 3.0) -> JwksFetcher:
    """Fetch a JWKS document over HTTP (the gateway's ``/.well-known/jwks.json``)."""

    async def fetch() -> dict[str, Any]:
        import httpx

        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(url)
            response.raise_for_status()
            document: dict[str, Any] = response.json()
            return document

    return fetch


@dataclass
class KeyRing:
    """The public keys that verify tokens in one process.

    Read from the public key file (the current key), the ring file (previous and staged keys), and,
    when ``fetch`` is given (services in the production topology: ``LIENTHONG_AUTH__JWKS_URL``), the
    gateway's JWKS. The files are looked at once a second and read again when they changed; a key id
    nobody knows makes :meth:`reload` read them at once and :meth:`refresh` fetch the JWKS too, each
    at most once per ``reload_seconds`` (a stream of made-up key ids costs nothing more). The JWKS is
    fetched again in the background when older than ``jwks_max_age``. A previous key stops verifying
    at its ``exp`` whether or not the files changed.
    """

    public_key_file: Path
    ring_file: Path | None = None
    fetch: JwksFetcher | None = None
    reload_seconds: float = 5.0
    jwks_max_age: float = 300.0
    version: int = 0  # bumped whenever the set of keys changes (verifiers drop what they cached)
    _local: dict[str, VerificationKey] = field(default_factory=dict)
    _remote: dict[str, VerificationKey] = field(default_factory=dict)
    _files: tuple[tuple[int, int, int] | None, ...] = ()
    _checked_at: float = float("-inf")
    _reloaded_at: float = float("-inf")
    _fetched_at: float = float("-inf")
    _fetching: asyncio.Task[bool] | None = None

    def __post_init__(self) -> None:
        self._read_files()

    @classmethod
    def from_files(cls, public_key_file: Path, ring_file: Path | None = None, **options: Any) -> KeyRing:
        if not public_key_file.exists():
            raise RuntimeError(
                f"JWT public key {public_key_file} not found: run `lienthong keys generate` "
                "or set LIENTHONG_AUTH__PUBLIC_KEY_FILE"
            )
        return cls(public_key_file, ring_file, **options)

    # the files

    def _paths(self) -> tuple[Path | None, ...]:
        return (self.public_key_file, self.ring_file)

    def _read_files(self) -> None:
        files = _signature(self._paths())
        try:
            current = load_public_key(self.public_key_file.read_bytes())
            entries = read_ring(self.ring_file)
        except (OSError, ValueError) as exc:
            if not self._local:
                raise
            log.error("key files unreadable (%s): the keys read before stay in use", exc)
            self._files = files
            return
        keys = {entry.kid: VerificationKey(entry.kid, entry.key, entry.status, entry.expires_at) for entry in entries}
        kid = thumbprint(current)
        keys[kid] = VerificationKey(kid, current, "current")
        changed = keys.keys() != self._local.keys() or any(
            keys[k].expires_at != self._local[k].expires_at for k in keys
        )
        self._local, self._files = keys, files
        if changed:
            self.version += 1
            log.info("key ring read: %s", ", ".join(f"{k} ({v.status})" for k, v in keys.items()))

    def check(self, now_: bool = False) -> None:
        """Read the files again if they changed (looked at once a second at most, or ``now_``)."""
        now = time.monotonic()
        if not now_ and now - self._checked_at < FILE_CHECK_SECONDS:
            return
        self._checked_at = now
        if _signature(self._paths()) != self._files:
            self._read_files()

    def reload(self) -> bool:
        """Read the files now (an unknown key id), at most once per ``reload_seconds``; return
        whether they were read."""
        now = time.monotonic()
        if now - self._reloaded_at < self.reload_seconds:
            return False
        self._reloaded_at = self._checked_at = now
        self._read_files()
        return True

    # the gateway's JWKS

    async def refresh(self) -> bool:
        """Read the files and fetch the JWKS now (an unknown key id), at most once per
        ``reload_seconds``; return whether anything was looked at again."""
        reloaded = self.reload()
        if self.fetch is None:
            return reloaded
        return await self._fetch_once() or reloaded

    async def _fetch_once(self) -> bool:
        if self._fetching is not None:  # one fetch at a time: the others wait for it
            return await asyncio.shield(self._fetching)
        if time.monotonic() - self._fetched_at < self.reload_seconds:
            return False
        self._fetching = asyncio.create_task(self._fetch())
        try:
            return await asyncio.shield(self._fetching)
        finally:
            self._fetching = None

    async def _fetch(self) -> bool:
        assert self.fetch is not None
        self._fetched_at = time.monotonic()
        try:
            document = await self.fetch()
        except Exception as exc:  # the gateway down: the keys fetched before stay in use
            log.warning("JWKS not fetched (%s): the keys fetched before stay in use", exc)
            return False
        keys: dict[str, VerificationKey] = {}
        for jwk in document.get("keys", []) if isinstance(document, dict) else []:
            try:
                key = key_from_jwk(jwk)
            except ValueError:
                continue
            expires = jwk.get("exp")
            until = float(expires) if isinstance(expires, int | float) else None
            kid = thumbprint(key)
            keys[kid] = VerificationKey(kid, key, "remote", until)
        if keys.keys() != self._remote.keys():
            self.version += 1
            log.info("JWKS fetched: %s", ", ".join(keys))
        self._remote = keys
        return True

    def refresh_if_stale(self) -> None:
        """Fetch the JWKS in the background when it is older than ``jwks_max_age``."""
        if self.fetch is None or self._fetching is not None:
            return
        if time.monotonic() - self._fetched_at < self.jwks_max_age:
            return
        self._fetching = task = asyncio.get_running_loop().create_task(self._fetch())
        task.add_done_callback(lambda _t: setattr(self, "_fetching", None))

    # lookups

    def keys(self) -> list[VerificationKey]:
        """Every key that verifies now: the current key first, then the staged and previous ones."""
        self.check()
        now = time.time()
        order = {"current": 0, "next": 1, "previous": 2, "remote": 3}
        found = {**self._remote, **self._local}
        return sorted((k for k in found.values() if k.active(now)), key=lambda k: order[k.status])

    def get(self, kid: str) -> VerificationKey | None:
        self.check()
        key = self._local.get(kid) or self._remote.get(kid)
        return key if key is not None and key.active(time.time()) else None

    def jwks(self) -> dict[str, Any]:
        """The public JWKS document of every key that verifies (``exp`` on the previous ones)."""
        return {"keys": [key.to_jwk() for key in self.keys()]}


# --- what signs --------------------------------------------------------------------------------


class SigningKey:
    """The private key that signs, read from its file and read again when the file changes
    (``lienthong keys rotate``); or a fixed key given as PEM."""

    def __init__(self, pem: bytes | None = None, path: Path | None = None) -> None:
        if (pem is None) == (path is None):
            raise ValueError("give the key's PEM or its file")
        self.path = path
        self._files: tuple[tuple[int, int, int] | None, ...] = ()
        self._set(load_private_key(pem if pem is not None else self._read()))

    def _read(self) -> bytes:
        assert self.path is not None
        self._files = _signature((self.path,))
        return self.path.read_bytes()

    def _set(self, key: Ed25519PrivateKey) -> None:
        self.key = key
        self.kid = thumbprint(key.public_key())

    def current(self) -> tuple[str, Ed25519PrivateKey]:
        """The key id and key that sign now. The file's status is looked at on every call (a few
        microseconds: signing is rarer than verifying), so that a rotated key signs at once."""
        if self.path is not None and _signature((self.path,)) != self._files:
            try:
                self._set(load_private_key(self._read()))
                log.info("signing key read again from %s: kid %s", self.path, self.kid)
            except (OSError, ValueError) as exc:
                log.error("signing key %s unreadable (%s): the key read before still signs", self.path, exc)
        return self.kid, self.key


# --- rotation (lienthong keys …) ---------------------------------------------------------------


@dataclass(frozen=True)
class KeyFiles:
    """Where one deployment keeps its keys."""

    private: Path
    public: Path
    ring: Path
    next: Path

    @classmethod
    def in_directory(cls, directory: Path) -> KeyFiles:
        names = (PRIVATE_KEY_NAME, PUBLIC_KEY_NAME, RING_FILE_NAME, NEXT_KEY_NAME)
        private, public, ring, staged = (directory / name for name in names)
        return cls(private, public, ring, staged)

    def current_private(self) -> Ed25519PrivateKey:
        if not self.private.exists():
            raise RuntimeError(f"no signing key {self.private}: run `lienthong keys generate` first")
        return load_private_key(self.private.read_bytes())


def _live(entries: list[RingEntry], now: float) -> list[RingEntry]:
    return [e for e in entries if e.expires_at is None or e.expires_at > now]


def stage(files: KeyFiles) -> str:
    """Make the next key now (kept if one is staged already) and publish its public key in the ring:
    every verifier knows it before it signs. Return its key id."""
    current = files.current_private()
    if files.next.exists():
        key = load_private_key(files.next.read_bytes())
    else:
        key = Ed25519PrivateKey.generate()
        write_atomically(files.next, private_pem(key), 0o600)
    kid = thumbprint(key.public_key())
    entries = [e for e in read_ring(files.ring) if e.kid not in (kid, thumbprint(current.public_key()))]
    write_ring(files.ring, [*_live(entries, time.time()), RingEntry(key.public_key(), "next")])
    return kid


@dataclass(frozen=True)
class Rotation:
    new_kid: str
    previous_kid: str
    previous_verifies_until: float | None  # None: retired at once
    pruned: list[str]


def rotate(files: KeyFiles, overlap_seconds: float, *, retire_previous: bool = False) -> Rotation:
    """Make the staged key (or a new one) the signer; the previous one verifies ``overlap_seconds``
    more (its last token has expired by then), or not at all with ``retire_previous`` (a key that
    leaked). Expired previous keys are pruned from the ring.

    Order of the writes: the ring (both keys verify), the public key, the private key (the new key
    signs), the ring again (without the staged entry): at no moment can a token be signed by a key
    that the files do not list."""
    now = time.time()
    previous = files.current_private()
    previous_kid = thumbprint(previous.public_key())
    new = load_private_key(files.next.read_bytes()) if files.next.exists() else Ed25519PrivateKey.generate()
    new_kid = thumbprint(new.public_key())
    if new_kid == previous_kid:
        raise RuntimeError("the staged key is the current key already")
    entries = [e for e in read_ring(files.ring) if e.kid not in (new_kid, previous_kid)]
    live = _live(entries, now)
    pruned = [e.kid for e in entries if e not in live]
    until = None if retire_previous else now + overlap_seconds
    previous_entry = RingEntry(previous.public_key(), "previous", until or now + overlap_seconds)
    # until the new key signs, the previous one verifies (even a leaked one: its retirement comes
    # with the last write, once nothing signs with it any more)
    write_ring(files.ring, [*live, previous_entry, RingEntry(new.public_key(), "next")])
    write_atomically(files.public, public_pem(new.public_key()))
    write_atomically(files.private, private_pem(new), 0o600)
    write_ring(files.ring, [*live, *([previous_entry] if until is not None else [])])
    files.next.unlink(missing_ok=True)
    return Rotation(new_kid, previous_kid, until, pruned)


def prune(files: KeyFiles) -> list[str]:
    """Remove the previous keys whose tokens have all expired from the ring; return their key ids."""
    entries = read_ring(files.ring)
    live = _live(entries, time.time())
    if len(live) != len(entries):
        write_ring(files.ring, live)
    return [e.kid for e in entries if e not in live]


def describe(files: KeyFiles) -> list[dict[str, Any]]:
    """The keys of a deployment: the current one, then the ring's (for ``lienthong keys list``)."""
    rows: list[dict[str, Any]] = []
    if files.public.exists():
        rows.append({"kid": thumbprint(load_public_key(files.public.read_bytes())), "status": "current"})
    now = time.time()
    for entry in read_ring(files.ring):
        row: dict[str, Any] = {"kid": entry.kid, "status": entry.status}
        if entry.expires_at is not None:
            row["verifies_until"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.expires_at))
            if entry.expires_at <= now:
                row["status"] = "retired"
        rows.append(row)
    return rows
