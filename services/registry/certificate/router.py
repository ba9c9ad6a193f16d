"""Certificate endpoints."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from services.registry.certificate.schemas import CertificateRead, CertificateUpload
from services.registry.certificate.service import CertificateService
from services.registry.dependencies import AdminDep
from shared.auth import PrincipalDep
from shared.db import SessionDep

router = APIRouter(prefix="/v1/agencies/{code}/certificates", tags=["certificates"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CertificateRead)
async def add_certificate(code: str, body: CertificateUpload, session: SessionDep, admin: AdminDep) -> CertificateRead:
    """Register an X.509 certificate (PEM or base64 DER) as the agency's seal or a signer's (admin only)."""
    return await CertificateService(session, admin.client_id).add(code, body)


@router.get("", response_model=list[CertificateRead])
async def list_certificates(code: str, session: SessionDep, _principal: PrincipalDep) -> list[CertificateRead]:
    """List an agency's certificates (public: they bind signatures to the agency)."""
    return await CertificateService(session).list(code)


@router.delete("/{certificate_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def remove_certificate(code: str, certificate_id: uuid.UUID, session: SessionDep, admin: AdminDep) -> Response:
    """Remove a certificate from an agency (admin only)."""
    await CertificateService(session, admin.client_id).remove(code, certificate_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
