"""Document endpoints: send (new, update, replace), read, download, recall, the sent and received lists."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute

from services.exchange.dependencies import DocumentServiceDep, PacketServiceDep, packets_of
from services.exchange.document.schemas import (
    DocumentAccepted,
    DocumentRead,
    InboxPage,
    ListFilters,
    RecallRequest,
    RecallRequested,
    SentPage,
)
from services.exchange.document.send_route import IDEMPOTENCY_KEY_MAX, SendRoute, chunks, send_multipart
from services.exchange.document.types import document_type
from services.exchange.edxml import PacketTooLargeError
from shared.auth import Principal, Scope, agency_of, require_scope
from shared.errors import BadRequestError, ForbiddenError, RequestValidationProblem
from shared.roles import require_any_scope
from shared.types import AgencyCode

router = APIRouter(tags=["documents"])
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
SenderDep = Annotated[Principal, require_scope(Scope.SEND)]
ReceiverDep = Annotated[Principal, require_scope(Scope.RECEIVE)]
InternalDep = Annotated[Principal, require_scope(Scope.INTERNAL)]
ReaderDep = Annotated[Principal, require_any_scope(Scope.RECEIVE, Scope.AUDIT)]
"""An agency system reads its own agency's documents; an auditor (``audit:read``) every document's
metadata and deliveries, never an attachment's content (the download needs ``documents:receive``)."""
StatusFilter = Annotated[str | None, Query(pattern=r"^(pending|0[1-6])$", description="pending or 01…06")]


def _filters(
    status: str | None,
    type: str | None,
    date_from: dt.date | None,
    date_to: dt.date | None,
    counterpart: str | None,
    urgency: int | None,
    overdue: bool | None,
    kind: str | None,
) -> ListFilters:
    type_name = None
    if type:
        try:
            type_name = document_type(type)[1]
        except ValueError as exc:
            raise BadRequestError(f"Unknown document type {type!r}: {exc}") from exc
    return ListFilters(
        status=status,
        type_name=type_name,
        date_from=date_from,
        date_to=date_to,
        counterpart=counterpart.strip().upper() if counterpart else None,
        urgency=urgency,
        overdue=overdue,
        kind=kind,
    )


XML_TYPES = ("application/xml", "text/xml")
PACKET_BODY = {
    "requestBody": {
        "content": {
            "application/xml": {
                "schema": {"type": "string", "format": "binary"},
                "description": "An edXML (QCVN 102) packet: new, recall, update or replace by BussinessDocType",
            }
        }
    }
}


async def read_limited(stream: AsyncIterator[bytes], limit: int) -> bytes:
    """The bytes of a packet; 413 as soon as there are more than ``limit``."""
    parts: list[bytes] = []
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise PacketTooLargeError(size, limit)
        parts.append(chunk)
    return b"".join(parts)


