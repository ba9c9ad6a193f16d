"""Statuses as edXML status packets (QCVN 102), in and out, for the district systems that speak
edXML: a recipient posts a status packet (either wrapper) and it is applied as
``POST /v1/deliveries/{id}/status`` would apply it; the sender (or the recipient) reads a
delivery's latest status as a status packet.

A packet names the document by the sender's edXML DocumentId (``ResponseFor``), not by our ids; a
national 03 / 02 answering a pending recall is our 15 / 16 (``edxml.codes``)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Literal

from pydantic import ValidationError

from services.exchange import edxml
from services.exchange.delivery.repository import DeliveryRepository
from services.exchange.delivery.schemas import StatusReport, StatusReported
from services.exchange.delivery.service import DeliveryService
from services.exchange.delivery.status import Outcome, StatusCode
from services.exchange.document.packets import document_id_of
from services.exchange.document.repository import DocumentRepository
from services.exchange.errors import DeliveryNotFoundError, PacketSenderMismatchError
from services.exchange.events import StaffInfo
from services.exchange.models import Delivery, DeliveryEvent, Document

STATUS = "Status"

CanonicalCode = Callable[[str], Awaitable[str | None]]
"""The agency's code as the registry keeps it, for a code of either form (None: no such agency)."""


class StatusPacketService:
    """Status packets in and out over the delivery rules of :class:`DeliveryService`."""

    def __init__(
        self,
        *,
        statuses: DeliveryService,
        documents: DocumentRepository,
        deliveries: DeliveryRepository,
        canonical_code: CanonicalCode,
        max_packet_bytes: int,
    ) -> None:
        self.statuses = statuses
        self.documents = documents
        self.deliveries = deliveries
        self.canonical_code = canonical_code
        self.max_packet_bytes = max_packet_bytes

    async def take(self, data: bytes, recipient_code: str, *, actor: str | None = None) -> StatusReported:
        """Apply a recipient's status packet to its delivery of the document it names."""
        packet = await asyncio.to_thread(edxml.parse_status, data, max_bytes=self.max_packet_bytes)
        await self._check_reporter(packet, recipient_code)
        delivery = await self._delivery_of(packet, recipient_code)
        answering = (
            edxml.BussinessDocType.RECALL
            if delivery.recall_status == StatusCode.RECALL_REQUESTED
            else edxml.BussinessDocType.NEW
        )
        code = edxml.codes.status_in(packet.status_code, answering)
        try:
            report = StatusReport(
                status=code,
                note=packet.description[:2000] if packet.description else None,
                timestamp=edxml.zoned(packet.timestamp),
                staff=StaffInfo(**kept) if packet.staff_info and (kept := packet.staff_info.kept()) else None,
            )
        except ValidationError as exc:
            error = exc.errors()[0]
            field = str(error["loc"][0]) if error["loc"] else "StatusCode"
            element = {"status": "StatusCode", "timestamp": "Timestamp", "staff": "StaffInfo", "note": "Description"}
            raise edxml.PacketInvalidError(
                f"{STATUS}/{element.get(field, field)}: {error['msg']}",
                reason="element_invalid",
                element=f"{STATUS}/{element.get(field, field)}",
            ) from exc
        return await self.statuses.report_status(recipient_code, delivery.id, report, actor=actor)

    async def export(
        self, delivery_id: uuid.UUID, agency_code: str, wrapper: Literal["edxml", "soap"] = "edxml"
    ) -> bytes:
        """The delivery's latest reported status as a status packet, for its sender or its recipient."""
        delivery = await self.deliveries.get(delivery_id)
        document = await self.documents.get(delivery.document_id) if delivery is not None else None
        if delivery is None or document is None or agency_code not in (delivery.recipient_code, document.sender_code):
            raise DeliveryNotFoundError(f"No delivery {delivery_id} of a document your agency sent or received")
        # what the delivery stands at: a stale report (older than one counted) is history, not status
        reports = [
            e
            for e in await self.deliveries.history([delivery.id])
            if e.status != StatusCode.PENDING and e.outcome != Outcome.STALE
        ]
        if not reports:
            raise DeliveryNotFoundError(
                f"Delivery {delivery_id} has no reported status yet: its recipient has not reported 01",
                reason="no_status_yet",
            )
        packet = status_packet(document, delivery, reports[-1], wrapper)
        return await asyncio.to_thread(edxml.write_status, packet)

    async def _check_reporter(self, packet: edxml.StatusPacket, recipient_code: str) -> None:
        """``From`` is the calling agency (by either of its codes): an agency reports only as itself."""
        given = packet.from_.organ_id.strip().upper()
        if given != recipient_code and await self.canonical_code(given) != recipient_code:
            raise PacketSenderMismatchError(
                f"The status packet is from {given}, not from your agency {recipient_code}",
                element=f"{STATUS}/From/OrganId",
                organ_id=given,
            )

    async def _delivery_of(self, packet: edxml.StatusPacket, recipient_code: str) -> Delivery:
        """The caller's delivery of the document ``ResponseFor`` names (its sender and DocumentId)."""
        answered = packet.response_for
        sender = (answered.organ_id or "").strip().upper()
        if not answered.document_id or not sender:
            raise edxml.PacketInvalidError(
                f"{STATUS}/ResponseFor: the OrganId and DocumentId of the document reported on are required",
                reason="element_missing",
                element=f"{STATUS}/ResponseFor",
            )
        sender = await self.canonical_code(sender) or sender
        document = await self.documents.by_edxml_document_id(sender, answered.document_id.strip())
        delivery = await self.deliveries.to_recipient(document.id, recipient_code) if document is not None else None
        if delivery is None:
            raise DeliveryNotFoundError(
                f"{STATUS}/ResponseFor: {sender} sent your agency no document {answered.document_id!r}",
                element=f"{STATUS}/ResponseFor/DocumentId",
            )
        return delivery


def status_packet(
    document: Document, delivery: Delivery, report: DeliveryEvent, wrapper: Literal["edxml", "soap"]
) -> edxml.StatusPacket:
    """A reported status as the recipient's system would send it: national codes (15 / 16 answering
    a recall are 03 / 02), the reporter's own time when it gave one, its StaffInfo."""
    recall_answer = report.status in (StatusCode.RECALL_AGREED, StatusCode.RECALL_REFUSED) and (
        delivery.recall_status == report.status
    )
    answering = edxml.BussinessDocType.RECALL if recall_answer else edxml.BussinessDocType.NEW
    organ = delivery.organ or {}
    staff = report.staff or {}
    return edxml.StatusPacket(
        response_for=edxml.ResponseFor(
            organ_id=document.sender_code,
            code=f"{document.code_number}/{document.code_notation}",
            promulgation_date=document.promulgation_date,
            document_id=document_id_of(document),
        ),
        from_=edxml.Organization(
            organ_id=delivery.recipient_code,
            organization_in_charge=organ.get("organization_in_charge"),
            organ_name=organ.get("organ_name"),
            organ_add=organ.get("organ_add"),
            email=organ.get("email"),
            telephone=organ.get("telephone"),
            fax=organ.get("fax"),
            website=organ.get("website"),
        ),
        status_code=edxml.codes.status_out(report.status, answering),
        description=report.note,
        timestamp=report.reported_at or report.created_at,
        staff_info=edxml.StaffInfo(**{k: staff.get(k) for k in edxml.STAFF_INFO_LIMITS}) if staff else None,
        wrapper=wrapper,
    )
