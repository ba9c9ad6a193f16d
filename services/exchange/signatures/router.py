"""Signature endpoints: a document's main file verified again (registry admin)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter

from services.exchange.dependencies import SignatureServiceDep
from services.exchange.signatures.schemas import SignatureCheckQueued
from shared.auth import Principal, Scope, require_scope

router = APIRouter(prefix="/v1/documents", tags=["signatures"])
AdminDep = Annotated[Principal, require_scope(Scope.REGISTRY_ADMIN)]


@router.post("/{document_id}/signature/check", response_model=SignatureCheckQueued, status_code=202)
async def check_signature_again(
    document_id: uuid.UUID, signatures: SignatureServiceDep, _admin: AdminDep
) -> SignatureCheckQueued:
    """Verify a document's main file again, whatever its type's policy (after a trust-store change, or
    when the signature service could not be reached): the verdict is pending until it is done."""
    return await signatures.check_again(document_id)
