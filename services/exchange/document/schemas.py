"""Document request and response bodies: the Decree 30/2020 metadata with its maximum lengths."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from services.exchange.document.types import circulation_mark, copy_form, document_type
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


EdxmlDocumentId = Annotated[VietnameseText, Field(max_length=100)]
"""An edXML DocumentId: ``OrganId,yyyy/MM/dd,Number/Notation`` (``000.00.00.G22,2015/09/30,7816/VPCP-TTĐT``)
as this exchange makes it; other systems' ids (UUIDs are seen in the wild) are kept as given."""
TypeNumber = Annotated[VietnameseText, Field(max_length=50)]


def edxml_document_id(organ_id: str, promulgation_date: dt.date, number: str, notation: str) -> str:
    """The edXML DocumentId of a document: ``OrganId,yyyy/MM/dd,Number/Notation``."""
    return f"{organ_id},{promulgation_date:%Y/%m/%d},{number}/{notation}"


class ResponseFor(BaseModel):
    """A document this one answers (edXML ResponseFor): the local id when it travelled here, else
    its sender, number/notation, date and edXML DocumentId."""

    model_config = ConfigDict(extra="forbid")

    document_id: uuid.UUID | None = None
    organ_id: AgencyCode | None = None
    code: VietnameseText | None = Field(default=None, max_length=42)
    promulgation_date: PromulgationDate | None = None
    edxml_document_id: EdxmlDocumentId | None = None


def response_for_list(value: object) -> list[dict[str, Any]]:
    """The stored ``response_for`` as a list (rows written before it was one hold an object)."""
    if isinstance(value, dict):
        return [value]
    return list(value) if isinstance(value, list) else []


def _as_list(value: object) -> object:
    """One object where a list is expected (the earlier form of ``response_for``) is a list of one."""
    return [value] if isinstance(value, dict) else value


# Organ, TraceHop, Receiver, ReplacementInfo and Business are what the exchange made or a packet
# said, shown as kept: no limits of their own (a packet is bounded by its size), never refused on read.
class Organ(BaseModel):
    """An agency as an edXML packet names it (From, To), frozen at send time."""

    model_config = ConfigDict(extra="forbid")

    organ_id: str
    organization_in_charge: str | None = None
    organ_name: str | None = None
    organ_add: str | None = None
    email: str | None = None
    telephone: str | None = None
    fax: str | None = None
    website: str | None = None


class TraceHop(BaseModel):
    """A system the document passed through (edXML TraceHeader)."""

    model_config = ConfigDict(extra="forbid")

    organ_id: str
    timestamp: dt.datetime


class Receiver(BaseModel):
    """A recipient named in an update's ReceiverList, with its ReceiverType."""

    model_config = ConfigDict(extra="forbid")

    receiver_type: int
    organ_id: str


class ReplacementInfo(BaseModel):
    """Which document a replacement replaces, and at which recipients (edXML ReplacementInfo)."""

    model_config = ConfigDict(extra="forbid")

    document_id: str
    organ_ids: list[str] = Field(default_factory=list)


class Business(BaseModel):
    """The edXML Bussiness block (the packet's spelling): new (0), recall (1), update (2) or
    replace (3), why, whether paper follows, who handled it, and for an update what changed."""

    model_config = ConfigDict(extra="forbid")

    document_id: str | None = Field(
        default=None, description="Bussiness/DocumentId: this document's, or the one it changes"
    )
    bussiness_doc_type: int = Field(default=0, ge=0, le=3)
    bussiness_doc_reason: str | None = None
    paper: bool = False
    staff_info: StaffInfo | None = None
    document_info: bool | None = Field(default=None, description="update: the metadata changed")
    document_receiver: bool | None = Field(default=None, description="update: the recipients changed")
    receiver_list: list[Receiver] = Field(default_factory=list)
    replacement_info_list: list[ReplacementInfo] = Field(default_factory=list)


