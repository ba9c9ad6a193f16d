"""Rules for documents: validate and accept a document for its recipients (one delivery each),
update, replace and recall, show a document only to those who may read it, and the sent and
received lists with their filters."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from services.exchange.blobstore import BlobStore, StagedBlob
from services.exchange.calendar import WorkingCalendar
from services.exchange.delivery.repository import DeliveryRepository
from services.exchange.delivery.service import record_status_change
from services.exchange.delivery.status import StatusCode, is_overdue
from services.exchange.document.attachments import ZIP, refine_zip, sanitize_file_name, sniff_head
from services.exchange.document.edxml_fields import business_of, keep_packet_details, recipient_organs, sender_organ
from services.exchange.document.repository import DocumentRepository, SendLookups
from services.exchange.document.schemas import (
    AttachmentDownload,
    AttachmentInfo,
    AttachmentRead,
    AttachmentUpload,
    Business,
    DeliveryEventRead,
    DeliveryRead,
    DeliverySummary,
    DocumentAccepted,
    DocumentRead,
    DocumentSubmit,
    InboxItem,
    InboxPage,
    ListFilters,
    Organ,
    PacketDetails,
    RecallRequest,
    RecallRequested,
    Redirect,
    Relation,
    ResponseFor,
    SentItem,
    SentPage,
    Signer,
    TraceHop,
    edxml_document_id,
    response_for_list,
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
    DocumentDetails,
    DocumentRecallRequested,
    DocumentReplaced,
    DocumentSubmitted,
    StaffInfo,
    payload,
)
from services.exchange.feed.service import FeedService, OutboxEvent, recall_entry, received_entries
from services.exchange.models import Attachment, Delivery, DeliveryEvent, Document, messaging
from services.exchange.signatures.schemas import SignatureVerdictRead
from services.exchange.signatures.service import PENDING, MainFile, SignaturePolicy, pending_event
from shared.audit import AUDIT_EVENT, audit_payload, record_audit
from shared.bulk import deferred_inserts
from shared.clients import RegistryClient, Resolution
from shared.clients.registry import AgencyInfo
from shared.db import new_id, utcnow
from shared.errors import AgencyInactiveError, BadRequestError, ConflictError
from shared.repository import transient
from shared.safezip import ArchiveLimits
from shared.text import fold

SECRET_MARKS = {"mat", "toi mat", "tuyet mat"}  # Mật, Tối mật, Tuyệt mật, folded
NOT_SECRET = {"", "thuong", "binh thuong", "khong", "normal", "none"}


@dataclass(frozen=True)
class StagedFile:
    """An attachment staged (held in memory, or in the blob store's ``tmp/``), its type read from its bytes."""

    file_name: str
    content_type: str
    blob: StagedBlob


def fingerprint_of(data: DocumentSubmit) -> str:
    """Hash the metadata, to tell a replay from another request under the same key."""
    canonical = json.dumps(data.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_confidentiality(value: str | None, *, circulation: bool = False) -> None:
    """Refuse state secrets: they never enter the system (Decision 28/2018). A circulation mark
    (``circulation``) may be any text but a secrecy level."""
    folded = fold(value or "").strip()
    if folded in SECRET_MARKS:
        raise DocumentClassifiedError(
            f"Documents marked {value!r} are state secrets: they must not be sent through this system"
        )
    if not circulation and folded not in NOT_SECRET:
        raise MetadataInvalidError(
            "confidentiality must be empty (normal) — Mật, Tối mật and Tuyệt mật documents are refused",
            errors=[{"loc": ["confidentiality"], "msg": f"unknown value {value!r}", "type": "value_error"}],
        )


def check_attachments(*, files: Sequence[AttachmentUpload], max_attachments: int, described: int = 0) -> None:
    """Refuse a document without files, with more than a document may carry, or with more
    descriptions (``attachments`` in the metadata) than files."""
    if not files:
        raise AttachmentMissingError("Send at least one file in the `files` part")
    if len(files) > max_attachments:
        raise BadRequestError(f"At most {max_attachments} files per document", max_attachments=max_attachments)
    if described > len(files):
        raise MetadataInvalidError(
            f"`attachments` describes {described} files but {len(files)} were sent",
            errors=[{"loc": ["attachments"], "msg": "more entries than files", "type": "value_error"}],
        )


def resolve_recipients(*, resolution: Resolution, recipients: Sequence[str], sender_code: str) -> list[str]:
    """Return the codes the document goes to; refuse unknown or inactive addressees and the sender."""
    if resolution.unknown_codes or resolution.inactive or resolution.unknown_groups:
        raise RecipientInvalidError(
            "Some addressees cannot receive documents: check the codes and groups in the registry",
            unknown_recipients=resolution.unknown_codes,
            inactive_recipients=[i.model_dump() for i in resolution.inactive],
            unknown_groups=resolution.unknown_groups,
        )
    if sender_code in recipients:
        raise RecipientInvalidError("An agency does not send documents to itself", unknown_recipients=[])
    # a group that includes the sender does not send the document back to it
    codes = [r.code for r in resolution.recipients if r.code != sender_code]
    if not codes:
        raise RecipientInvalidError("The groups have no active member other than the sender")
    return codes


MEMORY_PER_SEND = 1024 * 1024
"""At most this many bytes of a send's small files are held in memory until the commit (one 100 KB
PDF, a few scans); past it, each further file is written to ``tmp/`` once staged, so a send of many
files costs no more memory than the multipart parser's own spool."""


async def stage_files(
    *,
    files: Sequence[AttachmentUpload],
    blobs: BlobStore,
    max_bytes: int,
    archive_limits: ArchiveLimits | None = None,
    first_on_disk: bool = False,
) -> list[StagedFile]:
    """Stage every file (streamed to the store's tmp/, or held in memory when small), reading its
    type from its bytes; keep none if one fails. A ZIP is written to tmp/ to read its entries, with
    ``first_on_disk`` the first file too (its signatures are checked from the file), and so is every
    small file past :data:`MEMORY_PER_SEND` bytes held."""
    staged: list[StagedFile] = []
    held = 0  # bytes of this send's files held in memory until their commit
    try:
        for position, upload in enumerate(files):
            file_name = sanitize_file_name(upload.file_name, position)
            kinds: list[str] = []

            def inspect(head: bytes, name: str = file_name, found: list[str] = kinds) -> None:
                found.append(sniff_head(head, name))

            blob = await blobs.stage(upload.chunks, max_bytes=max_bytes, inspect_head=inspect)
            staged.append(StagedFile(file_name, kinds[0], blob))
            if blob.in_memory:
                held += blob.size
            if kinds[0] == ZIP or (first_on_disk and position == 0) or held > MEMORY_PER_SEND:
                if blob.in_memory:
                    held -= blob.size
                staged[-1] = StagedFile(file_name, kinds[0], blob := await blobs.spill(blob))
            if kinds[0] == ZIP:
                staged[-1] = StagedFile(
                    file_name, await asyncio.to_thread(refine_zip, _on_disk(blob), archive_limits, file_name), blob
                )
    except BaseException:
        discard_files(staged=staged, blobs=blobs)
        raise
    return staged


async def commit_files(*, staged: Sequence[StagedFile], blobs: BlobStore) -> None:
    """Move staged files into the store under their hash."""
    for file in staged:
        await blobs.commit(file.blob)


def main_file(staged: Sequence[StagedFile]) -> MainFile | None:
    """The file a signature policy is about: the first attachment, as staged (its path None while it
    is held in memory: only a policy that reads it, ``require``, has it written first, see
    :func:`stage_files`'s ``first_on_disk``)."""
    if not staged:
        return None
    first = staged[0]
    return MainFile(first.blob.path, first.file_name, first.content_type)


def _on_disk(blob: StagedBlob) -> Path:
    if blob.path is None:
        raise RuntimeError("a staged file read from disk before it was spilled there")
    return blob.path


def discard_files(*, staged: Sequence[StagedFile], blobs: BlobStore) -> None:
    """Delete the staged files not committed to the store."""
    for file in staged:
        blobs.discard(file.blob)


def new_document(
    *,
    data: DocumentSubmit,
    sender_code: str,
    sender_client_id: str,
    idempotency_key: str | None,
    fingerprint: str,
    original: Document | None,
    resolution: Resolution,
    now: dt.datetime,
    sender: AgencyInfo | None = None,
    recipients: Sequence[str] = (),
) -> Document:
    """Build the document row from the metadata as sent (the edXML DocumentId made from the sender,
    the date and the number when the sender gave none; its organ info and the first hop frozen now)."""
    relation = data.relation
    document_id = data.edxml_document_id or edxml_document_id(
        sender_code, data.promulgation_date, data.code_number, data.code_notation
    )
    return transient(
        Document,
        dict(
            id=new_id(),
            sender_code=sender_code,
            sender_client_id=sender_client_id,
            idempotency_key=idempotency_key,
            sender_document_id=data.sender_document_id,
            request_fingerprint=fingerprint,
            kind=relation.kind if relation else "new",
            original_id=original.id if original else None,
            update_info=update_info(relation),
            code_number=data.code_number,
            code_notation=data.code_notation,
            type_name=data.type_name,
            type_code=document_type(data.type_name)[0],
            subject=data.subject,
            promulgation_place=data.promulgation_place,
            promulgation_date=data.promulgation_date,
            promulgation_year=data.promulgation_date.year,
            signer_competence=data.signer.competence,
            signer_position=data.signer.position,
            signer_name=data.signer.full_name,
            urgency=data.urgency,
            due_date=data.due_date,
            steering_type=data.steering_type,
            page_count=data.page_count,
            description=data.description,
            response_for=[r.model_dump(mode="json") for r in data.response_for] or None,
            redirected=[r.model_dump() for r in resolution.redirected] or None,
            edxml_document_id=document_id,
            type_number=data.type_number,
            type_detail=data.type_detail,
            copy_form=data.copy_form,
            circulation=data.circulation,
            content=data.content,
            language=data.language,
            sphere_of_promulgation=data.sphere_of_promulgation,
            typer_notation=data.typer_notation,
            promulgation_amount=data.promulgation_amount,
            direction=data.direction,
            to_places=data.to_places or None,
            appendixes=data.appendixes or None,
            sender_organ=sender_organ(sender, sender_code),
            trace=[TraceHop(organ_id=sender_code, timestamp=now).model_dump(mode="json")],
            business=business_of(data, original, recipients, document_id).model_dump(
                mode="json", exclude_defaults=True
            ),
            created_at=now,
        ),
    )


def update_info(relation: Relation | None) -> dict[str, bool] | None:
    """Return what an update changed (None for anything but an update)."""
    if relation is None or relation.kind != "update":
        return None
    return {"metadata_changed": relation.metadata_changed, "recipients_changed": relation.recipients_changed}


def attachment_read(attachment: Attachment) -> AttachmentRead:
    """Show an attachment's record."""
    return AttachmentRead(
        id=attachment.id,
        file_name=attachment.file_name,
        content_type=attachment.content_type,
        size=attachment.size,
        sha256=attachment.sha256,
        content_id=attachment.content_id,
        description=attachment.description,
    )


def signature_read(document: Document) -> SignatureVerdictRead | None:
    """Show the verdict on a document's main file (None: its type's policy was off)."""
    if document.signature_verdict is None:
        return None
    return SignatureVerdictRead.model_validate(
        {
            "verdict": document.signature_verdict,
            "reasons": document.signature_reasons or [],
            "checked_at": document.signature_checked_at,
        }
    )


def delivery_summary(delivery: Delivery) -> DeliverySummary:
    """Show a delivery in one line: to whom, at which status."""
    return DeliverySummary(id=delivery.id, recipient_code=delivery.recipient_code, status=delivery.status)


def document_accepted(
    document: Document, *, deliveries: Sequence[Delivery], attachments: Sequence[Attachment]
) -> DocumentAccepted:
    """Show the answer to a submission (the same for its replays)."""
    return DocumentAccepted(
        id=document.id,
        signature=signature_read(document),
        deliveries=[delivery_summary(d) for d in deliveries],
        attachments=[attachment_read(a) for a in attachments],
        redirected=[Redirect(**r) for r in document.redirected or []],
    )


def delivery_read(
    delivery: Delivery, *, history: Sequence[DeliveryEvent], now: dt.datetime, today: dt.date
) -> DeliveryRead:
    """Show a delivery with its history."""
    return DeliveryRead(
        id=delivery.id,
        recipient_code=delivery.recipient_code,
        status=delivery.status,
        recall_status=delivery.recall_status,
        update_answer=delivery.update_answer,
        overdue=is_overdue(delivery, now, today),
        arrival_deadline=delivery.arrival_deadline,
        updated_at=delivery.updated_at,
        transfer_failed_at=delivery.transfer_failed_at,
        transfer_error=delivery.transfer_error,
        organ=Organ.model_validate(delivery.organ) if delivery.organ else None,
        history=[
            DeliveryEventRead(
                status=e.status,
                actor_code=e.actor_code,
                note=e.note,
                created_at=e.created_at,
                outcome=e.outcome,
                timestamp=e.reported_at,
                staff=StaffInfo.model_validate(e.staff) if e.staff else None,
            )
            for e in history
        ],
    )


def document_read(
    document: Document,
    *,
    attachments: Sequence[Attachment],
    deliveries: Sequence[Delivery],
    history: Sequence[DeliveryEvent],
    now: dt.datetime,
    today: dt.date,
) -> DocumentRead:
    """Show a document with its attachments and the deliveries the reader may see."""
    by_delivery: dict[uuid.UUID, list[DeliveryEvent]] = {}
    for event in history:
        by_delivery.setdefault(event.delivery_id, []).append(event)
    return DocumentRead(
        id=document.id,
        sender_code=document.sender_code,
        sender_document_id=document.sender_document_id,
        edxml_document_id=document.edxml_document_id,
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
        type_number=document.type_number,
        type_detail=document.type_detail,
        copy_form=document.copy_form,
        circulation=document.circulation,
        content=document.content,
        to_places=document.to_places or [],
        language=document.language,
        sphere_of_promulgation=document.sphere_of_promulgation,
        typer_notation=document.typer_notation,
        promulgation_amount=document.promulgation_amount,
        direction=document.direction,
        appendixes=document.appendixes or [],
        response_for=[ResponseFor.model_validate(r) for r in response_for_list(document.response_for)],
        sender_organ=Organ.model_validate(document.sender_organ) if document.sender_organ else None,
        trace=[TraceHop.model_validate(h) for h in document.trace or []],
        business=Business.model_validate(document.business) if document.business is not None else None,
        created_at=document.created_at,
        signature=signature_read(document),
        attachments=[attachment_read(a) for a in attachments],
        deliveries=[delivery_read(d, history=by_delivery.get(d.id, []), now=now, today=today) for d in deliveries],
    )


def inbox_item(delivery: Delivery, document: Document, *, now: dt.datetime, today: dt.date) -> InboxItem:
    """Show a delivery in the recipient's received list."""
    return InboxItem(
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
        signature_verdict=document.signature_verdict,
    )


def sent_item(document: Document, *, by_status: dict[str, int], overdue: int) -> SentItem:
    """Show a document in the sender's sent list, its deliveries counted by status."""
    return SentItem(
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
        signature_verdict=document.signature_verdict,
        by_status=by_status,
        overdue=overdue,
    )


def recall_targets(*, deliveries: Sequence[Delivery], recipients: Sequence[str] | None) -> list[Delivery]:
    """Return the deliveries a recall asks back (all, or those listed); refuse unknown recipients
    and a recall with nothing left to ask."""
    wanted = set(recipients) if recipients is not None else None
    if wanted is not None and (unknown := wanted - {d.recipient_code for d in deliveries}):
        raise RecipientInvalidError(
            f"The document was not sent to {sorted(unknown)}", unknown_recipients=sorted(unknown)
        )
    targets = [
        d
        for d in deliveries
        if (wanted is None or d.recipient_code in wanted) and d.recall_status in (None, StatusCode.RECALL_REFUSED)
    ]
    if not targets:
        raise RecallInvalidError("Every targeted copy is already recalled or has a recall pending")
    return targets


def check_number_unused(*, lookups: SendLookups, data: DocumentSubmit) -> None:
    """Refuse a new document whose number and notation the sender already used this year."""
    if lookups.same_number is not None:
        year = data.promulgation_date.year
        raise DocumentDuplicateError(
            f"{data.code_number}/{data.code_notation} was already sent in {year} (document {lookups.same_number}); "
            "to change it, send an update or a replacement (`relation`)",
            document_id=str(lookups.same_number),
        )


def submitted_events(
    *,
    document: Document,
    original: Document | None,
    deliveries: Sequence[Delivery],
    attachments: Sequence[Attachment],
) -> list[OutboxEvent]:
    """``document.submitted.v1`` (and ``document.replaced.v1`` for a replacement), for the outbox."""
    submitted = DocumentSubmitted(
        document_id=document.id,
        kind=document.kind,
        original_document_id=document.original_id,
        sender_code=document.sender_code,
        code=f"{document.code_number}/{document.code_notation}",
        type_name=document.type_name,
        subject=document.subject,
        urgency=document.urgency,
        promulgation_date=document.promulgation_date,
        due_date=document.due_date,
        deliveries=[DeliveryRef(id=d.id, recipient_code=d.recipient_code) for d in deliveries],
        attachments=[
            AttachmentRef(sha256=a.sha256, size=a.size, content_type=a.content_type, id=a.id, file_name=a.file_name)
            for a in attachments
        ],
        signature_verdict=document.signature_verdict,
        details=DocumentDetails(
            promulgation_place=document.promulgation_place,
            signer_name=document.signer_name,
            signer_position=document.signer_position,
            signer_competence=document.signer_competence,
            steering_type=document.steering_type,
            page_count=document.page_count,
            description=document.description,
        ),
    )
    events: list[OutboxEvent] = [("document.submitted.v1", payload(submitted), str(document.id))]
    if document.signature_verdict == PENDING:
        events.append(pending_event(document.id, document.sender_code))
    if original is not None and document.kind == "replace":
        replaced = DocumentReplaced(document_id=original.id, replaced_by=document.id, sender_code=document.sender_code)
        # the same key as the replacement's submission: consumers see the new document first
        events.append(("document.replaced.v1", payload(replaced), str(document.id)))
    return events


def sent_audit(document: Document, client_id: str, recipients: int, attachments: int) -> OutboxEvent:
    """The audit trail's ``document.sent`` (with the submission's events: no statement of its own)."""
    details = {"kind": document.kind, "recipients": recipients, "attachments": attachments}
    if document.original_id is not None:
        details["original_document_id"] = str(document.original_id)
    data = audit_payload(
        "document.sent", actor=client_id, agency_code=document.sender_code, document_id=document.id, details=details
    )
    return (AUDIT_EVENT, data, None)


class DocumentService:
    def __init__(
        self,
        *,
        documents: DocumentRepository,
        deliveries: DeliveryRepository,
        registry: RegistryClient,
        feed: FeedService,
        blobs: BlobStore,
        calendar: WorkingCalendar,
        max_attachments: int,
        max_attachment_bytes: int,
        signatures: SignaturePolicy,
        archive_limits: ArchiveLimits | None = None,
    ) -> None:
        self.signatures = signatures
        self.archive_limits = archive_limits
        self.documents = documents
        self.deliveries = deliveries
        self.feed = feed
        self.registry = registry
        self.blobs = blobs
        self.calendar = calendar
        self.max_attachments = max_attachments
        self.max_attachment_bytes = max_attachment_bytes

    async def submit(
        self,
        *,
        sender_code: str,
        sender_client_id: str,
        data: DocumentSubmit,
        files: Sequence[AttachmentUpload],
        idempotency_key: str | None,
        packet: PacketDetails | None = None,
    ) -> tuple[DocumentAccepted, bool]:
        """Accept a document: one delivery per recipient, attachments in the blob store, its events.

        Everything is checked before anything is stored. On PostgreSQL a new document's rows may
        commit here, as one statement of their own (``shared.direct``) when the session had no
        transaction open: a caller writes nothing after it that must commit with them.
        Returns the answer and whether it was
        created now (False: an idempotent replay of an earlier request). A document taken in as an
        edXML packet keeps the packet's sender organ info, hops and Bussiness block (``packet``).
        """
        fingerprint = fingerprint_of(data)
        lookups = await self.documents.send_lookups(
            sender_code,
            key=idempotency_key,
            sender_document_id=data.sender_document_id,
            number=data.code_number,
            notation=data.code_notation,
            year=data.promulgation_date.year,
            edxml_document_id=data.edxml_document_id if data.relation is None else None,
        )
        replayed = await self.check_replay(lookups=lookups, data=data, fingerprint=fingerprint)
        if replayed is not None:
            return await self.accepted(replayed), False
        check_confidentiality(data.confidentiality)
        check_confidentiality(data.circulation, circulation=True)
        check_attachments(files=files, max_attachments=self.max_attachments, described=len(data.attachments))
        original = await self.find_original(sender_code=sender_code, relation=data.relation)
        if original is None:
            check_number_unused(lookups=lookups, data=data)
        sender = await self.check_sender_active(sender_code=sender_code)
        resolution = await self.registry.resolve(data.recipients, data.groups)
        recipient_codes = resolve_recipients(resolution=resolution, recipients=data.recipients, sender_code=sender_code)
        staged = await stage_files(
            files=files,
            blobs=self.blobs,
            max_bytes=self.max_attachment_bytes,
            archive_limits=self.archive_limits,
            first_on_disk=self.signatures.mode(data.type_name) == "require",
        )
        try:
            signature = await self.signatures.before_send(
                type_name=data.type_name, sender_code=sender_code, main_file=main_file(staged)
            )
            now = utcnow()
            document = new_document(
                data=data,
                sender_code=sender_code,
                sender_client_id=sender_client_id,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
                original=original,
                resolution=resolution,
                now=now,
                sender=sender,
                recipients=recipient_codes,
            )
            if packet is not None:
                keep_packet_details(document, packet)
            document.signature_verdict = signature.verdict
            if signature.check is not None:
                document.signature_reasons = signature.check.reasons
                document.signature_checked_at = signature.check.checked_at
            # the files go into the store before the rows are written, so a committed document never
            # lacks a file (a failed transaction leaves unreferenced blobs, swept later, never missing
            # ones), and no lock is held while they are synced
            await commit_files(staged=staged, blobs=self.blobs)
            # the document, its attachments, deliveries, their history, the feed's entries and the
            # outbox events: one statement on PostgreSQL, one call of the database's thread on SQLite
            # (shared.bulk), after the feed counters' upsert that numbers the entries when an agency's
            # go to the dispatcher. A new document's rows without that upsert are the only thing the
            # send writes: on PostgreSQL their statement is a transaction of its own (shared.direct)
            dispatched = await self.feed.dispatched(set(recipient_codes))
            alone = original is None and not dispatched
            try:
                async with deferred_inserts(self.documents.session, alone=alone) as batch:
                    await self.documents.insert_new([document])
                    attachments = await self.attach_files(document=document, staged=staged, described=data.attachments)
                    deliveries = await self.create_deliveries(
                        document=document, recipient_codes=recipient_codes, now=now, organs=recipient_organs(resolution)
                    )
                    if original is not None and document.kind == "replace":
                        await batch.write(self.documents.session)  # the new row first: the mark's foreign key
                        await self.supersede(original, document)
                    events = submitted_events(
                        document=document, original=original, deliveries=deliveries, attachments=attachments
                    )
                    events.append(sent_audit(document, sender_client_id, len(deliveries), len(attachments)))
                    await self.feed.add(
                        received_entries(document, deliveries, attachments), with_events=events, dispatched=dispatched
                    )
            except IntegrityError as exc:
                # a concurrent request with the same key, sender id or number won the race
                raise ConflictError("A concurrent request sent the same document; retry to get its answer") from exc
        finally:
            discard_files(staged=staged, blobs=self.blobs)  # what was not committed
        return document_accepted(document, deliveries=deliveries, attachments=attachments), True

    async def check_replay(self, *, lookups: SendLookups, data: DocumentSubmit, fingerprint: str) -> Document | None:
        """Return the document this request repeats (by its Idempotency-Key, else by the sender's own
        id, else by the edXML DocumentId it gave); refuse its key reused for other metadata, and a
        DocumentId already sent with other metadata."""
        replayed = None
        if (document_id := lookups.by_key or lookups.by_sender_document_id or lookups.by_edxml_document_id) is not None:
            replayed = await self.documents.get(document_id)
        by_edxml_id_only = lookups.by_key is None and lookups.by_sender_document_id is None
        if replayed is not None and replayed.request_fingerprint not in (None, fingerprint) and by_edxml_id_only:
            raise DocumentDuplicateError(
                f"The DocumentId {data.edxml_document_id} was already sent (document {replayed.id}); "
                "to change it, send an update or a replacement (`relation`)",
                document_id=str(replayed.id),
            )
        if replayed is not None and replayed.request_fingerprint not in (None, fingerprint):
            raise IdempotencyKeyReusedError(
                f"Document {replayed.id} was sent with this Idempotency-Key or sender_document_id and other "
                "metadata; use a new key for a new document",
                document_id=str(replayed.id),
            )
        return replayed

    async def find_original(self, *, sender_code: str, relation: Relation | None) -> Document | None:
        """Return the document an update or replacement refers to: the sender's own, not replaced yet."""
        if relation is None:
            return None
        original = await self.own_document(document_id=relation.document_id, sender_code=sender_code)
        if original.superseded_by_id is not None:
            raise RelationInvalidError(
                f"Document {original.id} was replaced by {original.superseded_by_id}; refer to that one",
                superseded_by=str(original.superseded_by_id),
            )
        return original

    async def supersede(self, original: Document, replacement: Document) -> None:
        """Mark the original replaced by this replacement; refuse the replacement (its transaction
        rolls back) when a concurrent one was first."""
        first = await self.documents.mark_superseded(original, replacement.id)
        if first is not None:
            raise RelationInvalidError(
                f"Document {original.id} was replaced by {first} meanwhile; refer to that one",
                superseded_by=str(first),
            )

    async def check_sender_active(self, *, sender_code: str) -> AgencyInfo:
        """Refuse a sender the registry does not know as active; return its entry."""
        sender = await self.registry.agency(sender_code)
        if sender is None or sender.status != "active":
            raise AgencyInactiveError(f"Agency {sender_code} is not active: it cannot send", agency_code=sender_code)
        return sender

    async def attach_files(
        self, *, document: Document, staged: Sequence[StagedFile], described: Sequence[AttachmentInfo] = ()
    ) -> list[Attachment]:
        """Write one attachment row per staged file, in the order they were sent, with its edXML
        ContentId (given, else made from its position and hash) and description."""
        attachments = []
        for position, file in enumerate(staged):
            info = described[position] if position < len(described) else AttachmentInfo()
            attachments.append(
                transient(
                    Attachment,
                    dict(
                        document_id=document.id,
                        position=position,
                        file_name=file.file_name,
                        content_type=file.content_type,
                        size=file.blob.size,
                        sha256=file.blob.sha256,
                        content_id=info.content_id or f"{position + 1}.{file.blob.sha256[:16]}",
                        description=info.description,
                    ),
                )
            )
        await self.documents.add_attachments(attachments)
        return attachments

    async def create_deliveries(
        self,
        *,
        document: Document,
        recipient_codes: Sequence[str],
        now: dt.datetime,
        organs: dict[str, dict[str, str | None]] | None = None,
    ) -> list[Delivery]:
        """Write one pending delivery per recipient (its organ info frozen), and its first history event."""
        deadline = self.calendar.arrival_deadline(now, urgent=document.urgency > 0)
        deliveries = [
            transient(
                Delivery,
                dict(
                    id=new_id(),
                    document_id=document.id,
                    recipient_code=code,
                    status=StatusCode.PENDING.value,
                    arrival_deadline=deadline,
                    due_date=document.due_date,
                    created_at=now,
                    updated_at=now,
                    organ=(organs or {}).get(code),
                ),
            )
            for code in sorted(recipient_codes)
        ]
        await self.deliveries.add_new(deliveries)
        await self.deliveries.add_history(
            [
                transient(
                    DeliveryEvent,
                    dict(delivery_id=d.id, status=d.status, actor_code=document.sender_code, note=None, created_at=now),
                )
                for d in deliveries
            ]
        )
        return deliveries

    async def accepted(self, document: Document) -> DocumentAccepted:
        """Return the answer a document was accepted with (for a replay)."""
        deliveries = await self.deliveries.of_document(document.id)
        attachments = await self.documents.attachments(document.id)
        return document_accepted(document, deliveries=deliveries, attachments=attachments)

    async def recall(
        self, document_id: uuid.UUID, sender_code: str, request: RecallRequest, *, actor: str | None = None
    ) -> RecallRequested:
        """Ask recipients to give the document back (13); each agrees (15) or refuses (16)."""
        document = await self.own_document(document_id=document_id, sender_code=sender_code)
        deliveries = await self.deliveries.of_document(document.id, for_update=True)
        targets = recall_targets(deliveries=deliveries, recipients=request.recipients)
        now = utcnow()
        document.recall_reason = request.reason
        for delivery in targets:
            previous = delivery.recall_status or delivery.status
            delivery.recall_status = StatusCode.RECALL_REQUESTED.value
            await record_status_change(
                self.deliveries,
                delivery,
                document,
                previous=previous,
                status=StatusCode.RECALL_REQUESTED,
                actor_code=sender_code,
                note=request.reason,
                at=now,
            )
        await self.deliveries.flush()
        requested = DocumentRecallRequested(
            document_id=document.id,
            sender_code=sender_code,
            reason=request.reason,
            delivery_ids=[d.id for d in targets],
        )
        await self.deliveries.record_event(
            messaging, "document.recall_requested.v1", payload(requested), ordering_key=str(document.id)
        )
        await self.feed.add([recall_entry(document, d, request.reason, now) for d in targets])
        await record_audit(
            self.deliveries,
            messaging,
            "document.recall_requested",
            actor=actor,
            agency_code=sender_code,
            document_id=document.id,
            details={"recipients": sorted(d.recipient_code for d in targets)},
        )
        return RecallRequested(document_id=document.id, deliveries=[delivery_summary(d) for d in targets])

    async def own_document(self, *, document_id: uuid.UUID, sender_code: str) -> Document:
        """Return a document the agency sent; 404 for any other."""
        document = await self.documents.get(document_id)
        if document is None or document.sender_code != sender_code:
            raise DocumentNotFoundError(f"You sent no document {document_id}")
        return document

    async def readable(self, *, document_id: uuid.UUID, agency_code: str) -> tuple[Document, Sequence[Delivery]]:
        """Return the document and the deliveries ``agency_code`` may see; 404 for anyone else,
        and for a recipient whose copy was recalled."""
        document = await self.documents.get(document_id)
        if document is None:
            raise DocumentNotFoundError(f"No document {document_id} is visible to {agency_code}")
        if document.sender_code == agency_code:
            return document, await self.deliveries.of_document(document.id)
        own = await self.deliveries.to_recipient(document.id, agency_code)
        if own is None or own.recall_status == StatusCode.RECALL_AGREED:
            raise DocumentNotFoundError(f"No document {document_id} is visible to {agency_code}")
        return document, [own]

    async def get(self, document_id: uuid.UUID, agency_code: str, *, actor: str | None = None) -> DocumentRead:
        """Return a document: the sender sees every recipient's status and history, a recipient its own.
        A read by an API client (``actor``) is recorded in the audit trail."""
        document, deliveries = await self.readable(document_id=document_id, agency_code=agency_code)
        if actor is not None:
            await record_audit(
                self.documents,
                messaging,
                "document.read",
                actor=actor,
                agency_code=agency_code,
                document_id=document_id,
                deferred=True,
            )
        attachments = await self.documents.attachments(document.id)
        history = await self.deliveries.history([d.id for d in deliveries])
        now = utcnow()
        return document_read(
            document,
            attachments=attachments,
            deliveries=deliveries,
            history=history,
            now=now,
            today=self.calendar.today(now),
        )

    async def attachment(
        self, document_id: uuid.UUID, attachment_id: uuid.UUID, agency_code: str, *, actor: str | None = None
    ) -> AttachmentDownload:
        """Return an attachment and its bytes if the agency may read the document (a download by an
        API client, ``actor``, is recorded in the audit trail)."""
        await self.readable(document_id=document_id, agency_code=agency_code)
        attachment = await self.documents.attachment(document_id, attachment_id)
        if attachment is None:
            raise AttachmentNotFoundError(f"Document {document_id} has no attachment {attachment_id}")
        if actor is not None:
            await record_audit(
                self.documents,
                messaging,
                "document.downloaded",
                actor=actor,
                agency_code=agency_code,
                document_id=document_id,
                target=attachment_id,
                details={"sha256": attachment.sha256},
                deferred=True,
            )
        return AttachmentDownload(
            file_name=attachment.file_name,
            content_type=attachment.content_type,
            size=attachment.size,
            sha256=attachment.sha256,
            chunks=self.blobs.read(attachment.sha256),
        )

    async def internal_get(self, document_id: uuid.UUID, *, actor: str | None = None) -> DocumentRead:
        """Return a document as its sender sees it, for another service (the archive) or an auditor
        (``actor``: the read is recorded in the audit trail)."""
        document = await self.documents.get(document_id)
        if document is None:
            raise DocumentNotFoundError(f"No document {document_id}")
        return await self.get(document_id, document.sender_code, actor=actor)

    async def internal_attachment(self, document_id: uuid.UUID, attachment_id: uuid.UUID) -> AttachmentDownload:
        """Return an attachment and its bytes for another service (the archive indexes its text)."""
        document = await self.documents.get(document_id)
        if document is None:
            raise DocumentNotFoundError(f"No document {document_id}")
        return await self.attachment(document_id, attachment_id, document.sender_code)

    async def received(self, agency_code: str, filters: ListFilters, *, cursor: str | None, limit: int) -> InboxPage:
        """Return the deliveries addressed to an agency, newest first (recalled copies excluded)."""
        now = utcnow()
        today = self.calendar.today(now)
        page = await self.documents.received(agency_code, filters, cursor=cursor, limit=limit, now=now, today=today)
        items = [inbox_item(delivery, document, now=now, today=today) for delivery, document in page.rows]
        return InboxPage(items=items, next_cursor=page.next_cursor)

    async def sent(self, agency_code: str, filters: ListFilters, *, cursor: str | None, limit: int) -> SentPage:
        """Return the documents an agency sent, newest first, with their deliveries counted by status."""
        now = utcnow()
        today = self.calendar.today(now)
        page = await self.documents.sent(agency_code, filters, cursor=cursor, limit=limit, now=now, today=today)
        counts = await self.deliveries.counts([d.id for d in page.rows], now=now, today=today)
        items = []
        for document in page.rows:
            by_status, overdue = counts.get(document.id, ({}, 0))
            items.append(sent_item(document, by_status=by_status, overdue=overdue))
        return SentPage(items=items, next_cursor=page.next_cursor)
