"""Rules of the audit chain: append each action once, in order, hashed over the entry before it;
sign the head now and then (an anchor); prove the chain intact or name its first broken entry."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.registry.audit.repository import AuditRepository, EntryFilters
from services.registry.audit.schemas import AnchorRead, AuditEntryRead, AuditHeadRead, AuditPage
from services.registry.models import AuditAnchor, AuditEntry
from shared.audit import (
    GENESIS_HASH,
    AnchorKey,
    anchor_valid,
    entry_hash,
    key_fingerprint,
    public_key_from_b64,
)
from shared.db import utcnow
from shared.messaging import Envelope
from shared.repository import transient

log = logging.getLogger("lienthong.registry.audit")


def _text(value: Any, size: int) -> str | None:
    return None if value is None else str(value)[:size]


def _occurred_at(envelope: Envelope) -> dt.datetime:
    raw = envelope.data.get("occurred_at")
    try:
        value = dt.datetime.fromisoformat(raw) if isinstance(raw, str) else envelope.occurred_at
    except ValueError:
        value = envelope.occurred_at
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def entry_fields(envelope: Envelope, *, seq: int, prev_hash: str, recorded_at: dt.datetime) -> dict[str, Any]:
    """The columns of the entry an ``audit.recorded.v1`` event becomes (cut to their sizes first,
    so that what is hashed is what is stored)."""
    data = envelope.data
    details = data.get("details")
    return {
        "seq": seq,
        "message_id": envelope.id[:100],
        "source": envelope.source[:40],
        "action": str(data.get("action") or "unknown")[:60],
        "outcome": str(data.get("outcome") or "success")[:20],
        "actor": _text(data.get("actor"), 64),
        "agency_code": _text(data.get("agency_code"), 30),
        "document_id": _text(data.get("document_id"), 40),
        "target": _text(data.get("target"), 200),
        "details": details if isinstance(details, dict) else {},
        "request_id": _text(envelope.request_id, 100),
        "occurred_at": _occurred_at(envelope),
        "recorded_at": recorded_at,
        "prev_hash": prev_hash,
    }


def stored_fields(entry: AuditEntry) -> dict[str, Any]:
    """An entry's hashed fields as stored."""
    return {
        "seq": entry.seq,
        "message_id": entry.message_id,
        "source": entry.source,
        "action": entry.action,
        "outcome": entry.outcome,
        "actor": entry.actor,
        "agency_code": entry.agency_code,
        "document_id": entry.document_id,
        "target": entry.target,
        "details": entry.details,
        "request_id": entry.request_id,
        "occurred_at": entry.occurred_at,
        "recorded_at": entry.recorded_at,
        "prev_hash": entry.prev_hash,
    }


@dataclass(frozen=True)
class ChainBreak:
    """The first entry (or anchor) at which the chain does not hold, and why."""

    seq: int
    reason: str


@dataclass(frozen=True)
class VerifyReport:
    head_seq: int
    entries: int
    anchors: int
    last_anchored_seq: int | None
    broken: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.broken is None