class AttachmentInfo(BaseModel):
    """What the sender says about one file (by position, the same order as the `files` parts)."""

    model_config = ConfigDict(extra="forbid")

    description: VietnameseText | None = Field(default=None, max_length=500)
    content_id: Annotated[str, Field(max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")] | None = Field(
        default=None, description="edXML ContentId (default: generated)"
    )


class Relation(BaseModel):
    """This document updates or replaces one the same agency sent earlier."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["update", "replace"]
    document_id: uuid.UUID
    metadata_changed: StrictBool = Field(default=True, description="update: the metadata changed")
    recipients_changed: StrictBool = Field(default=False, description="update: the recipients changed")
    reason: VietnameseText | None = Field(default=None, max_length=2000, description="edXML BussinessDocReason")


class DocumentSubmit(BaseModel):
    """What a sender declares; the sending agency is the authenticated one, never a field."""

    model_config = ConfigDict(extra="forbid")

    sender_document_id: VietnameseText | None = Field(
        default=None, max_length=100, description="The sender's own id; a replay with it returns the original answer"
    )
    code_number: VietnameseText = Field(max_length=11, examples=["24"])
    code_notation: VietnameseText = Field(max_length=30, examples=["KH-UBND"])
    edxml_document_id: EdxmlDocumentId | None = Field(
        default=None,
        description="The edXML DocumentId, unique per sender: `OrganId,yyyy/MM/dd,Number/Notation` (the default,"
        " made from the sender, the date and the number/notation), or another system's id as it gave it",
    )
    type_name: VietnameseText = Field(
        max_length=100,
        examples=["Kế hoạch"],
        description="The type: a Decree 30 type or Công văn by name or abbreviation (stored canonically), "
        "or any other type name (Nghị định, Thông tư, Kết luận …); a copy form is `copy_form`, not a type",
    )
    type_number: TypeNumber | None = Field(
        default=None, description="edXML DocumentType/Type (numbering differs between systems: kept as given)"
    )
    type_detail: TypeNumber | None = Field(default=None, description="edXML DocumentType/TypeDetail")
    copy_form: Literal["SY", "TrS", "SL"] | None = Field(
        default=None, description="A copy: Sao y (SY), Trích sao (TrS) or Sao lục (SL), by name or abbreviation"
    )
    circulation: VietnameseText | None = Field(
        default=None, max_length=100, description="A circulation mark: Lưu hành nội bộ, Xem xong trả lại"
    )
    confidentiality: OptionalText | None = Field(
        default=None,
        max_length=30,
        description="Documents marked Mật, Tối mật or Tuyệt mật are refused (a circulation mark given here "
        "is moved to `circulation`)",
    )
    subject: VietnameseText = Field(max_length=500, examples=["Kế hoạch chuyển đổi số năm 2027"])
    promulgation_place: VietnameseText | None = Field(default=None, max_length=100, examples=["Nghệ An"])
    promulgation_date: PromulgationDate = Field(description="From 1945-01-01 to a year from today")
    signer: Signer = Signer()
    urgency: StrictInt = Field(
        default=0,
        ge=0,
        le=3,
        description="0 normal, 1 khẩn, 2 thượng khẩn, 3 hỏa tốc (Decree 30; a JSON number). The older "
        "'hỏa tốc hẹn giờ' of imported packets is read as 3",
    )
    due_date: DueDate | None = Field(default=None, description="From the promulgation date to five years from today")
    steering_type: StrictInt = Field(default=0, ge=0, le=2)
    page_count: StrictInt | None = Field(default=None, ge=1, le=999, description="edXML PageAmount: Number(3)")
    description: VietnameseText | None = Field(default=None, max_length=500)
    content: VietnameseText | None = Field(default=None, max_length=100000, description="edXML Content")
    to_places: list[Annotated[VietnameseText, Field(max_length=500)]] = Field(
        default_factory=list, max_length=1000, description="edXML ToPlaces/Place: 'Nơi nhận' as printed"
    )
    language: VietnameseText | None = Field(default=None, max_length=30, examples=["vi"])
    sphere_of_promulgation: VietnameseText | None = Field(default=None, max_length=100)
    typer_notation: VietnameseText | None = Field(default=None, max_length=100, description="edXML TyperNotation")
    promulgation_amount: StrictInt | None = Field(default=None, ge=0, le=1000000, description="copies issued")
    direction: StrictBool | None = Field(default=None, description="edXML OtherInfo/Direction")
    appendixes: list[Annotated[VietnameseText, Field(max_length=500)]] = Field(
        default_factory=list, max_length=100, description="edXML Appendixes/Appendix"
    )
    response_for: Annotated[list[ResponseFor], BeforeValidator(_as_list)] = Field(
        default_factory=list, max_length=100, description="The documents this one answers (one object: a list of one)"
    )
    paper: StrictBool = Field(default=False, description="edXML Bussiness/Paper: a paper copy follows")
    staff_info: StaffInfo | None = Field(default=None, description="edXML Bussiness/StaffInfo")
    attachments: list[AttachmentInfo] = Field(
        default_factory=list, max_length=1000, description="Per file, in the order of the `files` parts"
    )
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

    @field_validator("copy_form", mode="before")
    @classmethod
    def _copy_form(cls, value: object) -> object:
        return copy_form(value) if isinstance(value, str) else value

    @field_validator("circulation")
    @classmethod
    def _circulation(cls, value: str | None) -> str | None:
        return (circulation_mark(value) or value) if value is not None else None

    @model_validator(mode="after")
    def _circulation_given_as_confidentiality(self) -> DocumentSubmit:
        """Older systems put circulation marks where the secrecy level goes: they are not secrets."""
        if self.confidentiality and (mark := circulation_mark(self.confidentiality)) is not None:
            if self.circulation not in (None, mark):
                raise ValueError(
                    f"confidentiality {self.confidentiality!r} is a circulation mark other than circulation"
                )
            self.circulation, self.confidentiality = mark, None
        return self

    @model_validator(mode="after")
    def _addressed(self) -> DocumentSubmit:
        if not self.recipients and not self.groups:
            raise ValueError("address the document: give recipients (agency codes), groups, or both")
        if self.due_date is not None and self.due_date < self.promulgation_date:
            raise ValueError("due_date cannot be before promulgation_date")
        return self


@dataclass(frozen=True)
class PacketDetails:
    """What a document taken in as an edXML packet keeps as the packet says it, not as the API
    would make it: the sender's organ info (From), the hops, the Bussiness block."""

    sender_organ: dict[str, Any]
    trace: list[dict[str, Any]]
    business: dict[str, Any] | None


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
    content_id: str | None = Field(default=None, description="edXML ContentId")
    description: str | None = None


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
    organ: Organ | None = Field(default=None, description="the recipient's organ info as it was at send time")
    history: list[DeliveryEventRead] = []


class DocumentRead(BaseModel):
    id: uuid.UUID
    sender_code: str
    sender_document_id: str | None
    edxml_document_id: str | None = Field(description="edXML DocumentId: OrganId,yyyy/MM/dd,Number/Notation")
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
    type_number: str | None = None
    type_detail: str | None = None
    copy_form: str | None = None
    circulation: str | None = None
    content: str | None = None
    to_places: list[str] = []
    language: str | None = None
    sphere_of_promulgation: str | None = None
    typer_notation: str | None = None
    promulgation_amount: int | None = None
    direction: bool | None = None
    appendixes: list[str] = []
    response_for: list[ResponseFor]
    sender_organ: Organ | None = Field(default=None, description="the sender's organ info as it was at send time")
    trace: list[TraceHop] = Field(default=[], description="the systems it passed through (edXML TraceHeader)")
    business: Business | None = Field(default=None, description="the edXML Bussiness block")
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
