"""Rules for archive records: each exchange event reflected once, each record shown to its readers
only and exactly as the exchange shows it; digitised records ingested; retention reported."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.archive.errors import ArchiveRecordNotFoundError
from services.archive.models import ArchiveRecord
from services.archive.record.repository import ArchiveRecordRepository
from services.archive.record.schemas import (
    ArchiveRecordRead,
    DeliveryView,
    DigitisedRecordCreate,
    RetentionItem,
    RetentionPage,
)
from shared.db import utcnow
from shared.messaging import Envelope
from shared.pagination import decode_cursor, encode_cursor

log = logging.getLogger("lienthong.archive")

RECALL_STATUSES = ("13", "15", "16")
WITHDRAWN = "15"

# the events a record follows (docs/archive.md, "Indexing")
EVENTS = (
    "document.submitted.v1",
    "document.signature_checked.v1",
    "delivery.status_changed.v1",
    "document.recall_requested.v1",
    "document.recalled.v1",
    "document.replaced.v1",
)


@dataclass(frozen=True)
class Reader:
    """Who reads: an agency, or an auditor (who may read every record)."""

    agency_code: str | None
    auditor: bool = False


DIGITISED = uuid.UUID("6c1f8f5e-9d0a-4d3e-8a51-4a7c2b1e0d11")  # the namespace of digitised records' ids


def digitised_id(data: DigitisedRecordCreate, sha256: str) -> uuid.UUID:
    """The same paper, scanned the same, is one record (an import run twice adds nothing)."""
    key = f"{data.issuer_code}|{data.code_number}/{data.code_notation}|{data.promulgation_date}|{sha256}"
    return uuid.uuid5(DIGITISED, key)


def readers_of(sender_code: str, deliveries: dict[str, dict[str, Any]]) -> list[str]:
    """The sender, and every recipient whose copy stands (not withdrawn: 15)."""
    codes = [sender_code]
    codes += [code for code, d in deliveries.items() if d.get("recall_status") != WITHDRAWN and code != sender_code]
    return codes


def add_years(day: dt.date, years: int) -> dt.date:
    """``day`` ``years`` later (29 February becomes 28 February in a common year)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def record_read(record: ArchiveRecord, reader: Reader) -> ArchiveRecordRead:
    """Show a record as the exchange would show its document to ``reader``."""
    deliveries = record.deliveries or {}
    if reader.auditor or reader.agency_code == record.sender_code:
        shown = deliveries
    else:
        shown = {code: d for code, d in deliveries.items() if code == reader.agency_code}
    return ArchiveRecordRead(
        document_id=record.document_id,
        source=record.source,
        kind=record.kind,
        original_document_id=record.original_document_id,
        superseded_by=record.superseded_by,
        sender_code=record.sender_code,
        code=record.code,
        type_name=record.type_name,
        subject=record.subject,
        urgency=record.urgency,
        promulgation_date=record.promulgation_date,
        due_date=record.due_date,
        signature_verdict=record.signature_verdict,
        recipient_codes=list(shown),
        deliveries=[
            DeliveryView(recipient_code=code, status=d.get("status", "pending"), recall_status=d.get("recall_status"))
            for code, d in shown.items()
        ],
        details=record.details or {},
        text_status=record.text_status,
        retention_years=record.retention_years,
        file_name=record.file_name,
        submitted_at=record.submitted_at,
        archived_at=record.archived_at,
    )


def may_read(record: ArchiveRecord, reader: Reader) -> bool:
    if reader.auditor:
        return True
    if reader.agency_code is None:
        return False
    if record.source == "digitised":
        return reader.agency_code in (record.readers or [])
    return reader.agency_code in readers_of(record.sender_code, record.deliveries or {})