class AuditService:
    def __init__(self, audits: AuditRepository, *, key: AnchorKey | None = None, anchor_every: int = 1000) -> None:
        self.audits = audits
        self.key = key
        self.anchor_every = anchor_every

    async def append(self, envelopes: Sequence[Envelope]) -> int:
        """Append one entry per event, in this order, after the head (locked); return the new head's
        seq. Anchors the head when ``anchor_every`` entries were appended since the last anchor."""
        if not envelopes:
            return (await self.audits.head())[0]
        seq, prev_hash = await self.audits.lock_head()
        now = utcnow()
        entries = []
        for envelope in envelopes:
            seq += 1
            fields = entry_fields(envelope, seq=seq, prev_hash=prev_hash, recorded_at=now)
            prev_hash = entry_hash(fields)
            entries.append(transient(AuditEntry, {**fields, "hash": prev_hash}))
        await self.audits.append(entries)
        await self.audits.set_head(seq, prev_hash)
        if self.key is not None:
            last = await self.audits.last_anchor()
            if seq - (last.seq if last else 0) >= self.anchor_every:
                await self._sign(seq, prev_hash, self.key)
        return seq

    async def anchor(self) -> AnchorRead | None:
        """Sign the chain head unless it is signed already (or empty, or no key); return the anchor."""
        if self.key is None or not await self._unsigned():
            return None  # nothing to sign: no write either
        seq, head_hash = await self.audits.lock_head()
        if not await self._unsigned():  # another replica signed it meanwhile
            return None
        return await self._sign(seq, head_hash, self.key)

    async def _unsigned(self) -> bool:
        """Whether the head moved since the last anchor."""
        seq, _ = await self.audits.head()
        last = await self.audits.last_anchor()
        return seq > 0 and (last is None or last.seq < seq)

    async def _sign(self, seq: int, head_hash: str, key: AnchorKey) -> AnchorRead:
        signed_at = utcnow()
        anchor = AuditAnchor(
            seq=seq,
            hash=head_hash,
            signed_at=signed_at,
            kid=key.kid,
            key_fingerprint=key.fingerprint,
            public_key=key.public_key,
            signature=key.sign(seq, head_hash, signed_at),
        )
        await self.audits.add_anchor(anchor)
        return _anchor_read(anchor)

    async def entries(self, filters: EntryFilters, *, cursor: str | None, limit: int) -> AuditPage:
        """Return the entries matching the filters, newest first."""
        page = await self.audits.page_entries(filters, cursor=cursor, limit=limit)
        return AuditPage(
            items=[AuditEntryRead.model_validate(e, from_attributes=True) for e in page.rows],
            next_cursor=page.next_cursor,
        )

    async def head(self) -> AuditHeadRead:
        seq, head_hash = await self.audits.head()
        last = await self.audits.last_anchor()
        return AuditHeadRead(seq=seq, hash=head_hash, last_anchor=_anchor_read(last) if last else None)

    async def verify(
        self,
        trusted: dict[str, Ed25519PublicKey],
        *,
        batch: int = 1000,
        progress: Callable[[int], None] | None = None,
    ) -> VerifyReport:
        """Walk the chain from its first entry to the head and stop at the first break: a missing
        entry (deleted row), an entry whose hash is not its content's (tampered, or moved to another
        position), an entry that does not follow the one before (reordered or replaced), an anchor
        that does not match its entry or whose signature is bad or by an untrusted key, a head that
        names an entry that is not there. ``trusted``: the gateway's public keys by fingerprint."""
        head_seq, head_hash = await self.audits.head()
        expected, prev_hash, checked, anchors_checked = 1, GENESIS_HASH, 0, 0
        last_anchored: int | None = None

        def report(broken: ChainBreak | None) -> VerifyReport:
            return VerifyReport(head_seq, checked, anchors_checked, last_anchored, broken)

        while expected <= head_seq:
            entries = [e for e in await self.audits.entries_after(expected - 1, batch) if e.seq <= head_seq]
            if not entries:
                return report(ChainBreak(expected, f"entry {expected} is missing (the head is entry {head_seq})"))
            anchors = {a.seq: a for a in await self.audits.anchors_between(entries[0].seq, entries[-1].seq)}
            for entry in entries:
                if entry.seq != expected:
                    return report(ChainBreak(expected, f"entry {expected} is missing (the next is entry {entry.seq})"))
                if entry.prev_hash != prev_hash:
                    return report(
                        ChainBreak(
                            entry.seq,
                            f"entry {entry.seq} does not follow entry {entry.seq - 1}: its previous hash differs "
                            "(entries reordered, replaced, or the one before rewritten)",
                        )
                    )
                if entry_hash(stored_fields(entry)) != entry.hash:
                    return report(
                        ChainBreak(entry.seq, f"entry {entry.seq} was changed: its content does not match its hash")
                    )
                anchor = anchors.get(entry.seq)
                if anchor is not None:
                    problem = _anchor_problem(anchor, entry.hash, trusted)
                    if problem is not None:
                        return report(ChainBreak(entry.seq, problem))
                    anchors_checked += 1
                    last_anchored = entry.seq
                prev_hash = entry.hash
                expected += 1
                checked += 1
            if progress is not None:
                progress(len(entries))
        if head_seq and prev_hash != head_hash:
            return report(ChainBreak(head_seq, f"the head's hash is not entry {head_seq}'s"))
        stray = await self.audits.anchors_after(head_seq)
        if stray:
            return report(ChainBreak(stray[0].seq, f"anchor of entry {stray[0].seq} signs an entry that is not there"))
        return report(None)


def _anchor_problem(anchor: AuditAnchor, entry_hash_: str, trusted: dict[str, Ed25519PublicKey]) -> str | None:
    """What is wrong with an anchor, or None."""
    seq = anchor.seq
    if anchor.hash != entry_hash_:
        return f"anchor of entry {seq} signed another hash than the entry's (the chain was rewritten up to it)"
    key = trusted.get(anchor.key_fingerprint)
    stored = public_key_from_b64(anchor.public_key)
    if key is None or stored is None or key_fingerprint(stored) != anchor.key_fingerprint:
        return (
            f"anchor of entry {seq} is signed by a key that is not trusted (fingerprint {anchor.key_fingerprint}"
            + (f", kid {anchor.kid}" if anchor.kid else "")
            + "): pass its public key with --key"
        )
    if not anchor_valid(key, seq, anchor.hash, anchor.signed_at, anchor.signature):
        return f"anchor of entry {seq} has a bad signature"
    return None


def _anchor_read(anchor: AuditAnchor) -> AnchorRead:
    return AnchorRead(
        seq=anchor.seq,
        hash=anchor.hash,
        signed_at=anchor.signed_at,
        kid=anchor.kid,
        key_fingerprint=anchor.key_fingerprint,
    )
