"""Document endpoints: send, read, download attachments, the inbox."""

from __future__ import annotations

import json
import uuid
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Header, Query, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from services.exchange.dependencies import BlobsDep, RegistryDep
from services.exchange.document.schemas import DocumentAccepted, DocumentRead, DocumentSubmit, InboxPage
from services.exchange.document.service import DocumentService
from services.exchange.errors import MetadataInvalidError
from shared.auth import Principal, Scope, agency_of, require_scope
from shared.db import SessionDep
from shared.service import RuntimeDep

router = APIRouter(tags=["documents"])
SenderDep = Annotated[Principal, require_scope(Scope.SEND)]
ReceiverDep = Annotated[Principal, require_scope(Scope.RECEIVE)]


def _parse_metadata(raw: str) -> DocumentSubmit:
    try:
        return DocumentSubmit.model_validate(json.loads(raw))
    except json.JSONDecodeError as exc:
        raise MetadataInvalidError(f"The `metadata` part is not JSON: {exc}") from exc
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        raise MetadataInvalidError("The `metadata` part does not match the schema: see errors", errors=errors) from exc


@router.post(
    "/v1/documents",
    status_code=202,
    response_model=DocumentAccepted,
    responses={200: {"description": "Idempotent replay: the original answer", "model": DocumentAccepted}},
)
async def submit_document(
    session: SessionDep,
    principal: SenderDep,
    runtime: RuntimeDep,
    registry: RegistryDep,
    blobs: BlobsDep,
    metadata: Annotated[str, Form(description="The document metadata as JSON (DocumentSubmit)")],
    files: Annotated[list[UploadFile], File(description="One or more attachments")],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> JSONResponse:
    """Send a document from your agency to one or more agencies: one delivery per recipient.

    Multipart: a `metadata` part (JSON, Decree 30 fields and `recipients`) and one or more `files`.
    Replaying the same `Idempotency-Key` returns the original answer (200), never a second document.
    """
    data = _parse_metadata(metadata)
    accepted, created = await DocumentService(session).submit(
        sender=principal,
        sender_code=agency_of(principal),
        data=data,
        files=files,
        idempotency_key=idempotency_key,
        registry=registry,
        blobs=blobs,
        max_attachment_bytes=runtime.settings.exchange.max_attachment_bytes,
    )
    return JSONResponse(accepted.model_dump(mode="json"), status_code=202 if created else 200)


@router.get("/v1/documents/{document_id}", response_model=DocumentRead)
async def get_document(document_id: uuid.UUID, session: SessionDep, principal: ReceiverDep) -> DocumentRead:
    """Read a document: its sender sees every recipient's status and history, a recipient its own copy."""
    return await DocumentService(session).get(document_id, agency_of(principal))


@router.get(
    "/v1/documents/{document_id}/attachments/{attachment_id}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The file's bytes"}},
)
async def download_attachment(
    document_id: uuid.UUID,
    attachment_id: uuid.UUID,
    session: SessionDep,
    principal: ReceiverDep,
    blobs: BlobsDep,
) -> StreamingResponse:
    """Download an attachment (sender and recipients only); `X-Content-SHA256` carries its hash."""
    attachment = await DocumentService(session).attachment(document_id, attachment_id, agency_of(principal))
    return StreamingResponse(
        blobs.read(attachment.sha256),
        media_type=attachment.content_type,
        headers={
            "Content-Length": str(attachment.size),
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(attachment.file_name)}",
            "X-Content-SHA256": attachment.sha256,
            "ETag": f'"{attachment.sha256}"',
        },
    )


@router.get("/v1/inbox", response_model=InboxPage)
async def inbox(
    session: SessionDep,
    principal: ReceiverDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    status: Annotated[str | None, Query(pattern=r"^(pending|0[1-6])$")] = None,
) -> InboxPage:
    """List the documents addressed to your agency, newest first, one page at a time."""
    return await DocumentService(session).inbox(agency_of(principal), cursor=cursor, limit=limit, status=status)
