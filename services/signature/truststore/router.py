"""Trust-store endpoints (the province IT office's: admin scope)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status

from services.signature.dependencies import AdminDep, TrustStoreServiceDep
from services.signature.truststore.schemas import (
    CrlPage,
    CrlRead,
    CrlUpload,
    TrustCertificatePage,
    TrustCertificateRead,
    TrustCertificateUpload,
    TrustChangePage,
    TrustStoreSummary,
)

router = APIRouter(prefix="/v1/signatures/trust-store", tags=["trust store"])
Limit = Annotated[int, Query(ge=1, le=500)]


@router.get("", response_model=TrustStoreSummary)
async def trust_store_summary(trust_store: TrustStoreServiceDep, _admin: AdminDep) -> TrustStoreSummary:
    """Return the trust store's version, what it holds and the revocation policy in force."""
    return await trust_store.summary()


@router.post("/certificates", status_code=status.HTTP_201_CREATED, response_model=TrustCertificateRead)
async def add_trust_certificate(
    body: TrustCertificateUpload, trust_store: TrustStoreServiceDep, _admin: AdminDep
) -> TrustCertificateRead:
    """Add a root (trust anchor) or an intermediate CA certificate, PEM or base64 DER."""
    return await trust_store.add_certificate(body)


@router.get("/certificates", response_model=TrustCertificatePage)
async def list_trust_certificates(
    trust_store: TrustStoreServiceDep,
    _admin: AdminDep,
    kind: Literal["root", "intermediate"] | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> TrustCertificatePage:
    """List the CA certificates, oldest first (pass `next_cursor` back as `cursor`)."""
    return await trust_store.list_certificates(kind=kind, cursor=cursor, limit=limit)


@router.delete("/certificates/{certificate_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def remove_trust_certificate(
    certificate_id: uuid.UUID, trust_store: TrustStoreServiceDep, _admin: AdminDep
) -> Response:
    """Remove a CA certificate: signatures chaining only to it are no longer trusted."""
    await trust_store.remove_certificate(certificate_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/crls", status_code=status.HTTP_201_CREATED, response_model=CrlRead)
async def add_crl(body: CrlUpload, trust_store: TrustStoreServiceDep, _admin: AdminDep) -> CrlRead:
    """Add a certificate revocation list, PEM or base64 DER."""
    return await trust_store.add_crl(body)


@router.get("/crls", response_model=CrlPage)
async def list_crls(
    trust_store: TrustStoreServiceDep, _admin: AdminDep, cursor: str | None = None, limit: Limit = 100
) -> CrlPage:
    """List the CRLs, oldest first."""
    return await trust_store.list_crls(cursor=cursor, limit=limit)


@router.delete("/crls/{crl_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def remove_crl(crl_id: uuid.UUID, trust_store: TrustStoreServiceDep, _admin: AdminDep) -> Response:
    """Remove a CRL."""
    await trust_store.remove_crl(crl_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/changes", response_model=TrustChangePage)
async def trust_store_changes(
    trust_store: TrustStoreServiceDep, _admin: AdminDep, cursor: str | None = None, limit: Limit = 100
) -> TrustChangePage:
    """Every change of the trust store, newest first: what, by whom, when, at which version."""
    return await trust_store.changes(cursor=cursor, limit=limit)
