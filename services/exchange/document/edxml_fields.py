"""The edXML (QCVN 102) parts of a document the exchange makes itself when a document is sent
through the API — the sender's and recipients' organ info frozen from the registry's answers, the
Bussiness block — and what a document taken in as a packet keeps as the packet says it."""

from __future__ import annotations

from collections.abc import Sequence

from services.exchange.document.schemas import Business, DocumentSubmit, Organ, PacketDetails, ReplacementInfo
from services.exchange.models import Document
from shared.clients import Resolution
from shared.clients.registry import AgencyInfo, ResolvedAgency


def sender_organ(sender: AgencyInfo | None, sender_code: str) -> dict[str, str | None]:
    """The sender's organ info (edXML From) as the registry knows it at send time."""
    if sender is None:
        return Organ(organ_id=sender_code).model_dump(mode="json")
    return organ_of(sender_code, sender.name, sender.email, sender.phone, sender.address, sender.website)


def organ_of(
    code: str, name: str, email: str | None, phone: str | None, address: str | None, website: str | None
) -> dict[str, str | None]:
    """An agency's organ info (edXML From/To) from its registry entry."""
    return Organ(
        organ_id=code, organ_name=name, email=email, telephone=phone, organ_add=address, website=website
    ).model_dump(mode="json")


def recipient_organs(resolution: Resolution) -> dict[str, dict[str, str | None]]:
    """Each recipient's organ info (edXML To) as the registry resolved it at send time."""
    return {r.code: resolved_organ(r) for r in resolution.recipients}


def resolved_organ(recipient: ResolvedAgency) -> dict[str, str | None]:
    """One resolved recipient's organ info."""
    return organ_of(
        recipient.code, recipient.name, recipient.email, recipient.phone, recipient.address, recipient.website
    )


def business_of(
    data: DocumentSubmit, original: Document | None, recipients: Sequence[str], document_id: str
) -> Business:
    """The edXML Bussiness block of a document sent through the API: its kind, reason, paper, clerk;
    its DocumentId is the document's own (new) or the one it updates or replaces."""
    relation = data.relation
    kind = relation.kind if relation else "new"
    business = Business(
        document_id=original.edxml_document_id if original is not None and original.edxml_document_id else document_id,
        bussiness_doc_type={"new": 0, "update": 2, "replace": 3}[kind],
        bussiness_doc_reason=relation.reason if relation else None,
        paper=data.paper,
        staff_info=data.staff_info,
    )
    if relation is not None and relation.kind == "update":
        business.document_info = relation.metadata_changed
        business.document_receiver = relation.recipients_changed
    if relation is not None and relation.kind == "replace" and original is not None and original.edxml_document_id:
        business.replacement_info_list = [
            ReplacementInfo(document_id=original.edxml_document_id, organ_ids=sorted(recipients))
        ]
    return business


def keep_packet_details(document: Document, packet: PacketDetails) -> None:
    """Keep what the packet says of its sender, its hops and its Bussiness block."""
    document.sender_organ = packet.sender_organ
    if packet.trace:
        document.trace = packet.trace
    if packet.business is not None:
        document.business = packet.business
