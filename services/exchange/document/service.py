"""Rules for documents: accept a document for its recipients, show it to those who may read it."""

from __future__ import annotations

import base64
import re
import unicodedata
import uuid
from collections.abc import AsyncIterator, Sequence

import puremagic
from fastapi import UploadFile
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.exchange.blobstore import CHUNK, BlobStore, StoredBlob
from services.exchange.delivery.status import StatusCode
from services.exchange.document.repository import DocumentRepository
from services.exchange.document.schemas import (
    AttachmentRead,
    DeliveryEventRead,
    DeliveryRead,
    DeliverySummary,
    DocumentAccepted,
    DocumentRead,
    DocumentSubmit,
    InboxItem,
    InboxPage,
    Redirect,
    ResponseFor,
    Signer,
)
from services.exchange.errors import (
    AttachmentMissingError,
    AttachmentNotFoundError,
    DocumentNotFoundError,
    RecipientInvalidError,
    SenderInactiveError,
)
from services.exchange.models import Attachment, Delivery, DeliveryEvent, Document, messaging
from services.exchange.registry_client import RegistryClient
from shared.auth import Principal
from shared.db import utcnow
from shared.errors import BadRequestError, ConflictError
from shared.messaging import record_event

_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')


def sanitize_file_name(name: str | None, position: int) -> str:
    """Keep the base name, in NFC, without path separators or control characters."""
    base = unicodedata.normalize("NFC", (name or "").replace("\\", "/").rsplit("/", 1)[-1])
    base = _UNSAFE.sub("_", base).strip(" .")
    return base[:255] or f"attachment-{position + 1}"


def sniff_content_type(head: bytes, declared: str | None) -> str:
    """Return the content type the bytes show, falling back to the declared one."""
    try:
        matches = puremagic.magic_string(head)
    except (puremagic.PureError, ValueError):
        matches = []
    for match in matches:
        if match.mime_type:
            return str(match.mime_type)
    return declared or "application/octet-stream"


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(CHUNK):
        yield chunk


