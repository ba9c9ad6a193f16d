"""SQL for the packets the connector sent to or took from the hub."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from services.hub.models import HubMessage
from shared.repository import Repository


class HubMessageRepository(Repository[HubMessage]):
    model = HubMessage

    async def by_key(self, key: str) -> HubMessage | None:
        """The packet recorded under ``key`` (``delivery:…``, ``entry:…``, ``hub:…``), if any."""
        found: HubMessage | None = await self.session.scalar(select(HubMessage).where(HubMessage.key == key))
        return found

    async def sent_delivery(self, edxml_document_id: str, recipient_code: str) -> HubMessage | None:
        """The document packet sent to ``recipient_code`` under this edXML DocumentId."""
        found: HubMessage | None = await self.session.scalar(
            select(HubMessage)
            .where(
                HubMessage.direction == "out",
                HubMessage.kind == "edoc",
                HubMessage.edxml_document_id == edxml_document_id,
                HubMessage.peer_code == recipient_code,
            )
            .limit(1)
        )
        return found

    async def imported(self, document_id: uuid.UUID) -> HubMessage | None:
        """The packet from the hub that became the local document ``document_id``."""
        found: HubMessage | None = await self.session.scalar(
            select(HubMessage)
            .where(HubMessage.direction == "in", HubMessage.kind == "edoc", HubMessage.document_id == document_id)
            .order_by(HubMessage.created_at)
            .limit(1)
        )
        return found

    async def imports_of(self, edxml_document_id: str, sender_code: str) -> list[HubMessage]:
        """The documents made of packets from ``sender_code`` under this edXML DocumentId, oldest first
        (more than one when copies of the packet named different local recipients)."""
        rows = await self.session.scalars(
            select(HubMessage)
            .where(
                HubMessage.direction == "in",
                HubMessage.kind == "edoc",
                HubMessage.outcome == "imported",
                HubMessage.edxml_document_id == edxml_document_id,
                HubMessage.peer_code == sender_code,
            )
            .order_by(HubMessage.created_at)
        )
        return list(rows)

    async def pending_recall(self, delivery_id: uuid.UUID) -> HubMessage | None:
        """The recall sent for this delivery and not answered yet."""
        found: HubMessage | None = await self.session.scalar(
            select(HubMessage)
            .where(
                HubMessage.direction == "out",
                HubMessage.kind == "recall",
                HubMessage.delivery_id == delivery_id,
                HubMessage.outcome == "sent",
            )
            .limit(1)
        )
        return found
