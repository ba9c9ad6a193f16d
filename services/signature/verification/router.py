"""Verification endpoints."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.signature.dependencies import InternalDep, SenderQuery, UploadDep, VerificationServiceDep, VerifierDep
from services.signature.verification.schemas import VerificationReport

router = APIRouter(tags=["signatures"])

UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "a signed PDF, an edXML packet (XML-DSig), or a CMS/PKCS#7 signature",
                        },
                        "signed_file": {
                            "type": "string",
                            "format": "binary",
                            "description": "the file a detached CMS signature signs",
                        },
                    },
                }
            },
            # or the file itself as the body (no multipart parsing: the lighter path for one file)
            **{
                media_type: {"schema": {"type": "string", "format": "binary"}}
                for media_type in ("application/pdf", "application/xml", "application/pkcs7-signature")
            },
        },
    }
}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "no file, or an unreadable multipart body (`upload_invalid`)"},
    415: {"description": "a media type that is neither multipart/form-data nor a file's"},
    413: {"description": "a file over `LIENTHONG_SIGNATURE__MAX_UPLOAD_BYTES`"},
    422: {
        "description": "unreadable, encrypted or unsigned file, a detached signature without its file, or a "
        "verification that overran its time (`document_unreadable`, `file_unreadable`, `document_encrypted`, "
        "`signature_unreadable`, `signature_not_found`, `signed_file_missing`, `verification_timeout`)"
    },
}


@router.post("/v1/signatures/verify", response_model=VerificationReport, openapi_extra=UPLOAD_BODY, responses=ERRORS)
async def verify_signatures(
    _verifier: VerifierDep, upload: UploadDep, verification: VerificationServiceDep, sender: SenderQuery = None
) -> VerificationReport:
    """Verify every signature of a PDF (PAdES), a detached or attached CMS (.p7s) or an edXML packet
    (XML-DSig): integrity, chain to the trust store, revocation, key usage; one verdict with reasons,
    the Decree 30 reading of a PDF (person first, then the sender's seal), and with `sender` whether
    the registry lists the signing certificates for that agency."""
    return await verification.verify(upload, sender=sender)


@router.post(
    "/internal/v1/signatures/verify",
    response_model=VerificationReport,
    openapi_extra=UPLOAD_BODY,
    responses=ERRORS,
    include_in_schema=False,
)
async def verify_signatures_internal(
    upload: UploadDep, verification: VerificationServiceDep, _internal: InternalDep, sender: SenderQuery = None
) -> VerificationReport:
    """The same verification for the services (an `internal` token; never routed by the gateway)."""
    return await verification.verify(upload, sender=sender)
