"""Certificate endpoints."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from services.registry.certificate.schemas import CertificateRead, CertificateUpload
from services.registry.dependencies import AdminDep, CertificateServiceDep, DirectoryReaderDep

router = APIRouter(prefix="/v1/agencies/{code}/certificates", tags=["certificates"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CertificateRead)
async def add_certificate(
    code: str, body: CertificateUpload, certificates: CertificateServiceDep, _admin: AdminDep
) -> CertificateRead:
    """Register an X.509 certificate (PEM or base64 DER) as the agency's seal or a signer's (admin only)."""
    return await certificates.add(code, body)


@router.get("", response_model=list[CertificateRead])
async def list_certificates(
    code: str, certificates: CertificateServiceDep, _reader: DirectoryReaderDep
) -> list[CertificateRead]:
    """List an agency's certificates (public: they bind signatures to the agency)."""
    return await certificates.list(code)


@router.delete("/{certificate_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def remove_certificate(
    code: str, certificate_id: uuid.UUID, certificates: CertificateServiceDep, _admin: AdminDep
) -> Response:
    """Remove a certificate from an agency (admin only)."""
    await certificates.remove(code, certificate_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
