"""edXML (QCVN 102) in and out: a document written as a signed packet, and a packet taken in as a
new document, a recall, an update or a replacement through the same rules as the JSON path.

Export: the document, its recipients' organ info frozen at send time (``To``), its hops and its
Bussiness block, its files base64 in ``AttachmentEncoded`` linked by ``cid:``, signed with the
province's seal (an enveloped XML-DSig at the end of ``edXMLHeader``, services/exchange/edxml).

Import: the packet is read safely (services/exchange/edxml/parse.py); a signed one must verify;
``From`` must be the calling agency; then BussinessDocType decides: 0 a new document, 1 a recall,
2 an update, 3 a replacement of the document the packet's Bussiness (or ReplacementInfo) names by
its DocumentId. A field the exchange refuses is named by its element. Nothing is stored unless
everything is accepted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from pydantic import ValidationError

from services.exchange import edxml
from services.exchange.blobstore import BlobStore
from services.exchange.delivery.repository import DeliveryRepository
from services.exchange.document.repository import DocumentRepository
from services.exchange.document.schemas import (
    AttachmentUpload,
    Business,
    DocumentAccepted,
    DocumentSubmit,
    PacketDetails,
    RecallRequest,
    RecallRequested,
    edxml_document_id,
    response_for_list,
)
from services.exchange.document.service import DocumentService
from services.exchange.edxml import VIETNAM_TIME
from services.exchange.edxml.codes import BussinessDocType, priority_of, urgency_of
from services.exchange.errors import DocumentNotFoundError, PacketSenderMismatchError
from services.exchange.models import Attachment, Delivery, Document, messaging
from shared.audit import record_audit
from shared.errors import PayloadTooLargeError
from shared.seal import Seal

HEADER = "edXML/edXMLEnvelope/edXMLHeader/MessageHeader"
BUSINESS = "edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList/Bussiness"
# the element that holds each field of the document, to name it when the field is refused
ELEMENT_OF: dict[str, str] = {
    "edxml_document_id": f"{HEADER}/DocumentId",
    "code_number": f"{HEADER}/Code/CodeNumber",
    "code_notation": f"{HEADER}/Code/CodeNotation",
    "type_name": f"{HEADER}/DocumentType/TypeName",
    "type_number": f"{HEADER}/DocumentType/Type",
    "type_detail": f"{HEADER}/DocumentType/TypeDetail",
    "subject": f"{HEADER}/Subject",
    "content": f"{HEADER}/Content",
    "promulgation_place": f"{HEADER}/PromulgationInfo/Place",
    "promulgation_date": f"{HEADER}/PromulgationInfo/PromulgationDate",
    "signer": f"{HEADER}/SignerInfo",
    "urgency": f"{HEADER}/OtherInfo/Priority",
    "due_date": f"{HEADER}/DueDate",
    "steering_type": f"{HEADER}/SteeringType",
    "page_count": f"{HEADER}/OtherInfo/PageAmount",
    "sphere_of_promulgation": f"{HEADER}/OtherInfo/SphereOfPromulgation",
    "typer_notation": f"{HEADER}/OtherInfo/TyperNotation",
    "promulgation_amount": f"{HEADER}/OtherInfo/PromulgationAmount",
    "direction": f"{HEADER}/OtherInfo/Direction",
    "appendixes": f"{HEADER}/OtherInfo/Appendixes",
    "to_places": f"{HEADER}/ToPlaces",
    "response_for": f"{HEADER}/ResponseFor",
    "recipients": f"{HEADER}/To",
    "staff_info": f"{BUSINESS}/StaffInfo",
    "paper": f"{BUSINESS}/Paper",
    "relation": f"{BUSINESS}/DocumentId",
    "attachments": "edXML/AttachmentEncoded/Attachment",
}


# --- document → packet ----------------------------------------------------------------------------


def _organization(organ: dict[str, Any] | None, code: str) -> edxml.Organization:
    fields = {k: v for k, v in (organ or {}).items() if k in edxml.Organization.__dataclass_fields__}
    fields.setdefault("organ_id", code)
    return edxml.Organization(**fields)


def _timestamp(value: str) -> dt.datetime:
    """A stored hop time (ISO, UTC) as Vietnam's clock, to the second, as packets write it."""
    return dt.datetime.fromisoformat(value).astimezone(VIETNAM_TIME).replace(microsecond=0)


