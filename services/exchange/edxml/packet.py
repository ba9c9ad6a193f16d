"""The typed model of a QCVN 102:2016 edXML packet and of a status packet.

One class per element of the packet tree, its fields the element's children in snake_case
(``OrganizationInCharge`` → ``organization_in_charge``), the standard's misspellings kept
(``Bussiness``, ``TyperNotation``). Dates are :class:`datetime.date`, timestamps naive
:class:`datetime.datetime` as written (the packets carry no zone: Vietnam's clock, UTC+7,
:data:`VIETNAM_TIME`; the writer converts an aware time to it). Every optional
element is ``None`` (or an empty list) when the packet leaves it out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from services.exchange.edxml.codes import BussinessDocType

VIETNAM_TIME = dt.timezone(dt.timedelta(hours=7), "ICT")
"""The zone the packets' naive timestamps are in; the writer turns an aware time into it."""

STAFF_INFO_LIMITS = {"department": 200, "staff": 100, "email": 254, "mobile": 30}
"""The lengths the exchange keeps of StaffInfo's fields: another system's longer ones are cut."""


def zoned(value: dt.datetime | None) -> dt.datetime | None:
    """A packet's timestamp with its zone (Vietnam's clock when it names none)."""
    return value.replace(tzinfo=VIETNAM_TIME) if value is not None and value.tzinfo is None else value


SignaturePlacement = Literal["ds", "edXML"]
StatusWrapper = Literal["edxml", "soap"]


@dataclass(kw_only=True)
class Organization:
    """An agency as a packet names it: ``From``, each ``To``, a status packet's ``From``."""

    organ_id: str
    organization_in_charge: str | None = None
    organ_name: str | None = None
    organ_add: str | None = None
    email: str | None = None
    telephone: str | None = None
    fax: str | None = None
    website: str | None = None


@dataclass(kw_only=True)
class Code:
    """``Code``: the number and notation, ``24`` and ``KH-UBND`` of ``24/KH-UBND``."""

    code_number: str | None = None
    code_notation: str | None = None


@dataclass(kw_only=True)
class PromulgationInfo:
    """``PromulgationInfo``: where and when the document was issued."""

    place: str | None = None
    promulgation_date: dt.date | None = None


@dataclass(kw_only=True)
class DocumentType:
    """``DocumentType``: Type and TypeDetail numbers differ between systems; TypeName is the one to trust."""

    type: str | None = None
    type_detail: str | None = None
    type_name: str | None = None


@dataclass(kw_only=True)
class SignerInfo:
    """``SignerInfo``: competence (``TL. BỘ TRƯỞNG``), position and full name of the signer."""

    competence: str | None = None
    position: str | None = None
    full_name: str | None = None


@dataclass(kw_only=True)
class OtherInfo:
    """``OtherInfo``: Priority (0–3, 4 read from old packets, see codes), circulation, amounts (PageAmount ≤ 999)."""

    priority: int | None = None
    sphere_of_promulgation: str | None = None
    typer_notation: str | None = None
    promulgation_amount: int | None = None
    page_amount: int | None = None
    direction: bool | None = None
    appendixes: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class ResponseFor:
    """``ResponseFor``: the document this one answers (in a status packet: the document reported on)."""

    organ_id: str | None = None
    code: str | None = None
    promulgation_date: dt.date | None = None
    document_id: str | None = None


@dataclass(kw_only=True)
class MessageHeader:
    """``MessageHeader``: the document's metadata."""

    from_: Organization
    to: list[Organization] = field(default_factory=list)
    document_id: str | None = None
    code: Code | None = None
    promulgation_info: PromulgationInfo | None = None
    document_type: DocumentType | None = None
    subject: str | None = None
    content: str | None = None
    signer_info: SignerInfo | None = None
    due_date: dt.date | None = None
    other_info: OtherInfo | None = None
    steering_type: int | None = None
    to_places: list[str] = field(default_factory=list)
    response_for: list[ResponseFor] = field(default_factory=list)


@dataclass(kw_only=True)
class TraceHeader:
    """``TraceHeader``: one hop of the packet, the agency and when it passed."""

    organ_id: str
    timestamp: dt.datetime | None = None


@dataclass(kw_only=True)
class StaffInfo:
    """``StaffInfo``: the clerk who acted."""

    department: str | None = None
    staff: str | None = None
    email: str | None = None
    mobile: str | None = None

    def kept(self) -> dict[str, str | None] | None:
        """The fields as the exchange keeps them (cut to :data:`STAFF_INFO_LIMITS`; None when all are empty)."""
        values: dict[str, str | None] = {
            name: value[:limit] if (value := getattr(self, name)) else None for name, limit in STAFF_INFO_LIMITS.items()
        }
        return values if any(values.values()) else None


