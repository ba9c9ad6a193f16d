"""Rules for documents: validate and accept a document for its recipients (one delivery each),
update, replace and recall, show a document only to those who may read it, and the sent and
received lists with their filters."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Sequence

from fastapi import UploadFile
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.exchange.blobstore import CHUNK, BlobStore, StagedBlob
from services.exchange.calendar import WorkingCalendar
from services.exchange.delivery.service import record_status_change
from services.exchange.delivery.status import StatusCode
from services.exchange.document.attachments import refine_zip, sanitize_file_name, sniff_head
from services.exchange.document.repository import DocumentRepository, ListFilters, is_overdue
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
    RecallRequest,
    RecallRequested,
    Redirect,
    ResponseFor,
    SentItem,
    SentPage,
    Signer,
)
from services.exchange.document.types import document_type
from services.exchange.errors import (
    AttachmentMissingError,
    AttachmentNotFoundError,
    DocumentClassifiedError,
    DocumentDuplicateError,
    DocumentNotFoundError,
    IdempotencyKeyReusedError,
    MetadataInvalidError,
    RecallInvalidError,
    RecipientInvalidError,
    RelationInvalidError,
)
from services.exchange.events import (
    AttachmentRef,
    DeliveryRef,
    DocumentRecallRequested,
    DocumentReplaced,
    DocumentSubmitted,
    payload,
)
from services.exchange.models import Attachment, Delivery, DeliveryEvent, Document, messaging
from shared.auth import Principal
from shared.clients import RegistryClient, Resolution
from shared.db import new_id, utcnow
from shared.errors import AgencyInactiveError, BadRequestError, ConflictError
from shared.messaging import record_event
from shared.text import fold

__all__ = ["DocumentService", "sanitize_file_name"]

SECRET_MARKS = {"mat", "toi mat", "tuyet mat"}  # Mật, Tối mật, Tuyệt mật, folded
NOT_SECRET = {"", "thuong", "binh thuong", "khong", "normal", "none"}


def check_confidentiality(value: str | None) -> None:
    """State secrets never enter the system (Decision 28/2018)."""
    folded = fold(value or "").strip()
    if folded in SECRET_MARKS:
        raise DocumentClassifiedError(
            f"Documents marked {value!r} are state secrets: they must not be sent through this system"
        )
    if folded not in NOT_SECRET:
        raise MetadataInvalidError(
            "confidentiality must be empty (normal) — Mật, Tối mật and Tuyệt mật documents are refused",
            errors=[{"loc": ["confidentiality"], "msg": f"unknown value {value!r}", "type": "value_error"}],
        )


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(CHUNK):
        yield chunk


def _attachment(a: Attachment) -> AttachmentRead:
    return AttachmentRead(id=a.id, file_name=a.file_name, content_type=a.content_type, size=a.size, sha256=a.sha256)


def _summary(d: Delivery) -> DeliverySummary:
    return DeliverySummary(id=d.id, recipient_code=d.recipient_code, status=d.status)


def encode_cursor(row_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(row_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        return uuid.UUID(bytes=raw)
    except (ValueError, binascii.Error) as exc:
        raise BadRequestError("The cursor is not valid; use next_cursor from a previous page") from exc


class DocumentService:
    def __init__(self, session: AsyncSession, calendar: WorkingCalendar | None = None) -> None:
        self.session = session
        self.documents = DocumentRepository(session)
        self.calendar = calendar or WorkingCalendar()

    # -- sending -------------------------------------------------------------------------------

    async def _replay(self, sender_code: str, idempotency_key: str | None, data: DocumentSubmit) -> Document | None:
        if idempotency_key:
            existing = await self.documents.by_idempotency_key(sender_code, idempotency_key)
            if existing is not None:
                return existing
        if data.sender_document_id:
            return await self.documents.by_sender_document_id(sender_code, data.sender_document_id)
        return None

    async def _original(self, sender_code: str, data: DocumentSubmit) -> Document | None:
        """The document an update or replacement refers to: the sender's own, not replaced yet."""
        if data.relation is None:
            return None
        original = await self.documents.get(data.relation.document_id)
        if original is None or original.sender_code != sender_code:
            raise DocumentNotFoundError(f"You sent no document {data.relation.document_id}")
        if original.superseded_by_id is not None:
            raise RelationInvalidError(
                f"Document {original.id} was replaced by {original.superseded_by_id}; refer to that one",
                superseded_by=str(original.superseded_by_id),
            )
        return original

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
        max_attachments: int = 50,
    ) -> tuple[DocumentAccepted, bool]:
        """Accept a document: one delivery per recipient, attachments in the blob store, one event.

        Everything is checked before anything is stored. Returns the answer and whether it was
        created now (False: an idempotent replay of an earlier request).
        """
        fingerprint = hashlib.sha256(
            json.dumps(data.model_dump(mode="json"), sort_keys=True, ensure_ascii=False).encode()
        ).hexdigest()
        replayed = await self._replay(sender_code, idempotency_key, data)
        if replayed is not None:
            if replayed.request_fingerprint not in (None, fingerprint):
                raise IdempotencyKeyReusedError(
                    f"Document {replayed.id} was sent with this Idempotency-Key or sender_document_id and other "
                    "metadata; use a new key for a new document",
                    document_id=str(replayed.id),
                )
            return await self._accepted(replayed), False
        check_confidentiality(data.confidentiality)
        if not files:
            raise AttachmentMissingError("Send at least one file in the `files` part")
        if len(files) > max_attachments:
            raise BadRequestError(f"At most {max_attachments} files per document", max_attachments=max_attachments)
        original = await self._original(sender_code, data)
        year = data.promulgation_date.year
        if original is None:
            duplicate = await self.documents.same_number(sender_code, data.code_number, data.code_notation, year)
            if duplicate is not None:
                raise DocumentDuplicateError(
                    f"{data.code_number}/{data.code_notation} was already sent in {year} (document {duplicate.id}); "
                    "to change it, send an update or a replacement (`relation`)",
                    document_id=str(duplicate.id),
                )
        sender_agency = await registry.agency(sender_code)
        if sender_agency is None or sender_agency.status != "active":
            raise AgencyInactiveError(f"Agency {sender_code} is not active: it cannot send", agency_code=sender_code)
        resolution = await registry.resolve(data.recipients, data.groups)
        if resolution.unknown_codes or resolution.inactive or resolution.unknown_groups:
            raise RecipientInvalidError(
                "Some addressees cannot receive documents: check the codes and groups in the registry",
                unknown_recipients=resolution.unknown_codes,
                inactive_recipients=[i.model_dump() for i in resolution.inactive],
                unknown_groups=resolution.unknown_groups,
            )
        if sender_code in data.recipients:
            raise RecipientInvalidError("An agency does not send documents to itself", unknown_recipients=[])
        # a group that includes the sender does not send the document back to it
        recipient_codes = [r.code for r in resolution.recipients if r.code != sender_code]
        if not recipient_codes:
            raise RecipientInvalidError("The groups have no active member other than the sender")

        staged = await self._stage_files(files, blobs, max_attachment_bytes)
        try:
            accepted = await self._record(
                sender, sender_code, idempotency_key, fingerprint, data, original, recipient_codes, resolution, staged
            )
            # the files go into the store before the transaction commits, so a committed document
            # never lacks a file; a failed commit leaves unreferenced blobs, never missing ones
            for _name, _type, blob in staged:
                await blobs.commit(blob)
        finally:
            for _name, _type, blob in staged:
                blobs.discard(blob)  # what was not committed
        return accepted, True

    async def _stage_files(
        self, files: Sequence[UploadFile], blobs: BlobStore, max_bytes: int
    ) -> list[tuple[str, str, StagedBlob]]:
        """Stream every file to the store's tmp/, reading its type from its bytes; keep none if one fails."""
        staged: list[tuple[str, str, StagedBlob]] = []
        try:
            for position, upload in enumerate(files):
                name = sanitize_file_name(upload.filename, position)
                kinds: list[str] = []

                def inspect(head: bytes, file_name: str = name, found: list[str] = kinds) -> None:
                    found.append(sniff_head(head, file_name))

                blob = await blobs.stage(_chunks(upload), max_bytes=max_bytes, inspect_head=inspect)
                staged.append((name, kinds[0], blob))
                if kinds[0] == "application/zip":
                    staged[-1] = (name, await asyncio.to_thread(refine_zip, blob.path), blob)
        except BaseException:
            for _name, _type, blob in staged:
                blobs.discard(blob)
            raise
        return staged

    async def _record(
        self,
        sender: Principal,
        sender_code: str,
        idempotency_key: str | None,
        fingerprint: str,
        data: DocumentSubmit,
        original: Document | None,
        recipient_codes: list[str],
        resolution: Resolution,
        stored: list[tuple[str, str, StagedBlob]],
    ) -> DocumentAccepted:
        """Write the document, its attachments, its deliveries and their history, and the event."""
        year = data.promulgation_date.year
        now = utcnow()
        document = Document(
            id=new_id(),
            sender_code=sender_code,
            sender_client_id=sender.client_id,
            idempotency_key=idempotency_key,
            sender_document_id=data.sender_document_id,
            request_fingerprint=fingerprint,
            kind=data.relation.kind if data.relation else "new",
            original_id=original.id if original else None,
            update_info=(
                {
                    "metadata_changed": data.relation.metadata_changed,
                    "recipients_changed": data.relation.recipients_changed,
                }
                if data.relation and data.relation.kind == "update"
                else None
            ),
            code_number=data.code_number,
            code_notation=data.code_notation,
            type_name=data.type_name,
            type_code=document_type(data.type_name)[0],
            subject=data.subject,
            promulgation_place=data.promulgation_place,
            promulgation_date=data.promulgation_date,
            promulgation_year=year,
            signer_competence=data.signer.competence,
            signer_position=data.signer.position,
            signer_name=data.signer.full_name,
            urgency=data.urgency,
            due_date=data.due_date,
            steering_type=data.steering_type,
            page_count=data.page_count,
            description=data.description,
            response_for=data.response_for.model_dump(mode="json") if data.response_for else None,
            redirected=[r.model_dump() for r in resolution.redirected] or None,
            created_at=now,
        )
        self.session.add(document)
        try:
            await self.documents.flush()
        except IntegrityError as exc:
            # a concurrent request with the same key, sender id or number won the race
            raise ConflictError("A concurrent request sent the same document; retry to get its answer") from exc
        if original is not None and data.relation is not None and data.relation.kind == "replace":
            original.superseded_by_id = document.id
        deadline = self.calendar.arrival_deadline(now)
        attachments = [
            Attachment(
                document_id=document.id,
                position=position,
                file_name=name,
                content_type=content_type,
                size=blob.size,
                sha256=blob.sha256,
            )
            for position, (name, content_type, blob) in enumerate(stored)
        ]
        deliveries = [
            Delivery(
                id=new_id(),
                document_id=document.id,
                recipient_code=code,
                status=StatusCode.PENDING.value,
                arrival_deadline=deadline,
                due_date=data.due_date,
                created_at=now,
                updated_at=now,
            )
            for code in sorted(recipient_codes)
        ]
        history = [
            DeliveryEvent(delivery_id=d.id, status=d.status, actor_code=sender_code, note=None, created_at=now)
            for d in deliveries
        ]
        self.documents.add_all([*attachments, *deliveries])
        await self.documents.flush()
        self.documents.add_all(history)
        await self.documents.flush()
        accepted = DocumentAccepted(
            id=document.id,
            deliveries=[_summary(d) for d in deliveries],
            attachments=[_attachment(a) for a in attachments],
            redirected=[Redirect(**r.model_dump()) for r in resolution.redirected],
        )
        event = DocumentSubmitted(
            document_id=document.id,
            kind=document.kind,
            original_document_id=document.original_id,
            sender_code=sender_code,
            code=f"{data.code_number}/{data.code_notation}",
            type_name=data.type_name,
            subject=data.subject,
            urgency=data.urgency,
            promulgation_date=data.promulgation_date,
            due_date=data.due_date,
            deliveries=[DeliveryRef(id=d.id, recipient_code=d.recipient_code) for d in deliveries],
            attachments=[AttachmentRef(sha256=a.sha256, size=a.size, content_type=a.content_type) for a in attachments],
        )
        await record_event(
            self.session, messaging, "document.submitted.v1", payload(event), ordering_key=str(document.id)
        )
        if original is not None and document.kind == "replace":
            replaced = DocumentReplaced(document_id=original.id, replaced_by=document.id, sender_code=sender_code)
            # the same key as the replacement's submission: consumers see the new document first
            await record_event(
                self.session, messaging, "document.replaced.v1", payload(replaced), ordering_key=str(document.id)
            )
        return accepted

    async def _accepted(self, document: Document) -> DocumentAccepted:
        deliveries = await self.documents.deliveries(document.id)
        attachments = await self.documents.attachments(document.id)
        return DocumentAccepted(
            id=document.id,
            deliveries=[_summary(d) for d in deliveries],
            attachments=[_attachment(a) for a in attachments],
            redirected=[Redirect(**r) for r in document.redirected or []],
        )

    # -- recall --------------------------------------------------------------------------------

    async def recall(self, document_id: uuid.UUID, sender_code: str, request: RecallRequest) -> RecallRequested:
        """The sender asks recipients to give the document back (13); each agrees (15) or refuses (16)."""
        document = await self.documents.get(document_id)
        if document is None or document.sender_code != sender_code:
            raise DocumentNotFoundError(f"You sent no document {document_id}")
        deliveries = await self.documents.deliveries(document.id, for_update=True)
        wanted = set(request.recipients) if request.recipients is not None else None
        if wanted is not None and (unknown := wanted - {d.recipient_code for d in deliveries}):
            raise RecipientInvalidError(
                f"The document was not sent to {sorted(unknown)}", unknown_recipients=sorted(unknown)
            )
        targets = [
            d for d in deliveries if (wanted is None or d.recipient_code in wanted) and d.recall_status in (None, "16")
        ]
        if not targets:
            raise RecallInvalidError("Every targeted copy is already recalled or has a recall pending")
        now = utcnow()
        document.recall_reason = request.reason
        for delivery in targets:
            previous = delivery.recall_status or delivery.status
            delivery.recall_status = "13"
            await record_status_change(
                self.session,
                delivery,
                document,
                previous=previous,
                status="13",
                actor_code=sender_code,
                note=request.reason,
                at=now,
            )
        await self.session.flush()
        requested = DocumentRecallRequested(
            document_id=document.id,
            sender_code=sender_code,
            reason=request.reason,
            delivery_ids=[d.id for d in targets],
        )
        await record_event(
            self.session,
            messaging,
            "document.recall_requested.v1",
            payload(requested),
            ordering_key=str(document.id),
        )
        return RecallRequested(document_id=document.id, deliveries=[_summary(d) for d in targets])

    # -- reading -------------------------------------------------------------------------------

    async def _readable(self, document_id: uuid.UUID, agency_code: str) -> tuple[Document, Sequence[Delivery]]:
        """Return the document and the deliveries ``agency_code`` may see; 404 for anyone else,
        and for a recipient whose copy was recalled."""
        document = await self.documents.get(document_id)
        if document is None:
            raise DocumentNotFoundError(f"No document {document_id} is visible to {agency_code}")
        if document.sender_code == agency_code:
            return document, await self.documents.deliveries(document.id)
        own = await self.documents.delivery_to(document.id, agency_code)
        if own is None or own.recall_status == "15":
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
                    status=event.status, actor_code=event.actor_code, note=event.note, created_at=event.created_at
                )
            )
        now = utcnow()
        today = self.calendar.today(now)
        return DocumentRead(
            id=document.id,
            sender_code=document.sender_code,
            sender_document_id=document.sender_document_id,
            kind=document.kind,
            original_document_id=document.original_id,
            update_info=document.update_info,
            superseded_by=document.superseded_by_id,
            recall_reason=document.recall_reason,
            type_code=document.type_code,
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
                    recall_status=d.recall_status,
                    overdue=is_overdue(d, now, today),
                    arrival_deadline=d.arrival_deadline,
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

    async def received(self, agency_code: str, filters: ListFilters, *, cursor: str | None, limit: int) -> InboxPage:
        """The deliveries addressed to an agency, newest first (recalled copies excluded)."""
        now = utcnow()
        today = self.calendar.today(now)
        before = decode_cursor(cursor) if cursor else None
        rows = await self.documents.received(agency_code, filters, before=before, limit=limit + 1, now=now, today=today)
        page = rows[:limit]
        items = [
            InboxItem(
                delivery_id=delivery.id,
                status=delivery.status,
                recall_status=delivery.recall_status,
                overdue=is_overdue(delivery, now, today),
                document_id=document.id,
                kind=document.kind,
                original_document_id=document.original_id,
                due_date=document.due_date,
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
        next_cursor = encode_cursor(page[-1][0].id) if len(rows) > limit else None
        return InboxPage(items=items, next_cursor=next_cursor)

    async def sent(self, agency_code: str, filters: ListFilters, *, cursor: str | None, limit: int) -> SentPage:
        """The documents an agency sent, newest first, with their deliveries counted by status."""
        now = utcnow()
        today = self.calendar.today(now)
        before = decode_cursor(cursor) if cursor else None
        rows = await self.documents.sent(agency_code, filters, before=before, limit=limit + 1, now=now, today=today)
        page = rows[:limit]
        counts = await self.documents.delivery_counts([d.id for d in page], now, today)
        items = []
        for document in page:
            by_status, overdue = counts.get(document.id, ({}, 0))
            items.append(
                SentItem(
                    document_id=document.id,
                    kind=document.kind,
                    original_document_id=document.original_id,
                    code_number=document.code_number,
                    code_notation=document.code_notation,
                    type_name=document.type_name,
                    subject=document.subject,
                    urgency=document.urgency,
                    promulgation_date=document.promulgation_date,
                    due_date=document.due_date,
                    created_at=document.created_at,
                    recipients=sum(by_status.values()),
                    by_status=by_status,
                    overdue=overdue,
                )
            )
        next_cursor = encode_cursor(page[-1].id) if len(rows) > limit else None
        return SentPage(items=items, next_cursor=next_cursor)