class RecordService:
    def __init__(self, records: ArchiveRecordRepository) -> None:
        self.records = records

    async def apply_events(self, envelopes: Sequence[Envelope]) -> int:
        """Reflect a batch of exchange events on the records, in the order they came (the records
        they change loaded with one query, the ids of those they may create checked with another,
        new ones inserted together); return how many new records wait for their text."""
        changing = {uuid.UUID(str(e.data["document_id"])) for e in envelopes if e.type != "document.submitted.v1"}
        created = {uuid.UUID(str(e.data["document_id"])) for e in envelopes if e.type == "document.submitted.v1"}
        # a submitted document needs no record loaded, only to be known or not (most batches)
        known = await self.records.by_document_ids(list(changing))
        existing = await self.records.existing(list(created - changing))
        now = utcnow()
        new: dict[uuid.UUID, dict[str, Any]] = {}
        for envelope in envelopes:
            data = envelope.data
            document_id = uuid.UUID(str(data["document_id"]))
            if envelope.type == "document.submitted.v1":
                if document_id not in known and document_id not in existing and document_id not in new:
                    new[document_id] = submitted_row(envelope, now)
                continue
            target: ArchiveRecord | dict[str, Any] | None = known.get(document_id) or new.get(document_id)
            if target is None:
                log.warning("%s for document %s the archive never recorded: ignored", envelope.type, document_id)
                continue
            apply_change(target, envelope, now)
        await self.records.insert_records(list(new.values()))
        await self.records.flush()
        return sum(row["text_status"] == "pending" for row in new.values())

    async def record_all(self, envelopes: Sequence[Envelope]) -> None:
        """Keep the archive records of documents just submitted (``document.submitted.v1``)."""
        await self.apply_events(envelopes)

    async def get(self, document_id: uuid.UUID, reader: Reader | str) -> ArchiveRecordRead:
        """Return a record to whoever may read it, as the exchange would show it; 404 to anyone else
        (a recipient whose copy was withdrawn included)."""
        if isinstance(reader, str):
            reader = Reader(reader)
        record = await self.records.by_document_id(document_id)
        if record is None or not may_read(record, reader):
            raise ArchiveRecordNotFoundError(f"No archive record of document {document_id} is visible to you")
        return record_read(record, reader)

    async def ingest_digitised(
        self,
        *,
        document_id: uuid.UUID,
        data: DigitisedRecordCreate,
        ingested_by: str,
        file_name: str,
        file_sha256: str,
        content_type: str,
    ) -> tuple[ArchiveRecord, bool]:
        """Keep a digitised paper record (its text extracted next, OCR'd if it has no text layer);
        the same id again returns the record kept before."""
        existing = await self.records.by_document_id(document_id)
        if existing is not None:
            return existing, False
        now = utcnow()
        readers = sorted({ingested_by, data.issuer_code})
        record = ArchiveRecord(
            document_id=document_id,
            source="digitised",
            kind="new",
            sender_code=data.issuer_code,
            code=f"{data.code_number}/{data.code_notation}",
            type_name=data.type_name,
            subject=data.subject,
            urgency=data.urgency,
            promulgation_date=data.promulgation_date,
            recipient_codes=[],
            deliveries={},
            readers=readers,
            details={},
            text="",
            text_status="pending",
            retention_years=data.retention_years,
            file_name=file_name,
            file_sha256=file_sha256,
            content_type=content_type,
            ingested_by=ingested_by,
            submitted_at=now,
            archived_at=now,
            changed_at=now,
        )
        await self.records.add(record)
        return record, True

    async def retention(self, as_of: dt.date, reader: Reader, *, cursor: str | None, limit: int) -> RetentionPage:
        """The records ``reader`` may read whose retention period has ended on ``as_of``, in id
        order, a page at a time."""
        after = uuid.UUID(str(decode_cursor(cursor, 1)[0])) if cursor else None
        items: list[RetentionItem] = []
        next_cursor: str | None = None
        while len(items) < limit:
            rows = await self.records.retention_ended(as_of, cursor=after, limit=500)
            if not rows:
                break
            for row in rows:
                after = row.document_id
                assert row.retention_years is not None and row.promulgation_date is not None
                ends_on = add_years(row.promulgation_date, row.retention_years)
                if ends_on <= as_of and may_read(row, reader):
                    items.append(
                        RetentionItem(
                            document_id=row.document_id,
                            code=row.code,
                            subject=row.subject,
                            sender_code=row.sender_code,
                            promulgation_date=row.promulgation_date,
                            retention_years=row.retention_years,
                            ends_on=ends_on,
                        )
                    )
                    if len(items) == limit:
                        next_cursor = encode_cursor(row.document_id)
                        break
        return RetentionPage(as_of=as_of, items=items, next_cursor=next_cursor)