class DocumentService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.documents = DocumentRepository(session)

    async def submit(
        self,
        *,
        sender: Principal,
        sender_code: str,
        data: DocumentSubmit,
        files: Sequence[UploadFile],
        idempotency_key: str | None,
        registry: RegistryClient,
        blobs: BlobStore,
        max_attachment_bytes: int,
    ) -> tuple[DocumentAccepted, bool]:
        """Accept a document: one delivery per recipient, attachments in the blob store, one event.

        Returns the answer and whether it was created now (False: an idempotent replay).
        """
        if idempotency_key:
            existing = await self.documents.by_idempotency_key(sender_code, idempotency_key)
            if existing is not None:
                return await self._accepted(existing), False
        if not files:
            raise AttachmentMissingError("Send at least one file in the `files` part")
        sender_agency = await registry.agency(sender_code, sender.token)
        if sender_agency is None or sender_agency.status != "active":
            raise SenderInactiveError(f"Agency {sender_code} is not active: it cannot send")
        resolution = await registry.resolve(data.recipients, data.groups, sender.token)
        if resolution.unknown_codes or resolution.inactive or resolution.unknown_groups:
            raise RecipientInvalidError(
                "Some addressees cannot receive documents: check the codes and groups in the registry",
                unknown_recipients=resolution.unknown_codes,
                inactive_recipients=resolution.inactive,
                unknown_groups=resolution.unknown_groups,
            )
        if sender_code in data.recipients:
            raise RecipientInvalidError("An agency does not send documents to itself", unknown_recipients=[])
        # a group that includes the sender does not send the document back to it
        recipient_codes = [r["code"] for r in resolution.recipients if r["code"] != sender_code]
        if not recipient_codes:
            raise RecipientInvalidError("The groups have no active member other than the sender")
        stored: list[tuple[UploadFile, StoredBlob]] = []
        for upload in files:
            stored.append((upload, await blobs.put(_chunks(upload), max_bytes=max_attachment_bytes)))

        now = utcnow()
        document = Document(
            sender_code=sender_code,
            sender_client_id=sender.client_id,
            idempotency_key=idempotency_key,
            code_number=data.code_number,
            code_notation=data.code_notation,
            type_name=data.type_name,
            subject=data.subject,
            promulgation_place=data.promulgation_place,
            promulgation_date=data.promulgation_date,
            signer_competence=data.signer.competence,
            signer_position=data.signer.position,
            signer_name=data.signer.full_name,
            urgency=data.urgency,
            due_date=data.due_date,
            steering_type=data.steering_type,
            page_count=data.page_count,
            description=data.description,
            response_for=data.response_for.model_dump(mode="json") if data.response_for else None,
            created_at=now,
        )
        self.session.add(document)
        await self.documents.flush()
        attachments = [
            Attachment(
                document_id=document.id,
                position=position,
                file_name=sanitize_file_name(upload.filename, position),
                content_type=sniff_content_type(blob.head, upload.content_type),
                size=blob.size,
                sha256=blob.sha256,
            )
            for position, (upload, blob) in enumerate(stored)
        ]
        deliveries = [
            Delivery(
                document_id=document.id,
                recipient_code=code,
                status=StatusCode.PENDING.value,
                created_at=now,
                updated_at=now,
            )
            for code in recipient_codes
        ]
        self.documents.add_all([*attachments, *deliveries])
        try:
            await self.documents.flush()
        except IntegrityError as exc:
            raise ConflictError("A request with this Idempotency-Key is in progress; retry it") from exc
        self.documents.add_all(
            [
                DeliveryEvent(delivery_id=d.id, status=d.status, actor_code=sender_code, note=None, created_at=now)
                for d in deliveries
            ]
        )
        await self.documents.flush()
        accepted = DocumentAccepted(
            id=document.id,
            deliveries=[DeliverySummary(id=d.id, recipient_code=d.recipient_code, status=d.status) for d in deliveries],
            attachments=[_attachment(a) for a in attachments],
            redirected=[Redirect(**r) for r in resolution.redirected],
        )
        await record_event(
            self.session,
            messaging,
            "document.submitted.v1",
            {
                "document_id": str(document.id),
                "sender_code": sender_code,
                "code": f"{data.code_number}/{data.code_notation}",
                "type_name": data.type_name,
                "subject": data.subject,
                "urgency": data.urgency,
                "promulgation_date": data.promulgation_date.isoformat(),
                "deliveries": [{"id": str(d.id), "recipient_code": d.recipient_code} for d in deliveries],
                "attachments": [
                    {"sha256": a.sha256, "size": a.size, "content_type": a.content_type} for a in attachments
                ],
            },
        )
        return accepted, True

    async def _accepted(self, document: Document) -> DocumentAccepted:
        deliveries = await self.documents.deliveries(document.id)
        attachments = await self.documents.attachments(document.id)
        return DocumentAccepted(
            id=document.id,
            deliveries=[DeliverySummary(id=d.id, recipient_code=d.recipient_code, status=d.status) for d in deliveries],
            attachments=[_attachment(a) for a in attachments],
        )

    async def _readable(self, document_id: uuid.UUID, agency_code: str) -> tuple[Document, Sequence[Delivery]]:
        """Return the document and the deliveries ``agency_code`` may see; 404 for anyone else."""
        document = await self.documents.get(document_id)
        if document is None:
            raise DocumentNotFoundError(f"No document {document_id} is visible to {agency_code}")
        if document.sender_code == agency_code:
            return document, await self.documents.deliveries(document.id)
        own = await self.documents.delivery_to(document.id, agency_code)
        if own is None:
            raise DocumentNotFoundError(f"No document {document_id} is visible to {agency_code}")
        return document, [own]

    async def get(self, document_id: uuid.UUID, agency_code: str) -> DocumentRead:
        """Return a document: the sender sees every recipient's status and history, a recipient its own."""
        document, deliveries = await self._readable(document_id, agency_code)
        attachments = await self.documents.attachments(document.id)
        events = await self.documents.history([d.id for d in deliveries])
        by_delivery: dict[uuid.UUID, list[DeliveryEventRead]] = {}
        for event in events:
            by_delivery.setdefault(event.delivery_id, []).append(
                DeliveryEventRead(
                    status=event.status,
                    actor_code=event.actor_code,
                    note=event.note,
                    created_at=event.created_at,
                )
            )
        return DocumentRead(
            id=document.id,
            sender_code=document.sender_code,
            code_number=document.code_number,
            code_notation=document.code_notation,
            type_name=document.type_name,
            subject=document.subject,
            promulgation_place=document.promulgation_place,
            promulgation_date=document.promulgation_date,
            signer=Signer(
                competence=document.signer_competence,
                position=document.signer_position,
                full_name=document.signer_name,
            ),
            urgency=document.urgency,
            due_date=document.due_date,
            steering_type=document.steering_type,
            page_count=document.page_count,
            description=document.description,
            response_for=ResponseFor.model_validate(document.response_for) if document.response_for else None,
            created_at=document.created_at,
            attachments=[_attachment(a) for a in attachments],
            deliveries=[
                DeliveryRead(
                    id=d.id,
                    recipient_code=d.recipient_code,
                    status=d.status,
                    updated_at=d.updated_at,
                    history=by_delivery.get(d.id, []),
                )
                for d in deliveries
            ],
        )

    async def attachment(self, document_id: uuid.UUID, attachment_id: uuid.UUID, agency_code: str) -> Attachment:
        """Return an attachment's record if the agency may read the document."""
        await self._readable(document_id, agency_code)
        attachment = await self.documents.attachment(document_id, attachment_id)
        if attachment is None:
            raise AttachmentNotFoundError(f"Document {document_id} has no attachment {attachment_id}")
        return attachment

    async def inbox(self, agency_code: str, *, cursor: str | None, limit: int, status: str | None) -> InboxPage:
        """Return the deliveries addressed to an agency, newest first."""
        before = _decode_cursor(cursor) if cursor else None
        rows = await self.documents.inbox(agency_code, before=before, limit=limit + 1, status=status)
        page = rows[:limit]
        items = [
            InboxItem(
                delivery_id=delivery.id,
                status=delivery.status,
                document_id=document.id,
                sender_code=document.sender_code,
                code_number=document.code_number,
                code_notation=document.code_notation,
                type_name=document.type_name,
                subject=document.subject,
                urgency=document.urgency,
                promulgation_date=document.promulgation_date,
                received_at=delivery.created_at,
            )
            for delivery, document in page
        ]
        next_cursor = _encode_cursor(page[-1][0].id) if len(rows) > limit else None
        return InboxPage(items=items, next_cursor=next_cursor)


def _attachment(a: Attachment) -> AttachmentRead:
    return AttachmentRead(id=a.id, file_name=a.file_name, content_type=a.content_type, size=a.size, sha256=a.sha256)


def _encode_cursor(delivery_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(delivery_id.bytes).decode().rstrip("=")


def _decode_cursor(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError as exc:
        raise BadRequestError("The cursor is not valid; use next_cursor from a previous page") from exc