@dataclass(kw_only=True)
class Receiver:
    """``ReceiverList/Receiver``: a recipient named by an update, with its ``ReceiverType``."""

    organ_id: str
    receiver_type: int | None = None


@dataclass(kw_only=True)
class BussinessDocumentInfo:
    """``BussinessDocumentInfo`` of an update: DocumentInfo=1 metadata, DocumentReceiver=1 recipients changed."""

    document_info: bool | None = None
    document_receiver: bool | None = None
    receiver_list: list[Receiver] = field(default_factory=list)


@dataclass(kw_only=True)
class ReplacementInfo:
    """``ReplacementInfoList/ReplacementInfo``: a document replaced, for the listed recipients."""

    document_id: str
    organ_id_list: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class Bussiness:
    """``Bussiness``: what the packet asks (BussinessDocType new/recall/update/replace), why, and by whom."""

    document_id: str | None = None
    bussiness_doc_type: BussinessDocType = BussinessDocType.NEW
    bussiness_doc_reason: str | None = None
    paper: bool | None = None
    staff_info: StaffInfo | None = None
    bussiness_document_info: BussinessDocumentInfo | None = None
    replacement_info_list: list[ReplacementInfo] = field(default_factory=list)


@dataclass(kw_only=True)
class TraceHeaderList:
    """``TraceHeaderList``: the hops and the business part."""

    trace_header: list[TraceHeader] = field(default_factory=list)
    bussiness: Bussiness | None = None


@dataclass(kw_only=True)
class Reference:
    """``edXMLManifest/Reference``: the manifest's entry for one attachment (ContentId without ``cid:``)."""

    content_id: str
    content_type: str | None = None
    description: str | None = None
    attachment_name: str | None = None


@dataclass(kw_only=True)
class Attachment:
    """``AttachmentEncoded/Attachment``: one file, ``data`` decoded (``zipped``: it came zipped, as the SDK sends)."""

    content_id: str
    attachment_name: str | None = None
    description: str | None = None
    content_type: str | None = None
    data: bytes = field(default=b"", repr=False)
    zipped: bool = False


@dataclass(kw_only=True)
class Packet:
    """A document packet: header, trace, manifest and attachments; ``signature`` is where a signature was found."""

    message_header: MessageHeader
    trace_header_list: TraceHeaderList = field(default_factory=TraceHeaderList)
    references: list[Reference] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    signature: SignaturePlacement | None = None

    @property
    def bussiness_doc_type(self) -> BussinessDocType:
        """What the packet asks (new when it has no Bussiness part)."""
        bussiness = self.trace_header_list.bussiness
        return bussiness.bussiness_doc_type if bussiness else BussinessDocType.NEW


@dataclass(kw_only=True)
class StatusPacket:
    """A status packet: the recipient ``from_`` reports ``status_code`` on the document ``response_for``."""

    response_for: ResponseFor
    from_: Organization
    status_code: str
    description: str | None = None
    timestamp: dt.datetime | None = None
    staff_info: StaffInfo | None = None
    wrapper: StatusWrapper = "edxml"


class DocumentIdParts(NamedTuple):
    """The parts of a DocumentId ``OrganId,yyyy/MM/dd,Number/Notation``."""

    organ_id: str
    promulgation_date: dt.date
    code_number: str
    code_notation: str


def document_id(organ_id: str, promulgation_date: dt.date, code_number: str, code_notation: str) -> str:
    """The DocumentId of a document: ``000.00.00.G22,2015/09/30,7816/VPCP-TTĐT``."""
    return f"{organ_id},{promulgation_date:%Y/%m/%d},{code_number}/{code_notation}"


def split_document_id(value: str) -> DocumentIdParts | None:
    """The parts of a DocumentId; None when it is not of that form (systems also send UUIDs, and
    the SDK sample's ``2014/02/30`` is no date)."""
    organ_id, _, rest = value.strip().partition(",")
    day, _, code = rest.partition(",")
    number, _, notation = code.partition("/")
    try:
        promulgation_date = dt.datetime.strptime(day, "%Y/%m/%d").date()
    except ValueError:
        return None
    if not (organ_id and number and notation):
        return None
    return DocumentIdParts(organ_id, promulgation_date, number, notation)