def submitted_row(envelope: Envelope, now: dt.datetime) -> dict[str, Any]:
    """The new record of a ``document.submitted.v1`` event, as column values."""
    data = envelope.data
    deliveries = {d["recipient_code"]: _new_delivery(d["id"]) for d in data["deliveries"]}
    original = data.get("original_document_id")
    details = event_details(data)
    return {
        "document_id": uuid.UUID(str(data["document_id"])),
        "source": "exchanged",
        "kind": data.get("kind", "new"),
        "original_document_id": uuid.UUID(str(original)) if original else None,
        "superseded_by": None,
        "sender_code": data["sender_code"],
        "code": data["code"],
        "type_name": data["type_name"],
        "subject": data["subject"],
        "urgency": int(data.get("urgency") or 0),
        "promulgation_date": _date(data.get("promulgation_date")),
        "due_date": _date(data.get("due_date")),
        "signature_verdict": data.get("signature_verdict"),
        "recipient_codes": list(deliveries),
        "deliveries": deliveries,
        "readers": readers_of(data["sender_code"], deliveries),
        "details": details or {},
        "text": "",
        # the attachments' text comes next (the details too, from an event of an older exchange)
        "text_status": "pending" if details is None or needs_text(details["attachments"]) else "done",
        "text_error": None,
        "text_claimed_at": None,
        "retention_years": None,
        "file_name": None,
        "file_sha256": None,
        "content_type": None,
        "ingested_by": None,
        "submitted_at": envelope.occurred_at.astimezone(dt.UTC),
        "archived_at": now,
        "changed_at": now,
    }


ATTACHMENT_FIELDS = ("id", "file_name", "content_type", "size", "sha256")
TEXTUAL = (
    "application/pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.oasis.opendocument.text",
    "image/png",
    "image/jpeg",
    "image/tiff",
    "application/xml",
    "text/plain",
)


def needs_text(attachments: list[dict[str, Any]]) -> bool:
    """Whether any of these attachments is of a kind whose text the archive extracts."""
    return any(a.get("content_type") in TEXTUAL for a in attachments)


def event_details(data: dict[str, Any]) -> dict[str, Any] | None:
    """A record's details (place, signer, steering type, pages, description, attachments) as a
    ``document.submitted.v1`` event carries them; None from an exchange whose events did not carry
    them (the text enricher then asks the exchange for the document)."""
    given = data.get("details")
    attachments = data.get("attachments") or []
    if not isinstance(given, dict) or any(not a.get("id") for a in attachments):
        return None
    return {
        "promulgation_place": given.get("promulgation_place"),
        "signer_name": given.get("signer_name"),
        "signer_position": given.get("signer_position"),
        "signer_competence": given.get("signer_competence"),
        "steering_type": given.get("steering_type"),
        "page_count": given.get("page_count"),
        "description": given.get("description"),
        "attachments": [{k: a.get(k) for k in ATTACHMENT_FIELDS} for a in attachments],
    }


def _date(value: object) -> dt.date | None:
    return dt.date.fromisoformat(str(value)) if value else None


def _new_delivery(delivery_id: object) -> dict[str, Any]:
    return {"delivery_id": str(delivery_id), "status": "pending", "recall_status": None}


def _set(target: ArchiveRecord | dict[str, Any], name: str, value: Any) -> None:
    if isinstance(target, dict):
        target[name] = value
    else:
        setattr(target, name, value)


def _get(target: ArchiveRecord | dict[str, Any], name: str) -> Any:
    return target[name] if isinstance(target, dict) else getattr(target, name)


def apply_change(target: ArchiveRecord | dict[str, Any], envelope: Envelope, now: dt.datetime) -> None:
    """Reflect one event other than a submission on a record (a row or the values of a new one)."""
    data = envelope.data
    deliveries = {code: dict(d) for code, d in (_get(target, "deliveries") or {}).items()}
    if envelope.type == "document.signature_checked.v1":
        _set(target, "signature_verdict", data["verdict"])
    elif envelope.type == "document.replaced.v1":
        _set(target, "superseded_by", uuid.UUID(str(data["replaced_by"])))
    elif envelope.type == "delivery.status_changed.v1":
        delivery = deliveries.setdefault(data["recipient_code"], _new_delivery(data["delivery_id"]))
        if data["status"] in RECALL_STATUSES:
            delivery["recall_status"] = data["status"]
        else:
            delivery["status"] = data["status"]
    elif envelope.type == "document.recall_requested.v1":
        wanted = {str(i) for i in data["delivery_ids"]}
        for delivery in deliveries.values():
            if delivery.get("delivery_id") in wanted and delivery.get("recall_status") != WITHDRAWN:
                delivery["recall_status"] = "13"
    elif envelope.type == "document.recalled.v1":
        delivery = deliveries.setdefault(data["recipient_code"], _new_delivery(data["delivery_id"]))
        delivery["recall_status"] = WITHDRAWN
    else:
        return
    _set(target, "deliveries", deliveries)
    _set(target, "readers", readers_of(_get(target, "sender_code"), deliveries))
    _set(target, "changed_at", now)