def _route(route_class: type[APIRoute], path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
    """``@router.post(…)`` with a route class of its own (FastAPI's decorators take none)."""

    def register(endpoint: Endpoint) -> Endpoint:
        router.add_api_route(path, endpoint, route_class_override=route_class, **options)
        return endpoint

    return register


@_route(
    SendRoute,
    "/v1/documents",
    methods=["POST"],
    status_code=202,
    response_model=DocumentAccepted,
    responses={
        200: {
            "description": "Idempotent replay: the original answer; or the answer to a recall packet",
            "model": DocumentAccepted | RecallRequested,
        }
    },
    openapi_extra=PACKET_BODY,
)
async def submit_document(
    request: Request,
    documents: DocumentServiceDep,
    principal: SenderDep,
    metadata: Annotated[str | None, Form(description="The document metadata as JSON (DocumentSubmit)")] = None,
    files: Annotated[list[UploadFile] | None, File(description="One or more attachments")] = None,
    packet: Annotated[UploadFile | None, File(description="An edXML packet, instead of metadata and files")] = None,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=IDEMPOTENCY_KEY_MAX)] = None,
) -> JSONResponse:
    """Send a document from your agency to agencies and/or groups: one delivery per recipient.

    Multipart: a `metadata` part (JSON: Decree 30 and edXML fields, `recipients`, `groups`,
    optional `relation` for an update or a replacement) and one or more `files`. Replaying the same
    `Idempotency-Key`, `sender_document_id` or `edxml_document_id` returns the original answer
    (200), never a second document. Retired recipients are redirected to their successor
    (`redirected`).

    Or an edXML (QCVN 102) packet, as the body (`Content-Type: application/xml`) or as a `packet`
    part: its BussinessDocType makes it a new document (0), a recall (1, answered as the recall
    route answers), an update (2) or a replacement (3) of the document its Bussiness DocumentId
    names. Its `From` must be your agency; a signed packet must verify; a wrong element is named.
    """
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type in XML_TYPES or packet is not None:
        packets = packets_of(request, documents)
        stream = request.stream() if packet is None else chunks(packet)
        body = await read_limited(stream, packets.max_packet_bytes)
        answer, created = await packets.take(
            body,
            sender_code=agency_of(principal),
            sender_client_id=principal.client_id,
            idempotency_key=idempotency_key,
            actor=principal.client_id,
        )
        status = 202 if created else 200
        return JSONResponse(answer.model_dump(mode="json"), status_code=status)
    if metadata is None or files is None:  # as the schema would say of a multipart request without them
        missing = [name for name, part in (("metadata", metadata), ("files", files)) if part is None]
        raise RequestValidationProblem(
            "Send a `metadata` part and `files` (multipart), or an edXML packet (application/xml or a `packet` part)",
            errors=[{"loc": ["body", name], "msg": "Field required", "type": "missing"} for name in missing],
        )
    return await send_multipart(documents, principal, metadata, files, idempotency_key)


@router.get("/v1/documents", response_model=SentPage | InboxPage)
async def list_documents(
    documents: DocumentServiceDep,
    principal: ReaderDep,
    box: Annotated[Literal["sent", "received"], Query(description="documents you sent, or received")] = "received",
    status: StatusFilter = None,
    type: Annotated[str | None, Query(description="a Decree 30 type, by name or abbreviation")] = None,
    date_from: Annotated[dt.date | None, Query(description="promulgated on or after")] = None,
    date_to: Annotated[dt.date | None, Query(description="promulgated on or before")] = None,
    counterpart: Annotated[str | None, Query(description="the sender (received) or a recipient (sent)")] = None,
    urgency: Annotated[int | None, Query(ge=0, le=4)] = None,
    overdue: bool | None = None,
    kind: Literal["new", "update", "replace"] | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    agency: Annotated[AgencyCode | None, Query(description="auditors: the agency whose documents to list")] = None,
) -> SentPage | InboxPage:
    """List the documents your agency sent or received, newest first, filtered, one page at a time.
    An auditor (`audit:read`) names the `agency` whose documents it lists."""
    filters = _filters(status, type, date_from, date_to, counterpart, urgency, overdue, kind)
    agency = _listed_agency(principal, agency)
    if box == "sent":
        return await documents.sent(agency, filters, cursor=cursor, limit=limit)
    return await documents.received(agency, filters, cursor=cursor, limit=limit)


@router.get("/v1/inbox", response_model=InboxPage)
async def inbox(
    documents: DocumentServiceDep,
    principal: ReceiverDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    status: StatusFilter = None,
    overdue: bool | None = None,
) -> InboxPage:
    """The documents addressed to your agency, newest first (`GET /v1/documents?box=received`)."""
    filters = ListFilters(status=status, overdue=overdue)
    return await documents.received(agency_of(principal), filters, cursor=cursor, limit=limit)


def _listed_agency(principal: Principal, agency: str | None) -> str:
    """The agency whose documents are listed: an auditor's choice, else the caller's own (an agency
    acts only as itself)."""
    if Scope.AUDIT in principal.scopes:
        if agency is None:
            raise BadRequestError("An auditor names the agency whose documents to list: `agency=<code>`")
        return agency.upper()
    own = agency_of(principal)
    if agency is not None and agency.upper() != own:
        raise ForbiddenError("An agency lists only its own documents")
    return own


