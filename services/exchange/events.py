"""The events the exchange publishes (through its outbox), with their payload schemas.

``python -m services.exchange.events`` prints their JSON schemas (docs/exchange.md shows them).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Literal

from pydantic import BaseModel


class DeliveryRef(BaseModel):
    id: uuid.UUID
    recipient_code: str


class AttachmentRef(BaseModel):
    sha256: str
    size: int
    content_type: str


class DocumentSubmitted(BaseModel):
    """``document.submitted.v1``: a document was accepted; one delivery per recipient exists."""

    document_id: uuid.UUID
    kind: Literal["new", "update", "replace"]
    original_document_id: uuid.UUID | None
    sender_code: str
    code: str
    type_name: str
    subject: str
    urgency: int
    promulgation_date: dt.date
    due_date: dt.date | None
    deliveries: list[DeliveryRef]
    attachments: list[AttachmentRef]


class DeliveryStatusChanged(BaseModel):
    """``delivery.status_changed.v1``: a recipient reported a status (01…06, 15, 16) or the sender
    asked for a recall (13)."""

    delivery_id: uuid.UUID
    document_id: uuid.UUID
    sender_code: str
    recipient_code: str
    previous_status: str
    status: str
    actor_code: str
    note: str | None
    occurred_at: dt.datetime


class DocumentRecallRequested(BaseModel):
    """``document.recall_requested.v1``: the sender asks recipients to give a document back (13)."""

    document_id: uuid.UUID
    sender_code: str
    reason: str
    delivery_ids: list[uuid.UUID]


class DocumentRecalled(BaseModel):
    """``document.recalled.v1``: a recipient agreed (15); its copy is no longer readable."""

    document_id: uuid.UUID
    delivery_id: uuid.UUID
    sender_code: str
    recipient_code: str
    recalled_at: dt.datetime


class DocumentReplaced(BaseModel):
    """``document.replaced.v1``: a new document supersedes an earlier one."""

    document_id: uuid.UUID
    replaced_by: uuid.UUID
    sender_code: str


EVENTS: dict[str, type[BaseModel]] = {
    "document.submitted.v1": DocumentSubmitted,
    "delivery.status_changed.v1": DeliveryStatusChanged,
    "document.recall_requested.v1": DocumentRecallRequested,
    "document.recalled.v1": DocumentRecalled,
    "document.replaced.v1": DocumentReplaced,
}


def payload(event: BaseModel) -> dict[str, object]:
    return event.model_dump(mode="json")


if __name__ == "__main__":
    print(json.dumps({name: model.model_json_schema() for name, model in EVENTS.items()}, indent=2, ensure_ascii=False))
