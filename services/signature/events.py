"""The events the signature service publishes (through its outbox), with their payload schemas.

``trust_store.changed.v1`` follows every change of the trust store: its new version, what was
added or removed. Every signature process listens to it and drops its cached verification results
(they are keyed by the trust-store version too, so a missed event costs nothing but memory).

``python -m services.signature.events`` prints their JSON schemas (docs/signatures.md shows them).
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

from pydantic import BaseModel

from services.signature.models import messaging
from shared.repository import Repository

TrustItemKind = Literal["root", "intermediate", "crl"]


class TrustStoreChanged(BaseModel):
    """``trust_store.changed.v1``: a CA certificate or CRL was added to the trust store or removed."""

    version: int
    action: Literal["added", "removed"]
    item: TrustItemKind
    item_id: uuid.UUID
    subject: str
    sha256: str
    actor: str


EVENTS: dict[str, type[BaseModel]] = {"trust_store.changed.v1": TrustStoreChanged}
PUBLISHED: tuple[str, ...] = tuple(EVENTS)
_NAMES = {model: name for name, model in EVENTS.items()}


async def record(repository: Repository[Any], event: BaseModel) -> None:
    """Write an event to the outbox in the repository's transaction, under its payload model's name."""
    await repository.record_event(
        messaging, _NAMES[type(event)], event.model_dump(mode="json"), ordering_key="trust_store"
    )


if __name__ == "__main__":
    print(json.dumps({name: model.model_json_schema() for name, model in EVENTS.items()}, indent=2, ensure_ascii=False))
