"""Documents ↔ edXML packets, as far as the hub connector needs them (interim).

The exchange's own edXML export (``GET /v1/documents/{id}/edxml``) and import (``POST
/v1/documents`` with an edXML packet) belong to the document model (branch ``edxml-model``); until
they are merged the connector maps through these three functions only, on the exchange's public
shapes (a feed entry's metadata, the ``metadata`` part of a send) and the edXML library's packet
model (``services.exchange.edxml``). When the exchange exports and imports packets itself, the
connector calls those routes instead and this module goes.

    packet_of_delivery    a ``delivery.received`` feed entry → a document packet (one recipient)
    recall_packet_of      a document as its sender reads it → the recall packet (BussinessDocType 1)
    submission_of         a document packet → the ``metadata`` of a send + its files
    status_packet_of      a ``delivery.status_changed`` feed entry → a status packet
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from services.exchange.edxml import (
    Attachment,
    Bussiness,
    BussinessDocType,
    Code,
    DocumentType,
    MessageHeader,
    Organization,
    OtherInfo,
    Packet,
    PromulgationInfo,
    ResponseFor,
    SignerInfo,
    StatusPacket,
    TraceHeader,
    TraceHeaderList,
    codes,
)
from services.exchange.edxml import document_id as edxml_document_id

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")  # packets carry naive local times


def local_time(moment: dt.datetime) -> dt.datetime:
    """A UTC moment as the packets write it: Vietnam's wall clock, no zone."""
    return moment.astimezone(VIETNAM).replace(tzinfo=None, microsecond=0)


@dataclass
class File:
    name: str
    content_type: str
    data: bytes


def packet_of_delivery(
    document: dict[str, Any],
    *,
    sender: Organization,
    recipient: Organization,
    files: list[File],
    sent_at: dt.datetime,
) -> Packet:
    """The packet of a document for one recipient outside the province (``document``: a feed entry's metadata)."""
    promulgation_date = dt.date.fromisoformat(document["promulgation_date"])
    document_id = edxml_document_id(
        sender.organ_id, promulgation_date, document["code_number"], document["code_notation"]
    )
    response = document.get("response_for") or None
    due = document.get("due_date")
    header = MessageHeader(
        from_=sender,
        to=[recipient],
        document_id=document_id,
        code=Code(code_number=document["code_number"], code_notation=document["code_notation"]),
        promulgation_info=PromulgationInfo(
            place=document.get("promulgation_place"), promulgation_date=promulgation_date
        ),
        document_type=DocumentType(type_name=document["type_name"]),
        subject=document["subject"],
        signer_info=SignerInfo(
            competence=document.get("signer_competence"),
            position=document.get("signer_position"),
            full_name=document.get("signer_name"),
        ),
        due_date=dt.date.fromisoformat(due) if due else None,
        other_info=OtherInfo(priority=document.get("urgency", 0), page_amount=document.get("page_count")),
        steering_type=document.get("steering_type"),
        response_for=[_response_for(response)] if response else [],
    )
    trace = TraceHeaderList(
        trace_header=[TraceHeader(organ_id=sender.organ_id, timestamp=local_time(sent_at))],
        bussiness=Bussiness(document_id=document_id, bussiness_doc_type=BussinessDocType.NEW),
    )
    attachments = [
        Attachment(content_id=f"att{n}", attachment_name=f.name, content_type=f.content_type, data=f.data)
        for n, f in enumerate(files, 1)
    ]
    return Packet(message_header=header, trace_header_list=trace, attachments=attachments)


def _response_for(response: dict[str, Any]) -> ResponseFor:
    date = response.get("promulgation_date")
    return ResponseFor(
        organ_id=response.get("organ_id") or response.get("sender_code"),
        code=response.get("code") or response.get("number_notation"),
        promulgation_date=dt.date.fromisoformat(date) if isinstance(date, str) else None,
        document_id=response.get("document_id"),
    )


def submission_of(packet: Packet, recipients: list[str]) -> tuple[dict[str, Any], list[File]]:
    """The ``metadata`` part of a send and its files for a packet from the hub, to ``recipients``
    (the packet's local ones). ``sender_document_id`` is the packet's DocumentId: the exchange
    answers a second send of it with the first document, so a packet taken twice is one document."""
    header = packet.message_header
    code = header.code or Code()
    promulgation = header.promulgation_info or PromulgationInfo()
    signer = header.signer_info or SignerInfo()
    other = header.other_info or OtherInfo()
    priority = other.priority if other.priority is not None and 0 <= other.priority <= 4 else 0
    metadata: dict[str, Any] = {
        "sender_document_id": header.document_id,
        "code_number": code.code_number,
        "code_notation": code.code_notation,
        "type_name": (header.document_type.type_name if header.document_type else None) or "Công văn",
        "subject": header.subject,
        "promulgation_place": promulgation.place,
        "promulgation_date": promulgation.promulgation_date.isoformat() if promulgation.promulgation_date else None,
        "signer": {"competence": signer.competence, "position": signer.position, "full_name": signer.full_name},
        "urgency": priority,
        "due_date": header.due_date.isoformat() if header.due_date else None,
        "steering_type": header.steering_type or 0,
        "page_count": other.page_amount,
        "recipients": recipients,
    }
    files = [
        File(
            name=a.attachment_name or a.content_id,
            content_type=a.content_type or "application/octet-stream",
            data=a.data,
        )
        for a in packet.attachments
    ]
    return {k: v for k, v in metadata.items() if v is not None}, files


def status_packet_of(
    *,
    response_for: ResponseFor,
    reporter: Organization,
    status: str,
    note: str | None,
    reported_at: dt.datetime,
) -> StatusPacket:
    """The status packet telling the hub's sender what a local recipient reported."""
    return StatusPacket(
        response_for=response_for,
        from_=reporter,
        # 15/16 answer a recall (the only change carried from the hub): national systems write 03/02
        status_code=codes.status_out(
            status, BussinessDocType.RECALL if status in ("15", "16") else BussinessDocType.NEW
        ),
        description=note,
        timestamp=local_time(reported_at),
    )


def feed_shape(document: dict[str, Any]) -> dict[str, Any]:
    """A document as ``GET /internal/v1/documents/{id}`` answers it, in a feed entry's metadata shape."""
    signer = document.get("signer") or {}
    return {
        **document,
        "signer_competence": signer.get("competence"),
        "signer_position": signer.get("position"),
        "signer_name": signer.get("full_name"),
    }


def recall_packet_of(
    document: dict[str, Any], *, sender: Organization, recipient: Organization, reason: str, sent_at: dt.datetime
) -> Packet:
    """The recall of a document sent through the hub: its header again (same DocumentId), Bussiness
    RECALL with the reason, no attachments. National systems answer 03 (agree) or 02 (refuse)."""
    packet = packet_of_delivery(feed_shape(document), sender=sender, recipient=recipient, files=[], sent_at=sent_at)
    bussiness = packet.trace_header_list.bussiness
    assert bussiness is not None
    bussiness.bussiness_doc_type = BussinessDocType.RECALL
    bussiness.bussiness_doc_reason = reason
    return packet
