"""Archive record endpoints: read a record, ingest a digitised one, the retention report."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from services.archive.dependencies import ArchiveRuntimeDep, RecordServiceDep, reader_of
from services.archive.errors import ArchiveFileTooLargeError, ArchiveFileUnreadableError, ArchiveMetadataInvalidError
from services.archive.record import files
from services.archive.record.schemas import ArchiveRecordRead, DigitisedRecordCreate, RetentionPage
from services.archive.record.service import Reader, digitised_id, record_read
from shared.auth import Principal, Scope, agency_of, require_scope
from shared.roles import require_any_scope

router = APIRouter(prefix="/v1/archive", tags=["archive"])
SearcherDep = Annotated[Principal, require_scope(Scope.SEARCH)]
ReaderDep = Annotated[Principal, require_any_scope(Scope.SEARCH, Scope.AUDIT)]
"""Reads records' metadata: an agency system, or an auditor (every record; never a text: search needs
``archive:search``)."""
MAX_SCAN_BYTES = 100 * 1024 * 1024


def parse_metadata(raw: str) -> DigitisedRecordCreate:
    try:
        return DigitisedRecordCreate.model_validate(json.loads(raw))
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, ValidationError):
            detail = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        else:  # not JSON: one error without a location (`errors` is always a list of objects)
            detail = [{"loc": [], "msg": str(exc)}]
        raise ArchiveMetadataInvalidError("The `metadata` part is not a valid record", errors=detail) from exc


@router.get("/records/{document_id}", response_model=ArchiveRecordRead)
async def read_record(document_id: uuid.UUID, records: RecordServiceDep, principal: ReaderDep) -> ArchiveRecordRead:
    """Return the archive record of a document your agency sent or received, as the exchange shows it
    to you (a recipient sees its own delivery; a copy withdrawn with 15 is 404, as in the exchange)."""
    return await records.get(document_id, reader_of(principal))


@router.post("/records", status_code=201, response_model=ArchiveRecordRead)
async def ingest_record(
    records: RecordServiceDep,
    runtime: ArchiveRuntimeDep,
    principal: SearcherDep,
    metadata: Annotated[str, Form(description="DigitisedRecordCreate as JSON")],
    file: Annotated[UploadFile, File(description="the scan: PDF (with or without a text layer), PNG, JPEG, TIFF")],
) -> JSONResponse:
    """Ingest a digitised paper record: its scan and metadata (a scan that cannot be read: 422).
    Its text (the PDF's text layer, or OCR in Vietnamese) is extracted next and becomes searchable;
    readable by your agency and the issuer. The same scan and metadata again answer 200 with the record kept before."""
    agency = agency_of(principal)
    data = parse_metadata(metadata)
    body = await file.read(MAX_SCAN_BYTES + 1)
    if len(body) > MAX_SCAN_BYTES:
        raise ArchiveFileTooLargeError(f"A scan may be {MAX_SCAN_BYTES} bytes at most")
    content_type = files.sniff(body[:16])
    if (problem := await runtime.extractor.check(body, content_type)) is not None:
        raise ArchiveFileUnreadableError(f"The scan cannot be read: {problem}")
    sha256 = await asyncio.to_thread(files.store, runtime.files_dir, body)
    record, created = await records.ingest_digitised(
        document_id=digitised_id(data, sha256),
        data=data,
        ingested_by=agency,
        file_name=(file.filename or "scan")[:255],
        file_sha256=sha256,
        content_type=content_type,
    )
    runtime.changed()  # the session commits as the route returns; the feeder looks again right after
    shown = record_read(record, Reader(agency))
    return JSONResponse(shown.model_dump(mode="json"), status_code=201 if created else 200)


@router.get("/retention", response_model=RetentionPage)
async def retention_report(
    records: RecordServiceDep,
    principal: ReaderDep,
    as_of: Annotated[dt.date | None, Query(description="the day to report on (default: today, UTC)")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> RetentionPage:
    """List the records whose retention period has ended (date + retention years ≤ `as_of`);
    permanent records never appear. Auditors see every record, an agency those it may read."""
    return await records.retention(as_of or dt.date.today(), reader_of(principal), cursor=cursor, limit=limit)
