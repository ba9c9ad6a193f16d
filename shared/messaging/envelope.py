"""The message every event travels in: an id (the outbox row id), a dotted versioned type, the data."""

from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import dataclass, field
from typing import Any


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

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "id": self.id,
                "type": self.type,
                "source": self.source,
                "occurred_at": self.occurred_at.isoformat(),
                "request_id": self.request_id,
                "data": self.data,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Envelope:
        body = json.loads(raw)
        return cls(
            id=str(body["id"]),
            type=str(body["type"]),
            source=str(body.get("source", "")),
            occurred_at=dt.datetime.fromisoformat(body["occurred_at"]),
            data=dict(body.get("data") or {}),
            request_id=body.get("request_id"),
        )


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