def document_id_of(document: Document) -> str:
    """The document's edXML DocumentId (made from its metadata for a row stored before it was kept)."""
    return document.edxml_document_id or edxml_document_id(
        document.sender_code, document.promulgation_date, document.code_number, document.code_notation
    )


def _bussiness(business: dict[str, Any] | None, document: Document) -> edxml.Bussiness:
    found = Business.model_validate(business or {"document_id": document_id_of(document)})
    info = None
    if found.document_info is not None or found.document_receiver is not None or found.receiver_list:
        info = edxml.BussinessDocumentInfo(
            document_info=found.document_info,
            document_receiver=found.document_receiver,
            receiver_list=[
                edxml.Receiver(organ_id=r.organ_id, receiver_type=r.receiver_type) for r in found.receiver_list
            ],
        )
    staff = found.staff_info
    return edxml.Bussiness(
        document_id=found.document_id,
        bussiness_doc_type=BussinessDocType(found.bussiness_doc_type),
        bussiness_doc_reason=found.bussiness_doc_reason,
        paper=found.paper,
        staff_info=edxml.StaffInfo(**staff.model_dump()) if staff is not None else None,
        bussiness_document_info=info,
        replacement_info_list=[
            edxml.ReplacementInfo(document_id=r.document_id, organ_id_list=list(r.organ_ids))
            for r in found.replacement_info_list
        ],
    )


def packet_of(
    document: Document, *, deliveries: Sequence[Delivery], attachments: Sequence[tuple[Attachment, bytes]]
) -> edxml.Packet:
    """The packet of a document: its metadata, recipients, hops, Bussiness block and files."""
    header = edxml.MessageHeader(
        from_=_organization(document.sender_organ, document.sender_code),
        to=[_organization(d.organ, d.recipient_code) for d in deliveries],
        document_id=document_id_of(document),
        code=edxml.Code(code_number=document.code_number, code_notation=document.code_notation),
        promulgation_info=edxml.PromulgationInfo(
            place=document.promulgation_place, promulgation_date=document.promulgation_date
        ),
        document_type=edxml.DocumentType(
            type=document.type_number, type_detail=document.type_detail, type_name=document.type_name
        ),
        subject=document.subject,
        content=document.content,
        signer_info=edxml.SignerInfo(
            competence=document.signer_competence, position=document.signer_position, full_name=document.signer_name
        ),
        due_date=document.due_date,
        other_info=edxml.OtherInfo(
            priority=priority_of(urgency_of(document.urgency)),
            sphere_of_promulgation=document.sphere_of_promulgation,
            typer_notation=document.typer_notation,
            promulgation_amount=document.promulgation_amount,
            page_amount=document.page_count,
            direction=document.direction,
            appendixes=list(document.appendixes or []),
        ),
        steering_type=document.steering_type,
        to_places=list(document.to_places or []),
        response_for=[
            edxml.ResponseFor(
                organ_id=r.get("organ_id"),
                code=r.get("code"),
                promulgation_date=dt.date.fromisoformat(r["promulgation_date"]) if r.get("promulgation_date") else None,
                document_id=r.get("edxml_document_id"),
            )
            for r in response_for_list(document.response_for)
        ],
    )
    hops = [
        edxml.TraceHeader(organ_id=h["organ_id"], timestamp=_timestamp(h["timestamp"])) for h in document.trace or []
    ]
    return edxml.Packet(
        message_header=header,
        trace_header_list=edxml.TraceHeaderList(trace_header=hops, bussiness=_bussiness(document.business, document)),
        attachments=[
            edxml.Attachment(
                content_id=a.content_id or f"{a.position + 1}.{a.sha256[:16]}",
                attachment_name=a.file_name,
                description=a.description,
                content_type=a.content_type,
                data=data,
            )
            for a, data in attachments
        ],
    )


