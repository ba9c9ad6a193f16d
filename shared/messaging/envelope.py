"""The message every event travels in: an id (the outbox row id), a dotted versioned type, the data.

On RabbitMQ a message may carry a **bundle**: a JSON array of envelopes of one type (header
``x-bundle``: how many), published by the outbox relay for the types in :data:`BUNDLED_TYPES` when
one pass has several of them. Each envelope keeps its own id, so an idempotent consumer takes each
once whatever message it came in; :func:`envelopes_from_json` reads both forms.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shared import jsoncodec

BUNDLE_HEADER = "x-bundle"

# Event types the relay may bundle: every queue bound to them is a consumer's (idempotent per
# envelope id, a handler that takes envelopes in order), never a work queue (one message, one
# try, one retry) nor another system's queue: RabbitBroker refuses a work queue bound to one.
# They are the send path's many small events: the audit chain's and the archive's.
BUNDLED_TYPES: frozenset[str] = frozenset(
    {
        "audit.recorded.v1",
        "document.submitted.v1",
        "document.replaced.v1",
        "document.signature_checked.v1",
        "delivery.status_changed.v1",
        "document.recall_requested.v1",
        "document.recalled.v1",
    }
)


@dataclass(frozen=True)
class Envelope:
    """One event: ``type`` is its routing key, e.g. ``document.submitted.v1``."""

    id: str
    type: str
    source: str
    occurred_at: dt.datetime
    data: dict[str, Any]
    request_id: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "occurred_at": self.occurred_at.isoformat(),
            "request_id": self.request_id,
            "data": self.data,
        }

    def to_json(self) -> bytes:
        return jsoncodec.dumps(self.to_dict())

    @classmethod
    def from_json(cls, raw: bytes) -> Envelope:
        return cls.from_dict(json.loads(raw))

    @classmethod
    def from_dict(cls, body: Any) -> Envelope:
        if not isinstance(body, dict):
            raise TypeError(f"an envelope is a JSON object, not {type(body).__name__}")
        return cls(
            id=str(body["id"]),
            type=str(body["type"]),
            source=str(body.get("source", "")),
            occurred_at=dt.datetime.fromisoformat(body["occurred_at"]),
            data=dict(body.get("data") or {}),
            request_id=body.get("request_id"),
        )


def bundle_json(envelopes: Sequence[Envelope]) -> bytes:
    """The body of a bundle: the envelopes as one JSON array, in order."""
    return jsoncodec.dumps([e.to_dict() for e in envelopes])


def envelopes_from_json(raw: bytes) -> list[Envelope]:
    """The envelopes a message carries: one, or a bundle's, in order. Raises ValueError, KeyError or
    TypeError when the body is not one of these (an empty bundle included)."""
    body = json.loads(raw)
    if isinstance(body, list):
        if not body:
            raise ValueError("an empty bundle")
        return [Envelope.from_dict(each) for each in body]
    return [Envelope.from_dict(body)]


@functools.lru_cache(maxsize=4096)
def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` zero or more words (a process meets few
    patterns and event types: each pair is worked out once; the in-memory broker asks it for every
    subscription of every event)."""
    return _match(tuple(pattern.split(".")), tuple(routing_key.split(".")))


def _match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match(rest, words[1:])
