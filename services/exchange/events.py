"""The events the exchange publishes (through its outbox), with their payload schemas.

``python -m services.exchange.events`` prints their JSON schemas (docs/exchange.md shows them).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.exchange.edxml.packet import STAFF_INFO_LIMITS
from shared.clients import HUB_ENTRY_EVENT
from shared.types import OptionalText

Outcome = Literal["applied", "repeated"]
Answers = Literal["recall", "update"]


class StaffInfo(BaseModel):
    """Who reported a status (edXML StaffInfo): the department, the person, their e-mail and mobile."""

    model_config = ConfigDict(extra="forbid")

    department: OptionalText | None = Field(default=None, max_length=STAFF_INFO_LIMITS["department"])
    staff: OptionalText | None = Field(default=None, max_length=STAFF_INFO_LIMITS["staff"])
    email: OptionalText | None = Field(default=None, max_length=STAFF_INFO_LIMITS["email"])
    mobile: OptionalText | None = Field(default=None, max_length=STAFF_INFO_LIMITS["mobile"])


class DeliveryRef(BaseModel):
    id: uuid.UUID
    recipient_code: str


class AttachmentRef(BaseModel):
    sha256: str
    size: int
    content_type: str
    id: uuid.UUID | None = Field(default=None, description="the attachment's id (its internal download route)")
    file_name: str | None = None


class DocumentDetails(BaseModel):
    """The Decree 30 details a reader of the event needs beside the headline fields (the archive
    indexes them without asking the exchange for the document)."""

    promulgation_place: str | None = None
    signer_name: str | None = None
    signer_position: str | None = None
    signer_competence: str | None = None
    steering_type: int | None = None
    page_count: int | None = None
    description: str | None = None


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
    signature_verdict: Literal["valid", "invalid", "indeterminate", "unsigned", "pending"] | None = Field(
        default=None,
        description="the main file's signatures: pending until a flagged document is verified"
        " (document.signature_checked.v1 follows); None when its type's signature policy is off",
    )
    details: DocumentDetails | None = None


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
    outcome: Outcome | None = Field(
        default=None,
        description="applied: the delivery is now in `status`; repeated: a further 04/05 with its note, the"
        " delivery stays in `previous_status`; None: the sender's recall (13)",
    )
    answers: Answers | None = Field(
        default=None, description="for 15/16: what they answer, a recall (13) or an update / replacement"
    )
    timestamp: dt.datetime | None = Field(default=None, description="the reporter's own time (edXML Timestamp)")
    staff: StaffInfo | None = Field(default=None, description="who reported it (edXML StaffInfo)")


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


FeedEntryType = Literal[
    "delivery.received", "delivery.recall_requested", "delivery.status_changed", "delivery.transfer_failed"
]


class FeedEntryAdded(BaseModel):
    """``feed.entry_added.v1``: an entry of an agency's feed, exactly as its channel delivers it
    (the pull feed lists it, a webhook receives it as the POST body, a bus queue as the message).

    ``seq`` numbers an agency's entries 1, 2, 3 … in the order they happened; ``id`` is the same
    on every re-send (dedupe by it). The exchange publishes it for the dispatcher only for agencies
    whose channel is not ``pull`` (decided when the entry is written); every entry is in the pull feed."""

    id: uuid.UUID
    seq: int
    agency_code: str = Field(description="whose feed: the recipient of a delivery, the sender of a document")
    type: FeedEntryType
    document_id: uuid.UUID
    delivery_id: uuid.UUID | None
    occurred_at: dt.datetime
    data: dict[str, Any] = Field(
        description="by type: DeliveryReceived, RecallRequested, StatusChanged, TransferFailed"
    )


class Link(BaseModel):
    href: str = Field(description="a path under the gateway's base URL, e.g. /v1/documents/…")
    method: Literal["GET", "POST"] = "GET"


class AttachmentLink(BaseModel):
    id: uuid.UUID
    file_name: str
    content_type: str
    size: int
    sha256: str
    href: str = Field(description="download with the agency's token: GET <gateway>/v1/documents/…/attachments/…")


class FeedDocument(BaseModel):
    """The Decree 30/2020 metadata of a delivered document."""

    id: uuid.UUID
    kind: Literal["new", "update", "replace"]
    original_document_id: uuid.UUID | None
    update_info: dict[str, bool] | None
    sender_code: str
    code_number: str
    code_notation: str
    type_name: str
    subject: str
    promulgation_place: str | None
    promulgation_date: dt.date
    signer_competence: str | None
    signer_position: str | None
    signer_name: str | None
    urgency: int
    due_date: dt.date | None
    steering_type: int
    page_count: int | None
    description: str | None
    response_for: list[dict[str, Any]] = Field(
        default_factory=list, description="the documents it answers (edXML ResponseFor, a list)"
    )
    edxml_document_id: str | None = Field(default=None, description="edXML DocumentId")
    created_at: dt.datetime


class DeliveryReceived(BaseModel):
    """``delivery.received`` (to the recipient): a document addressed to it, new, an update or a
    replacement. Report 01 when your system has taken it (reading the feed does not)."""

    delivery_id: uuid.UUID
    status: str
    arrival_deadline: dt.datetime = Field(
        description="register (03) or return (02) it by then (Decree 30, Art. 4; urgent documents within office"
        " hours): past it the delivery is overdue"
    )
    document: FeedDocument
    attachments: list[AttachmentLink]
    links: dict[str, Link]


class RecallRequested(BaseModel):
    """``delivery.recall_requested`` (to the recipient): the sender asks for its copy back (13);
    answer 15 (agreed) or 16 (refused)."""

    delivery_id: uuid.UUID
    document_id: uuid.UUID
    sender_code: str
    reason: str
    links: dict[str, Link]


class StatusChanged(BaseModel):
    """``delivery.status_changed`` (to the sender): a recipient reported 01…06, 15 or 16 (a stale
    report, older than the one stored, is only kept in the delivery's history)."""

    delivery_id: uuid.UUID
    document_id: uuid.UUID
    recipient_code: str
    previous_status: str
    status: str
    note: str | None
    reported_at: dt.datetime = Field(description="when the exchange received the report")
    links: dict[str, Link]
    outcome: Outcome = Field(
        default="applied",
        description="applied: the delivery is now in `status`; repeated: a further 04/05 with its note, the"
        " delivery stays in `previous_status`",
    )
    answers: Answers | None = Field(
        default=None, description="for 15/16: what they answer, a recall (13) or an update / replacement"
    )
    timestamp: dt.datetime | None = Field(default=None, description="the reporter's own time (edXML Timestamp)")
    staff: StaffInfo | None = Field(default=None, description="who reported it (edXML StaffInfo)")


class TransferFailed(BaseModel):
    """``delivery.transfer_failed`` (to the sender): the recipient's webhook or bus queue (or, for an
    agency outside the province, the national hub) did not take a delivery after every try; the
    delivery is still in the recipient's pull feed."""

    delivery_id: uuid.UUID
    document_id: uuid.UUID
    recipient_code: str
    channel: Literal["push", "amqp", "hub"]
    attempts: int
    reason: str


FEED_DATA: dict[str, type[BaseModel]] = {
    "delivery.received": DeliveryReceived,
    "delivery.recall_requested": RecallRequested,
    "delivery.status_changed": StatusChanged,
    "delivery.transfer_failed": TransferFailed,
}


class DeliveryTransferFailed(BaseModel):
    """``delivery.transfer_failed.v1``: a feed entry was not taken by its agency's webhook or bus
    queue after every try (recorded for the admin's re-send)."""

    entry_id: uuid.UUID
    agency_code: str
    channel: Literal["push", "amqp", "hub"]
    entry_type: FeedEntryType
    document_id: uuid.UUID
    delivery_id: uuid.UUID | None
    attempts: int
    reason: str


class DocumentSignaturePending(BaseModel):
    """``document.signature_pending.v1``: a document was sent under the ``flag`` policy; the
    exchange's ``signature_checks`` queue verifies its main file (``document.signature_checked.v1``
    follows)."""

    document_id: uuid.UUID
    sender_code: str


class DocumentSignatureChecked(BaseModel):
    """``document.signature_checked.v1``: a document sent under the ``flag`` policy had its main
    file's signatures verified just after it was accepted."""

    document_id: uuid.UUID
    sender_code: str
    verdict: Literal["valid", "invalid", "indeterminate", "unsigned"]
    reasons: list[str]
    checked_at: dt.datetime
    recipient_codes: list[str]


EVENTS: dict[str, type[BaseModel]] = {
    "document.submitted.v1": DocumentSubmitted,
    "delivery.status_changed.v1": DeliveryStatusChanged,
    "document.recall_requested.v1": DocumentRecallRequested,
    "document.recalled.v1": DocumentRecalled,
    "document.replaced.v1": DocumentReplaced,
    "feed.entry_added.v1": FeedEntryAdded,
    # the same entry, forwarded by the dispatcher for an agency reached through the national hub
    HUB_ENTRY_EVENT: FeedEntryAdded,
    "delivery.transfer_failed.v1": DeliveryTransferFailed,
    "document.signature_pending.v1": DocumentSignaturePending,
    "document.signature_checked.v1": DocumentSignatureChecked,
}


class StatusReportedOverBus(BaseModel):
    """``delivery.status_reported.v1`` (inbound, published by the provincial bus to the events
    exchange): a recipient reports a status, exactly as ``POST /v1/deliveries/{id}/status`` would.
    A message that is not valid, or that the REST call would refuse, goes to the dead-letter queue
    ``<prefix>.exchange.status_reports.dead`` with the reason in ``x-dead-reason``."""

    model_config = ConfigDict(extra="forbid")

    agency_code: str = Field(description="the reporting agency: the delivery's recipient, on the bus (mode amqp)")
    delivery_id: uuid.UUID
    status: Literal["01", "02", "03", "04", "05", "06", "15", "16"]
    note: str | None = Field(default=None, max_length=2000, description="required for 02")
    timestamp: AwareDatetime | None = Field(
        default=None, description="the reporter's own time: a report older than the one stored is stale"
    )
    staff: StaffInfo | None = None


INBOUND: dict[str, type[BaseModel]] = {"delivery.status_reported.v1": StatusReportedOverBus}


def payload(event: BaseModel) -> dict[str, object]:
    return event.model_dump(mode="json")


if __name__ == "__main__":
    print(json.dumps({name: model.model_json_schema() for name, model in EVENTS.items()}, indent=2, ensure_ascii=False))
