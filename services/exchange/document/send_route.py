"""``POST /v1/documents``'s route: FastAPI's, with a short way through for the common send.

The route stays a FastAPI route: its OpenAPI operation, its matching, its name in the metrics, and
every request that is not a plain multipart send — an edXML packet, a missing or misshapen part, a
missing token, an ``Idempotency-Key`` too long — are FastAPI's, answered as FastAPI answers them.

A plain multipart send — ``multipart/form-data`` with a ``metadata`` text part, one or more
``files``, no ``packet``, a bearer token — skips FastAPI's per-request work: solving the
endpoint's dependency tree (the session, the service, the token, the form's fields, the header),
checking each value against its annotation, wrapping the endpoint. That work was a tenth of the
exchange's CPU a document (docs/performance.md, "The fourteenth session"). The short way does
what those dependencies do, with the same functions: the form parsed with the route's limits (a
body FastAPI could not parse gets FastAPI's answer), the token verified by the service's verifier
and its scope checked, the request's unit of work opened on the service's database and committed
before the answer is sent, then the endpoint's own code (:func:`send_multipart`). A form it does
not take — parsed, then found misshapen — goes to FastAPI's handler, which reads the same parsed
form (Starlette keeps it on the request).

What it does not do: FastAPI's OpenTelemetry spans of the dependencies and of the endpoint, and the
request's telemetry data (``request``, ``body``, ``values``), when an OpenTelemetry provider is set up
(the request's own span, from the middleware, stays). LienThong sets none up.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Any

from fastapi import Request, Response, UploadFile
from fastapi._body_limit import get_body_limit_error
from fastapi.dependencies.utils import _is_empty_file_input
from fastapi.responses import JSONResponse
from fastapi.routing import _FASTAPI_SCOPE_KEY, APIRoute, _effective_route_context_var, _resolve_form_limits
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import ValidationError
from starlette.datastructures import UploadFile as StarletteUploadFile
from starlette.exceptions import HTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY

from services.exchange.blobstore import CHUNK
from services.exchange.dependencies import document_service
from services.exchange.document.schemas import AttachmentUpload, DocumentSubmit
from services.exchange.document.service import DocumentService
from services.exchange.errors import MetadataInvalidError
from shared.auth import Principal, Scope, agency_of, check_scope
from shared.runtime import AppRuntime, runtime_of

IDEMPOTENCY_KEY_MAX = 200  # the header's length FastAPI checks (Header(max_length=…) on the endpoint)


def parse_metadata(raw: str) -> DocumentSubmit:
    """The ``metadata`` part, read as :class:`DocumentSubmit`; 422 ``metadata_invalid`` otherwise."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # not JSON, absurd numbers, absurd nesting
        raise MetadataInvalidError(f"The `metadata` part is not JSON this API can read: {exc}") from exc
    try:
        return DocumentSubmit.model_validate(body)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        raise MetadataInvalidError("The `metadata` part does not match the schema: see errors", errors=errors) from exc


async def chunks(upload: UploadFile | StarletteUploadFile) -> AsyncIterator[bytes]:
    """An uploaded part's bytes, a chunk at a time."""
    while chunk := await upload.read(CHUNK):
        yield chunk


async def send_multipart(
    documents: DocumentService,
    principal: Principal,
    metadata: str,
    files: list[UploadFile] | list[StarletteUploadFile],
    idempotency_key: str | None,
) -> JSONResponse:
    """The multipart send: the document, its files, its deliveries; 202, or 200 for a replay."""
    data = parse_metadata(metadata)
    accepted, created = await documents.submit(
        sender_code=agency_of(principal),
        sender_client_id=principal.client_id,
        data=data,
        files=[AttachmentUpload(file_name=upload.filename, chunks=chunks(upload)) for upload in files],
        idempotency_key=idempotency_key,
    )
    return JSONResponse(accepted.model_dump(mode="json"), status_code=202 if created else 200)


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class SendRoute(APIRoute):
    """The send's route: FastAPI's handler, after :func:`plain_send` for the common request.

    Only FastAPI's handler where FastAPI would solve more than the endpoint's own dependencies: an
    app's or an include's ``dependencies``, and while the app has ``dependency_overrides``."""

    def get_route_handler(self) -> Handler:
        full = super().get_route_handler()
        effective = _effective_route_context_var.get()  # the included route FastAPI builds the handler for
        route = effective if effective is not None and effective.original_route is self else self
        if len(route.dependencies) > len(self.dependencies):
            return full
        provider = route.dependency_overrides_provider
        form_limits = self.form_limits

        async def handler(request: Request) -> Response:
            if not getattr(provider, "dependency_overrides", None):
                answer = await plain_send(request, form_limits)
                if answer is not None:
                    return answer
            return await full(request)

        return handler


async def plain_send(request: Request, form_limits: Any = None) -> Response | None:
    """The answer to a plain multipart send (see the module), or None: FastAPI's handler answers."""
    headers = request.headers
    if not headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return None
    authorization = headers.get("authorization")
    scheme, token = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and token) or scheme.lower() != "bearer":
        return None
    idempotency_key = headers.get("idempotency-key")
    if idempotency_key is not None and len(idempotency_key) > IDEMPOTENCY_KEY_MAX:
        return None
    try:  # as FastAPI's handler reads a form body, and answers when it cannot (Starlette's HTTPException: its 400)
        form = await request.form(**_resolve_form_limits(request.scope.get(_FASTAPI_SCOPE_KEY, {}), form_limits))
    except HTTPException:
        raise
    except Exception as exc:
        if MAX_BODY_SIZE_SCOPE_KEY in request.scope and (error := get_body_limit_error(exc)):
            raise error from exc
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from exc
    metadata = form.get("metadata")
    files = [upload for upload in form.getlist("files") if not _is_empty_file_input(upload)]  # as FastAPI reads a list
    if (
        not isinstance(metadata, str)
        or not metadata
        or not files
        or "packet" in form
        or not all(isinstance(upload, StarletteUploadFile) for upload in files)
    ):
        return None  # FastAPI's handler reads the same form and says what is wrong
    stack = request.scope.get("fastapi_middleware_astack")
    assert isinstance(stack, AsyncExitStack), "fastapi_middleware_astack not found in request scope"
    stack.push_async_callback(form.close)  # the spooled parts closed after the answer, as FastAPI does
    runtime = runtime_of(request, AppRuntime)
    principal = check_scope(await runtime.token_verifier.verify_async(token), Scope.SEND)
    async with runtime.db.session() as session:  # committed before the answer is sent
        documents = await document_service(request, session)
        return await send_multipart(documents, principal, metadata, files, idempotency_key)  # type: ignore[arg-type]