@router.get("/v1/documents/{document_id}", response_model=DocumentRead)
async def get_document(document_id: uuid.UUID, documents: DocumentServiceDep, principal: ReaderDep) -> DocumentRead:
    """Read a document: its sender sees every recipient's status and history, a recipient its own
    copy (404 once the copy is recalled), anyone else 404. An auditor (`audit:read`) reads every
    document as its sender sees it: metadata, attachments listed (never downloadable), deliveries."""
    if Scope.AUDIT in principal.scopes:
        return await documents.internal_get(document_id, actor=principal.client_id)
    return await documents.get(document_id, agency_of(principal), actor=principal.client_id)


@router.get(
    "/v1/documents/{document_id}/edxml",
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}, "description": "The signed edXML packet"}},
)
async def export_document(document_id: uuid.UUID, packets: PacketServiceDep, principal: ReceiverDep) -> Response:
    """The document as an edXML (QCVN 102) packet, for its sender and its recipients: its metadata,
    recipients and hops, its files base64 in `AttachmentEncoded` linked by `cid:`, signed with the
    province's seal (enveloped XML-DSig, exc-c14n, X509Data)."""
    data = await packets.export(document_id, agency_of(principal), actor=principal.client_id)
    return Response(
        data,
        media_type="application/xml",
        headers={
            "Content-Disposition": f'attachment; filename="{document_id}.edxml"',
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
        },
    )


@router.post("/v1/documents/{document_id}/recall", response_model=RecallRequested)
async def recall_document(
    document_id: uuid.UUID, body: RecallRequest, documents: DocumentServiceDep, principal: SenderDep
) -> RecallRequested:
    """Ask the recipients (all, or those listed) to give a document back (status 13); each answers
    15 (agreed: its copy is withdrawn) or 16 (refused) on its delivery."""
    return await documents.recall(document_id, agency_of(principal), body, actor=principal.client_id)


@router.get(
    "/v1/documents/{document_id}/attachments/{attachment_id}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The file's bytes"}},
)
async def download_attachment(
    document_id: uuid.UUID,
    attachment_id: uuid.UUID,
    documents: DocumentServiceDep,
    principal: ReceiverDep,
) -> StreamingResponse:
    """Download an attachment (sender and recipients only); `X-Content-SHA256` carries its hash."""
    attachment = await documents.attachment(document_id, attachment_id, agency_of(principal), actor=principal.client_id)
    return StreamingResponse(
        attachment.chunks,
        media_type=attachment.content_type,
        headers={
            "Content-Length": str(attachment.size),
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(attachment.file_name)}",
            "X-Content-SHA256": attachment.sha256,
            "ETag": f'"{attachment.sha256}"',
            # never rendered as a page of ours: no type guessing, and scripts in an XML/XHTML/SVG
            # file run (if a browser renders it at all) in a sandbox without our origin
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
        },
    )


@router.get("/internal/v1/documents/{document_id}", response_model=DocumentRead, include_in_schema=False)
async def get_document_internal(
    document_id: uuid.UUID, documents: DocumentServiceDep, _internal: InternalDep
) -> DocumentRead:
    """Read a document as its sender sees it (the archive's indexer; internal scope only)."""
    return await documents.internal_get(document_id)


@router.get("/internal/v1/documents/{document_id}/attachments/{attachment_id}", include_in_schema=False)
async def download_attachment_internal(
    document_id: uuid.UUID, attachment_id: uuid.UUID, documents: DocumentServiceDep, _internal: InternalDep
) -> StreamingResponse:
    """Download an attachment's bytes (the archive extracts their text; internal scope only)."""
    attachment = await documents.internal_attachment(document_id, attachment_id)
    return StreamingResponse(
        attachment.chunks,
        media_type=attachment.content_type,
        headers={"Content-Length": str(attachment.size), "X-Content-SHA256": attachment.sha256},
    )