def written_packet(packet: edxml.Packet, seal: Seal, max_bytes: int) -> bytes:
    """The packet's bytes, signed with the seal (CPU work: run it in a thread)."""
    unsigned = edxml.write_packet(packet)
    return edxml.sign_packet(
        unsigned,
        key=seal.key,
        certificate=seal.certificate,
        chain=seal.chain,
        max_bytes=max(max_bytes, len(unsigned) + 1),
    )


# --- packet → document ----------------------------------------------------------------------------


def _aware(value: dt.datetime | None) -> str | None:
    """A packet's time (Vietnam's clock, no zone) as the stored ISO UTC time."""
    stamp = edxml.zoned(value)
    return stamp.astimezone(dt.UTC).isoformat() if stamp is not None else None


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    """Leave out what the packet left out: the schema's defaults apply."""
    return {k: v for k, v in values.items() if v is not None and v != [] and v != {}}


def _business(bussiness: edxml.Bussiness | None) -> dict[str, Any] | None:
    if bussiness is None:
        return None
    info = bussiness.bussiness_document_info
    business = Business(
        document_id=bussiness.document_id,
        bussiness_doc_type=int(bussiness.bussiness_doc_type),
        bussiness_doc_reason=bussiness.bussiness_doc_reason,
        paper=bool(bussiness.paper),
        staff_info=_clean(vars(bussiness.staff_info)) if bussiness.staff_info is not None else None,
        document_info=info.document_info if info else None,
        document_receiver=info.document_receiver if info else None,
        receiver_list=[
            {"organ_id": r.organ_id, "receiver_type": r.receiver_type or 0}
            for r in (info.receiver_list if info else [])
        ],
        replacement_info_list=[
            {"document_id": r.document_id, "organ_ids": r.organ_id_list} for r in bussiness.replacement_info_list
        ],
    )
    return business.model_dump(mode="json", exclude_defaults=True)


def submission_of(packet: edxml.Packet, *, relation: dict[str, Any] | None) -> DocumentSubmit:
    """The submission a packet makes; a field the exchange refuses is named by its element."""
    header = packet.message_header
    other = header.other_info or edxml.OtherInfo()
    bussiness = packet.trace_header_list.bussiness
    signer = header.signer_info
    body = _clean(
        {
            "edxml_document_id": header.document_id,
            "code_number": header.code.code_number if header.code else None,
            "code_notation": header.code.code_notation if header.code else None,
            "type_name": header.document_type.type_name if header.document_type else None,
            "type_number": header.document_type.type if header.document_type else None,
            "type_detail": header.document_type.type_detail if header.document_type else None,
            "subject": header.subject,
            "content": header.content,
            "promulgation_place": header.promulgation_info.place if header.promulgation_info else None,
            "promulgation_date": header.promulgation_info.promulgation_date if header.promulgation_info else None,
            "signer": _clean(vars(signer)) if signer is not None else None,
            "urgency": priority_of(urgency_of(other.priority)),  # hỏa tốc hẹn giờ (4) is hỏa tốc
            "due_date": header.due_date,
            "steering_type": header.steering_type,
            "page_count": other.page_amount,
            "sphere_of_promulgation": other.sphere_of_promulgation,
            "typer_notation": other.typer_notation,
            "promulgation_amount": other.promulgation_amount,
            "direction": other.direction,
            "appendixes": other.appendixes,
            "to_places": header.to_places,
            "response_for": [
                _clean(
                    {
                        "organ_id": r.organ_id,
                        "code": r.code,
                        "promulgation_date": r.promulgation_date,
                        "edxml_document_id": r.document_id,
                    }
                )
                for r in header.response_for
            ],
            "recipients": [organ.organ_id for organ in header.to],
            "paper": bool(bussiness.paper) if bussiness and bussiness.paper is not None else None,
            "staff_info": _clean(vars(bussiness.staff_info)) if bussiness and bussiness.staff_info else None,
            "attachments": [
                _clean({"description": a.description, "content_id": a.content_id}) for a in packet.attachments
            ],
            "relation": relation,
        }
    )
    try:
        return DocumentSubmit.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        element = ELEMENT_OF.get(field, HEADER)
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"][1:])
        raise edxml.PacketInvalidError(
            f"{element}{where}: {first['msg']}", reason="element_invalid", element=element
        ) from exc


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


