"""Document request and response bodies: the Decree 30/2020 metadata with its maximum lengths."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.exchange.document.types import document_type
from services.exchange.events import StaffInfo
from services.exchange.signatures.schemas import SignatureVerdictRead
from shared.types import (
    AgencyCode,
    DueDate,
    OptionalText,
    PromulgationDate,
    StrictBool,
    StrictInt,
    VietnameseText,
)


class Signer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    competence: VietnameseText | None = Field(default=None, max_length=100, examples=["TM. Ủy ban nhân dân"])
    position: VietnameseText | None = Field(default=None, max_length=100, examples=["Chủ tịch"])
    full_name: VietnameseText | None = Field(default=None, max_length=50, examples=["Nguyễn Văn A"])


class ResponseFor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document_id: uuid.UUID | None = None
    organ_id: AgencyCode | None = None
    code: VietnameseText | None = Field(default=None, max_length=42)
    promulgation_date: PromulgationDate | None = None


class Relation(BaseModel):
    """This document updates or replaces one the same agency sent earlier."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["update", "replace"]
    document_id: uuid.UUID
    metadata_changed: StrictBool = Field(default=True, description="update: the metadata changed")
    recipients_changed: StrictBool = Field(default=False, description="update: the recipients changed")


class DocumentSubmit(BaseModel):
    """What a sender declares; the sending agency is the authenticated one, never a field."""

    model_config = ConfigDict(extra="forbid")

    sender_document_id: VietnameseText | None = Field(
        default=None, max_length=100, description="The sender's own id; a replay with it returns the original answer"
    )
    code_number: VietnameseText = Field(max_length=11, examples=["24"])
    code_notation: VietnameseText = Field(max_length=30, examples=["KH-UBND"])
    type_name: VietnameseText = Field(
        max_length=100,
        examples=["Kế hoạch"],
        description="One of the 29 Decree 30 types or Công văn, by name or abbreviation",
    )
    confidentiality: OptionalText | None = Field(
        default=None, max_length=30, description="Documents marked Mật, Tối mật or Tuyệt mật are refused"
    )
    subject: VietnameseText = Field(max_length=500, examples=["Kế hoạch chuyển đổi số năm 2027"])
    promulgation_place: VietnameseText | None = Field(default=None, max_length=100, examples=["Nghệ An"])
    promulgation_date: PromulgationDate = Field(description="From 1945-01-01 to a year from today")
    signer: Signer = Signer()
    urgency: StrictInt = Field(
        default=0, ge=0, le=4, description="0 normal, 1 khẩn, 2 thượng khẩn, 3 hỏa tốc, 4 hẹn giờ (a JSON number)"
    )
    due_date: DueDate | None = Field(default=None, description="From the promulgation date to five years from today")
    steering_type: StrictInt = Field(default=0, ge=0, le=2)
    page_count: StrictInt | None = Field(default=None, ge=1, le=100000)
    description: VietnameseText | None = Field(default=None, max_length=500)
    response_for: ResponseFor | None = None
    relation: Relation | None = None
    recipients: list[AgencyCode] = Field(default_factory=list, max_length=10000)
    groups: list[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")]] = Field(
        default_factory=list, max_length=100, description="Recipient groups of the registry, expanded at send time"
    )

    @field_validator("recipients", "groups")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        return list(dict.fromkeys(values))

    @field_validator("type_name")
    @classmethod
    def _known_type(cls, value: str) -> str:
        return document_type(value)[1]

    @model_validator(mode="after")
    def _addressed(self) -> DocumentSubmit:
        if not self.recipients and not self.groups:
            raise ValueError("address the document: give recipients (agency codes), groups, or both")
        if self.due_date is not None and self.due_date < self.promulgation_date:
            raise ValueError("due_date cannot be before promulgation_date")
        return self


@dataclass(frozen=True)
class AttachmentUpload:
    """A file as sent: the name its sender gave it, and its bytes as a stream (its type is read
    from them, never from the sender's label)."""

    file_name: str | None
    chunks: AsyncIterator[bytes]


@dataclass(frozen=True)
class AttachmentDownload:
    """A stored file: what the answer says about it, and its bytes as a stream."""

    file_name: str
    content_type: str
    size: int
    sha256: str
    chunks: AsyncIterator[bytes]


class AttachmentRead(BaseModel):
    id: uuid.UUID
    file_name: str
    content_type: str
    size: int
    sha256: str


