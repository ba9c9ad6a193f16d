"""The audit trail's shared parts: how a service records a security-relevant action, and how the
chain's entries are hashed and its head is signed.

A service records an action with :func:`record_audit` in the transaction of the action itself: the
entry travels as an ``audit.recorded.v1`` outbox event, so it is committed with the action or not
at all, and the relay publishes it even after a crash. The registry's audit consumer is the single
writer of the chain (services/registry/audit): it appends each message once (by message id),
hashing every entry over a canonical serialisation that includes the previous entry's hash, and
periodically signs the chain head with the gateway's Ed25519 key (an *anchor*).

Entries never hold document content: ids, codes, actions, who, when, the outcome.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import time
import weakref
from collections.abc import Mapping
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, Field

from shared.db import new_id, utcnow
from shared.keyring import thumbprint
from shared.messaging import Broker, Envelope, MessagingTables
from shared.messaging.outbox import PENDING_KEY
from shared.observability import current_request_id
from shared.repository import Repository

log = logging.getLogger("lienthong.audit")

AUDIT_EVENT = "audit.recorded.v1"
GENESIS_HASH = "0" * 64  # the "previous hash" of the first entry
ANCHOR_DOMAIN = b"lienthong-audit-anchor-v1\n"  # a signed anchor cannot be mistaken for anything else

Outcome = Literal["success", "refused", "throttled"]

# The actions recorded, one stable code each (docs/security.md, "Audit trail").
ACTIONS = (
    "token.issued",
    "token.refused",
    "token.throttled",
    "document.sent",
    "document.read",
    "document.downloaded",
    "document.exported",
    "delivery.status_reported",
    "document.recall_requested",
    "agency.created",
    "agency.updated",
    "agency.status_changed",
    "agency_level.created",
    "group.created",
    "group.updated",
    "group.deleted",
    "endpoint.updated",
    "certificate.added",
    "certificate.removed",
    "client.created",
    "client.rotated",
    "client.revoked",
    "client.certificate_added",
    "client.certificate_removed",
    "truststore.certificate_added",
    "truststore.certificate_removed",
    "truststore.crl_added",
    "truststore.crl_removed",
    "user.created",
    "user.updated",
    "user.signed_in",
    "user.sign_in_refused",
)


class AuditRecorded(BaseModel):
    """``audit.recorded.v1``: a security-relevant action, for the registry's audit chain.

    Never document content: ids, codes, the action, who, when, the outcome. ``details`` holds a few
    codes or counts (a status code, a reason code, a number of recipients)."""

    action: str = Field(description="One of the recorded actions, e.g. document.sent")
    outcome: Outcome = "success"
    actor: str | None = Field(None, description="The API client id that acted (or a service name)")
    agency_code: str | None = Field(None, description="The agency the actor acted for")
    document_id: str | None = None
    target: str | None = Field(None, description="What was acted on: a client id, agency code, delivery id …")
    details: dict[str, Any] = Field(default_factory=dict)
    occurred_at: dt.datetime


def audit_payload(
    action: str,
    *,
    actor: str | None,
    agency_code: str | None = None,
    document_id: object | None = None,
    target: object | None = None,
    outcome: Outcome = "success",
    details: Mapping[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> dict[str, Any]:
    """Return the payload of an ``audit.recorded.v1`` event (JSON types)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}: add it to shared.audit.ACTIONS and docs/security.md")
    return {
        "action": action,
        "outcome": outcome,
        "actor": actor,
        "agency_code": agency_code,
        "document_id": str(document_id) if document_id is not None else None,
        "target": str(target) if target is not None else None,
        "details": dict(details or {}),
        "occurred_at": (at or utcnow()).isoformat(),
    }


async def record_audit(
    repository: Repository[Any],
    tables: MessagingTables,
    action: str,
    *,
    actor: str | None,
    agency_code: str | None = None,
    document_id: object | None = None,
    target: object | None = None,
    outcome: Outcome = "success",
    details: Mapping[str, Any] | None = None,
    deferred: bool = False,
) -> str:
    """Record an audit entry in the repository's transaction (an outbox row: committed with the
    action or not at all); return the message id the chain dedupes on.

    ``deferred`` (reads, which are many): the commit does not wake the outbox relay; its next poll
    (``LIENTHONG_OUTBOX__POLL_SECONDS``) publishes the entry with the others waiting, in one batch
    that the registry appends in one transaction. The row is committed all the same."""
    data = audit_payload(
        action,
        actor=actor,
        agency_code=agency_code,
        document_id=document_id,
        target=target,
        outcome=outcome,
        details=details,
    )
    woken = repository.session.info.get(PENDING_KEY, False)
    message_id = await repository.record_event(tables, AUDIT_EVENT, data)
    if deferred and not woken:  # other events of the transaction still wake the relay
        repository.session.info.pop(PENDING_KEY, None)
    return message_id


async def publish_audit(broker: Broker, source: str, action: str, **fields: Any) -> str:
    """Publish an audit event straight to the broker and wait for its confirm (for a process with
    no database: the gateway's throttled token requests). Raises when the broker did not take it."""
    envelope = Envelope(
        id=str(new_id()),
        type=AUDIT_EVENT,
        source=source,
        occurred_at=utcnow(),
        data=audit_payload(action, **fields),
        request_id=current_request_id(),
    )
    await broker.publish(envelope)
    return envelope.id