class PacketService:
    """Documents as edXML packets, out and in, over the document rules of :class:`DocumentService`."""

    def __init__(
        self,
        *,
        documents: DocumentService,
        repository: DocumentRepository,
        deliveries: DeliveryRepository,
        blobs: BlobStore,
        seal: Callable[[], Awaitable[Seal]],
        max_packet_bytes: int,
    ) -> None:
        self.documents = documents
        self.repository = repository
        self.deliveries = deliveries
        self.blobs = blobs
        self.seal = seal
        self.max_packet_bytes = max_packet_bytes

    async def export(self, document_id: Any, agency_code: str, *, actor: str | None = None) -> bytes:
        """The document as a signed packet, for its sender and its recipients (404 for anyone else)."""
        document, _visible = await self.documents.readable(document_id=document_id, agency_code=agency_code)
        attachments = await self.repository.attachments(document.id)
        size = sum(a.size for a in attachments)
        if size * 4 // 3 > self.max_packet_bytes:
            raise PayloadTooLargeError(
                f"The document's files ({size} bytes) make a packet larger than {self.max_packet_bytes} bytes",
                limit=self.max_packet_bytes,
            )
        deliveries = await self.deliveries.of_document(document.id)
        files = [(a, b"".join([chunk async for chunk in self.blobs.read(a.sha256)])) for a in attachments]
        packet = packet_of(document, deliveries=deliveries, attachments=files)
        seal = await self.seal()
        data = await asyncio.to_thread(written_packet, packet, seal, self.max_packet_bytes)
        if actor is not None:
            await record_audit(
                self.repository,
                messaging,
                "document.exported",
                actor=actor,
                agency_code=agency_code,
                document_id=document.id,
                details={"attachments": len(attachments)},
                deferred=True,
            )
        return data

    async def take(
        self,
        data: bytes,
        *,
        sender_code: str,
        sender_client_id: str,
        idempotency_key: str | None,
        actor: str | None = None,
    ) -> tuple[DocumentAccepted | RecallRequested, bool]:
        """Take a packet in: a new document, an update or a replacement (the answer, and whether it
        was created now), or a recall (its answer)."""
        packet = await asyncio.to_thread(self._read, data)
        await self._check_sender(packet, sender_code)
        bussiness = packet.trace_header_list.bussiness
        kind = packet.bussiness_doc_type
        if kind == BussinessDocType.RECALL:
            original = await self._original(sender_code, _target(packet), element=f"{BUSINESS}/DocumentId")
            request = RecallRequest(
                reason=(bussiness.bussiness_doc_reason if bussiness else None) or "Thu hồi văn bản",
                recipients=[organ.organ_id.upper() for organ in packet.message_header.to] or None,
            )
            return await self.documents.recall(original.id, sender_code, request, actor=actor), False
        relation: dict[str, Any] | None = None
        if kind in (BussinessDocType.UPDATE, BussinessDocType.REPLACE):
            target, element = _target(packet), f"{BUSINESS}/DocumentId"
            if kind == BussinessDocType.REPLACE and bussiness and bussiness.replacement_info_list:
                target = bussiness.replacement_info_list[0].document_id
                element = f"{BUSINESS}/ReplacementInfoList/ReplacementInfo/DocumentId"
            original = await self._original(sender_code, target, element=element)
            info = bussiness.bussiness_document_info if bussiness else None
            relation = {
                "kind": "update" if kind == BussinessDocType.UPDATE else "replace",
                "document_id": str(original.id),
            }
            if kind == BussinessDocType.UPDATE and info is not None:
                relation["metadata_changed"] = bool(info.document_info) if info.document_info is not None else True
                relation["recipients_changed"] = bool(info.document_receiver)
            if bussiness and bussiness.bussiness_doc_reason:
                relation["reason"] = bussiness.bussiness_doc_reason
        submission = submission_of(packet, relation=relation)
        header = packet.message_header
        try:
            business = _business(bussiness)
        except ValidationError as exc:  # StaffInfo was checked with the submission: nothing else is bounded
            raise edxml.PacketInvalidError(
                f"{BUSINESS}: {exc.errors()[0]['msg']}", reason="element_invalid", element=BUSINESS
            ) from exc
        details = PacketDetails(
            sender_organ=dict(vars(header.from_)),
            trace=[
                {"organ_id": h.organ_id, "timestamp": stamp}
                for h in packet.trace_header_list.trace_header
                if (stamp := _aware(h.timestamp)) is not None
            ],
            business=business,
        )
        files = [AttachmentUpload(file_name=a.attachment_name, chunks=_chunks(a.data)) for a in packet.attachments]
        return await self.documents.submit(
            sender_code=sender_code,
            sender_client_id=sender_client_id,
            data=submission,
            files=files,
            idempotency_key=idempotency_key,
            packet=details,
        )

    def _read(self, data: bytes) -> edxml.Packet:
        """Read the packet safely; a signed one must verify (a changed packet is refused with the reason).

        Parsed once: a packet that names a signature is read by the verifier, which reads the very
        tree it verified; only one that turns out to carry none is read again, unsigned."""
        limits = {"max_bytes": self.max_packet_bytes, "max_attachment_bytes": self.max_packet_bytes}
        if b"SignatureValue" in data:
            try:
                packet, _check = edxml.read_signed_packet(data, **limits)
                return packet
            except edxml.PacketSignatureInvalidError as exc:
                if exc.reason != "signature_missing":
                    raise
        packet = edxml.parse_packet(data, **limits)
        if packet.signature is not None:  # a signature element without its value: the verifier says why
            packet, _check = edxml.read_signed_packet(data, **limits)
        return packet

    async def _check_sender(self, packet: edxml.Packet, sender_code: str) -> None:
        """``From`` is the calling agency (by either of its codes); an agency sends only as itself."""
        given = packet.message_header.from_.organ_id.strip().upper()
        if given == sender_code:
            return
        known = await self.documents.registry.agency(given)
        if known is None or known.code != sender_code:
            raise PacketSenderMismatchError(
                f"The packet is from {given}, not from your agency {sender_code}",
                element=f"{HEADER}/From/OrganId",
                organ_id=given,
            )

    async def _original(self, sender_code: str, edxml_document_id: str | None, *, element: str) -> Document:
        """The sender's document a recall, update or replacement packet names by its DocumentId."""
        found = (
            await self.repository.by_edxml_document_id(sender_code, edxml_document_id) if edxml_document_id else None
        )
        if found is None:
            raise DocumentNotFoundError(
                f"{element}: you sent no document {edxml_document_id!r}", element=element, reason="document_unknown"
            )
        return found


def _target(packet: edxml.Packet) -> str | None:
    """The DocumentId a recall or update names: Bussiness/DocumentId, else the header's."""
    bussiness = packet.trace_header_list.bussiness
    return (bussiness.document_id if bussiness else None) or packet.message_header.document_id
