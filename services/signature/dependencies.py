"""The signature service's runtime (verification pool, result cache, registry cache) and the typed
dependencies its routes get their services and uploads through."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import Depends, Query, Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from services.settings import Settings
from services.signature.config import SignatureSection
from services.signature.errors import UploadInvalidError
from services.signature.models import messaging
from services.signature.truststore.repository import TrustStoreRepository
from services.signature.truststore.service import TrustStoreService
from services.signature.verification.engine import Outcome
from services.signature.verification.pool import VerifierPool
from services.signature.verification.repository import VerificationRepository
from services.signature.verification.service import ResultKey, RevocationPolicy, Upload, VerificationService
from shared.auth import Principal, PrincipalDep, Scope, require_scope
from shared.cache import TTLCache
from shared.clients import DIRECTORY_EVENTS, DirectoryCache, RegistryClient
from shared.db import SessionDep
from shared.errors import PayloadTooLargeError, UnsupportedMediaTypeError
from shared.messaging import Broker, Envelope
from shared.roles import VERIFIERS, require_any_scope
from shared.runtime import runtime_of
from shared.service import Listener, ServiceRuntime

# a result stays valid while the trust store keeps its version (the key holds it): a day bounds memory
RESULT_TTL_SECONDS = 24 * 3600.0


class SignatureRuntime(ServiceRuntime):
    """The signature service's runtime: the shared parts, its process pool and its caches."""

    def __init__(
        self,
        settings: Settings,
        *,
        broker: Broker | None = None,
        transports: dict[str, httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        config = settings.signature
        directory = DirectoryCache(config.registry_cache_seconds)
        super().__init__(
            "signature",
            settings,
            messaging,
            listeners=[
                Listener(DIRECTORY_EVENTS, directory.on_event),
                Listener(("trust_store.changed.v1",), self._trust_store_changed),
            ],
            broker=broker,
            transports=transports,
        )
        self.config: SignatureSection = config
        self.directory = directory
        self.results: TTLCache[ResultKey, Outcome] = TTLCache(RESULT_TTL_SECONDS, config.result_cache_size)
        self.pool = VerifierPool(config.verify_workers, config.verify_timeout_seconds)
        self.on_shutdown(self.pool.shutdown)

    async def _trust_store_changed(self, _envelope: Envelope) -> None:
        """Drop the cached results: they were found with another trust store."""
        self.results.clear()


async def signature_runtime(request: Request) -> SignatureRuntime:
    """The runtime of the signature service serving the request."""
    return runtime_of(request, SignatureRuntime)


SignatureRuntimeDep = Annotated[SignatureRuntime, Depends(signature_runtime)]

# -- who may call ----------------------------------------------------------------------------------

AdminDep = Annotated[Principal, require_scope(Scope.REGISTRY_ADMIN)]
InternalDep = Annotated[Principal, require_scope(Scope.INTERNAL)]
VerifierDep = Annotated[Principal, require_any_scope(*VERIFIERS)]
"""Verifies an uploaded file: every role but the statistics reader (docs/security.md, roles)."""

# -- the services ----------------------------------------------------------------------------------


async def trust_store_service(
    session: SessionDep, runtime: SignatureRuntimeDep, principal: PrincipalDep
) -> TrustStoreService:
    """Build the trust-store service on a session, acting as the calling client."""
    return TrustStoreService(
        TrustStoreRepository(session),
        actor=principal.client_id,
        revocation_mode=runtime.config.revocation_mode,
        fetch_revocation=runtime.config.fetch_revocation,
    )


async def verification_service(
    request: Request, session: SessionDep, runtime: SignatureRuntimeDep
) -> VerificationService:
    """Build the verification service; the registry is asked with the caller's own token."""
    authorization = request.headers.get("authorization", "")
    config = runtime.config
    return VerificationService(
        VerificationRepository(session),
        pool=runtime.pool,
        results=runtime.results,
        registry=RegistryClient(runtime.client("registry"), lambda: authorization, cache=runtime.directory),
        policy=RevocationPolicy(config.revocation_mode, config.fetch_revocation, config.fetch_timeout_seconds),
    )


TrustStoreServiceDep = Annotated[TrustStoreService, Depends(trust_store_service)]
VerificationServiceDep = Annotated[VerificationService, Depends(verification_service)]

# -- the upload ------------------------------------------------------------------------------------

MULTIPART_OVERHEAD = 64 * 1024


async def _read(part: object, limit: int, name: str) -> bytes:
    if not isinstance(part, UploadFile):
        raise UploadInvalidError(f"`{name}` must be a file part (multipart/form-data with a filename)")
    chunks, size = [], 0
    while chunk := await part.read(1024 * 1024):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"`{name}` is larger than {limit} bytes", max_bytes=limit)
        chunks.append(chunk)
    if size == 0:
        raise UploadInvalidError(f"`{name}` is empty")
    return b"".join(chunks)


# a file sent as the whole body, without multipart (no detached signature then): the lighter path
RAW_MEDIA_TYPES = frozenset(
    {
        "application/pdf",
        "application/xml",
        "text/xml",
        "application/pkcs7-signature",
        "application/pkcs7-mime",
        "application/octet-stream",
    }
)


async def _raw_body(request: Request, limit: int) -> Upload:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"The file is larger than {limit} bytes", max_bytes=limit)
        chunks.append(chunk)
    if size == 0:
        raise UploadInvalidError("The body is empty")
    return Upload(data=b"".join(chunks), signed_data=None)


async def verification_upload(request: Request, runtime: SignatureRuntimeDep) -> Upload:
    """Read the upload within the limit: multipart (`file`, and `signed_file` for a detached
    signature), or the file itself as the body with its media type (application/pdf …).

    A declared length over the limit is refused before a byte is read; an undeclared one while reading."""
    limit = runtime.config.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > 2 * limit + MULTIPART_OVERHEAD:
        raise PayloadTooLargeError(f"The upload is larger than {limit} bytes", max_bytes=limit)
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type in RAW_MEDIA_TYPES:
        return await _raw_body(request, limit)
    if not media_type:
        raise UploadInvalidError("Send the file as multipart/form-data (`file`, `signed_file`) or as the body")
    if media_type != "multipart/form-data":
        raise UnsupportedMediaTypeError(
            f"Send multipart/form-data or the file with one of: {', '.join(sorted(RAW_MEDIA_TYPES))}",
        )
    try:
        form = await request.form(max_files=2, max_fields=10)
    except (MultiPartException, ValueError, KeyError) as exc:
        raise UploadInvalidError(f"The multipart upload cannot be read: {exc}") from exc
    try:
        if "file" not in form:
            raise UploadInvalidError("The upload has no `file` part")
        data = await _read(form["file"], limit, "file")
        signed = await _read(form["signed_file"], limit, "signed_file") if "signed_file" in form else None
    finally:
        await form.close()
    return Upload(data=data, signed_data=signed)


UploadDep = Annotated[Upload, Depends(verification_upload)]
SenderQuery = Annotated[
    str | None,
    Query(
        max_length=30,
        pattern=r"^[0-9A-Za-z.]+$",
        description="the sending agency's code: the report says whether it sealed and whose certificates signed",
    ),
]