class OncePerWindow:
    """Says yes once per key per window: a throttled attacker's thousand refused requests are one
    audit entry per client id (or address) and window, not a thousand."""

    def __init__(self, window_seconds: float, max_keys: int = 10_000) -> None:
        self.window = window_seconds
        self.max_keys = max_keys
        self._seen: dict[str, float] = {}

    def first(self, key: str) -> bool:
        now = time.monotonic()
        seen = self._seen.get(key)
        if seen is not None and now - seen < self.window:
            return False
        if len(self._seen) >= self.max_keys:
            self._seen = {k: t for k, t in self._seen.items() if now - t < self.window}
            if len(self._seen) >= self.max_keys:
                self._seen.clear()
        self._seen[key] = now
        return True


_throttle_gates: weakref.WeakKeyDictionary[object, OncePerWindow] = weakref.WeakKeyDictionary()


async def audit_throttled(
    owner: object, broker: Broker | None, *, client_id: str, address: str, what: str, window_seconds: float
) -> None:
    """Record a throttled token request (``token.throttled``): the first one per client id or
    address and window, published with a confirm before the 429 goes out (the gateway has no
    database, and the registry never sees a throttled request). ``owner``: the gateway runtime."""
    gate = _throttle_gates.get(owner)
    if gate is None:
        gate = _throttle_gates[owner] = OncePerWindow(window_seconds)
    if broker is None or not gate.first(f"{what}:{client_id if what == 'client' else address}"):
        return
    try:
        await publish_audit(
            broker,
            "gateway",
            "token.throttled",
            actor=None,
            target=client_id,
            outcome="throttled",
            details={"by": what, "address": address},
        )
    except Exception as exc:  # the answer is a refusal either way; say the entry is missing, loudly
        log.error("the audit entry of a throttled token request (client %r) was not published: %s", client_id, exc)


# -- hashing ---------------------------------------------------------------------------------------


def canonical(value: Any) -> bytes:
    """The canonical serialisation hashed and signed: JSON, keys sorted, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def timestamp(value: dt.datetime) -> str:
    """A timestamp as it is hashed: UTC, microseconds, always the same text for the same instant."""
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


HASHED_FIELDS = (
    "seq",
    "message_id",
    "source",
    "action",
    "outcome",
    "actor",
    "agency_code",
    "document_id",
    "target",
    "details",
    "request_id",
    "occurred_at",
    "recorded_at",
    "prev_hash",
)


def entry_hash(fields: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of an entry's canonical serialisation; it covers the previous entry's hash."""
    body = {name: fields[name] for name in HASHED_FIELDS}
    for name in ("occurred_at", "recorded_at"):
        if isinstance(body[name], dt.datetime):
            body[name] = timestamp(body[name])
    return hashlib.sha256(canonical(body)).hexdigest()


# -- anchors ---------------------------------------------------------------------------------------


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def key_fingerprint(key: Ed25519PublicKey) -> str:
    """The key's RFC 7638 JWK thumbprint (SHA-256, base64url): names the key an anchor was signed
    with, so that anchors still verify after the gateway's key rotated."""
    jwk = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(public_key_bytes(key))}
    return _b64url(hashlib.sha256(canonical(jwk)).digest())


def anchor_message(seq: int, head_hash: str, signed_at: dt.datetime) -> bytes:
    """What an anchor signs: the chain head (its sequence number and hash) and when."""
    return ANCHOR_DOMAIN + canonical({"hash": head_hash, "seq": seq, "signed_at": timestamp(signed_at)})


def sign_anchor(key: Ed25519PrivateKey, seq: int, head_hash: str, signed_at: dt.datetime) -> str:
    """Sign the chain head; return the signature, base64."""
    return base64.b64encode(key.sign(anchor_message(seq, head_hash, signed_at))).decode()


def anchor_valid(key: Ed25519PublicKey, seq: int, head_hash: str, signed_at: dt.datetime, signature: str) -> bool:
    """Whether ``signature`` is the key's signature of this chain head."""
    try:
        key.verify(base64.b64decode(signature, validate=True), anchor_message(seq, head_hash, signed_at))
    except (InvalidSignature, ValueError):
        return False
    return True


def load_public_keys(paths: list[Any]) -> dict[str, Ed25519PublicKey]:
    """Read Ed25519 public keys (PEM files; a private key gives its public half), by fingerprint;
    files that hold no Ed25519 key are skipped."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        try:
            raw = path.read_bytes()
        except OSError:
            continue
        key: Any
        try:
            key = serialization.load_pem_public_key(raw)
        except ValueError:
            try:
                key = serialization.load_pem_private_key(raw, password=None).public_key()
            except (ValueError, TypeError):
                continue
        if isinstance(key, Ed25519PublicKey):
            keys[key_fingerprint(key)] = key
    return keys


class AnchorKey:
    """The key that signs anchors (the gateway's Ed25519 private key) and how anchors name it."""

    def __init__(self, private_key: Ed25519PrivateKey, kid: str | None = None) -> None:
        self.private_key = private_key
        public = private_key.public_key()
        self.fingerprint = key_fingerprint(public)
        self.public_key = base64.b64encode(public_key_bytes(public)).decode()
        self.kid = kid or thumbprint(public)  # the key id its tokens carry (RFC 7638)

    @classmethod
    def load(cls, path: Any, kid: str | None = None) -> AnchorKey | None:
        """Load the key from a PEM file; None when the file is missing (no anchors are signed)."""
        try:
            raw = path.read_bytes()
        except OSError:
            return None
        key = serialization.load_pem_private_key(raw, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return cls(key, kid)

    def sign(self, seq: int, head_hash: str, signed_at: dt.datetime) -> str:
        return sign_anchor(self.private_key, seq, head_hash, signed_at)


def public_key_from_b64(raw: str) -> Ed25519PublicKey | None:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(raw, validate=True))
    except ValueError:
        return None