class DeliveryEventRead(BaseModel):
    status: str
    actor_code: str
    note: str | None
    created_at: dt.datetime = Field(description="when the exchange recorded it")
    outcome: str | None = Field(
        default=None,
        description="a recipient's report: applied, repeated (a further 04/05, the status stayed) or stale"
        " (older than the report stored, nothing changed)",
    )
    timestamp: dt.datetime | None = Field(default=None, description="the reporter's own time (edXML Timestamp)")
    staff: StaffInfo | None = Field(default=None, description="who reported it (edXML StaffInfo)")


class DeliveryRead(BaseModel):
    id: uuid.UUID
    recipient_code: str
    status: str
    recall_status: str | None = Field(description="13 recall requested, 15 agreed (copy withdrawn), 16 refused")
    update_answer: str | None = Field(
        default=None, description="the recipient's answer to this update or replacement: 15 agreed, 16 refused"
    )
    overdue: bool
    arrival_deadline: dt.datetime = Field(
        description="by then the recipient registers (03) or returns (02) it (Decree 30, Art. 4)"
    )
    updated_at: dt.datetime
    transfer_failed_at: dt.datetime | None = Field(
        default=None,
        description="the recipient's webhook or bus queue refused it after every try (a re-send clears it)",
    )
    transfer_error: str | None = None
    history: list[DeliveryEventRead] = []


class DocumentRead(BaseModel):
    id: uuid.UUID
    sender_code: str
    sender_document_id: str | None
    kind: Literal["new", "update", "replace"]
    original_document_id: uuid.UUID | None
    update_info: dict[str, bool] | None
    superseded_by: uuid.UUID | None
    recall_reason: str | None
    type_code: str | None
    code_number: str
    code_notation: str
    type_name: str
    subject: str
    promulgation_place: str | None
    promulgation_date: dt.date
    signer: Signer
    urgency: int
    due_date: dt.date | None
    steering_type: int
    page_count: int | None
    description: str | None
    response_for: ResponseFor | None
    created_at: dt.datetime
    signature: SignatureVerdictRead | None = Field(
        description="the verdict on the main file's signatures; null when the type's signature policy is off"
    )
    attachments: list[AttachmentRead]
    deliveries: list[DeliveryRead]


class DeliverySummary(BaseModel):
    id: uuid.UUID
    recipient_code: str
    status: str


class Redirect(BaseModel):
    from_code: str
    to_code: str


class DocumentAccepted(BaseModel):
    id: uuid.UUID
    signature: SignatureVerdictRead | None = Field(
        default=None,
        description="valid under the 'require' policy; pending under 'flag' (see the document for the verdict)",
    )
    deliveries: list[DeliverySummary]
    attachments: list[AttachmentRead]
    redirected: list[Redirect] = Field(
        default_factory=list, description="Retired recipients replaced by their successor"
    )


@dataclass(frozen=True)
class ListFilters:
    """Filters of the sent and received lists (None: no filter)."""

    status: str | None = None
    type_name: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    counterpart: str | None = None
    urgency: int | None = None
    overdue: bool | None = None
    kind: str | None = None


class InboxItem(BaseModel):
    delivery_id: uuid.UUID
    status: str
    recall_status: str | None
    overdue: bool
    document_id: uuid.UUID
    kind: Literal["new", "update", "replace"]
    original_document_id: uuid.UUID | None
    due_date: dt.date | None
    sender_code: str
    code_number: str
    code_notation: str
    type_name: str
    subject: str
    urgency: int
    promulgation_date: dt.date
    received_at: dt.datetime
    signature_verdict: str | None = Field(default=None, description="see the document's `signature`")


class InboxPage(BaseModel):
    items: list[InboxItem]
    next_cursor: str | None


class SentItem(BaseModel):
    document_id: uuid.UUID
    kind: Literal["new", "update", "replace"]
    original_document_id: uuid.UUID | None
    code_number: str
    code_notation: str
    type_name: str
    subject: str
    urgency: int
    promulgation_date: dt.date
    due_date: dt.date | None
    created_at: dt.datetime
    recipients: int
    signature_verdict: str | None = Field(default=None, description="see the document's `signature`")
    by_status: dict[str, int] = Field(description="How many deliveries are at each status")
    overdue: int = Field(description="How many deliveries are overdue")


class SentPage(BaseModel):
    items: list[SentItem]
    next_cursor: str | None


class RecallRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: VietnameseText = Field(max_length=2000)
    recipients: list[AgencyCode] | None = Field(default=None, min_length=1, description="Default: every recipient")


class RecallRequested(BaseModel):
    document_id: uuid.UUID
    deliveries: list[DeliverySummary]
