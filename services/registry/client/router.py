"""API client endpoints, and the internal checks the gateway calls."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse

from services.registry.client.schemas import (
    CertificateCheck,
    ClientCertificateRead,
    ClientCertificateUpload,
    ClientCreate,
    ClientCreated,
    ClientRead,
    ClientStatus,
    CredentialsCheck,
    CredentialsValid,
    Rotated,
    Rotation,
)
from services.registry.dependencies import AdminDep, AgencyOrAdminDep, ClientServiceDep, InternalDep, UserServiceDep
from services.registry.user.service import USER_PREFIX
from shared.clients import InvalidClientError
from shared.errors import AgencyInactiveError, problem_response

router = APIRouter(tags=["api clients"])


@router.post("/v1/agencies/{code}/clients", status_code=status.HTTP_201_CREATED, response_model=ClientCreated)
async def create_client(code: str, body: ClientCreate, clients: ClientServiceDep, _admin: AdminDep) -> ClientCreated:
    """Issue an API client for an agency (admin only). The secret is shown in this response only."""
    return await clients.create(code, body)


@router.get("/v1/agencies/{code}/clients", response_model=list[ClientRead])
async def list_clients(code: str, clients: ClientServiceDep, principal: AgencyOrAdminDep) -> list[ClientRead]:
    """List an agency's API clients (admin, or the agency itself), without secrets."""
    return await clients.list_for(code, principal=principal)


@router.get("/v1/clients/{client_id}", response_model=ClientRead)
async def get_client(client_id: str, clients: ClientServiceDep, principal: AgencyOrAdminDep) -> ClientRead:
    """Return an API client (admin, or a client of the same agency)."""
    return await clients.get(client_id, principal=principal)


@router.post("/v1/clients/{client_id}/rotate", response_model=Rotated)
async def rotate_secret(client_id: str, body: Rotation, clients: ClientServiceDep, _admin: AdminDep) -> Rotated:
    """Issue a new secret; the old one stays valid for `overlap_seconds` (admin only)."""
    return await clients.rotate(client_id, overlap_seconds=body.overlap_seconds)


@router.post("/v1/clients/{client_id}/revoke", response_model=ClientRead)
async def revoke_client(client_id: str, clients: ClientServiceDep, _admin: AdminDep) -> ClientRead:
    """Revoke a client at once: no new token, its live tokens refused within seconds (admin only)."""
    return await clients.revoke(client_id)


@router.post(
    "/v1/clients/{client_id}/certificates", status_code=status.HTTP_201_CREATED, response_model=ClientCertificateRead
)
async def add_client_certificate(
    client_id: str, body: ClientCertificateUpload, clients: ClientServiceDep, _admin: AdminDep
) -> ClientCertificateRead:
    """Register the TLS client certificate that identifies this client's system at the token
    endpoint instead of its secret (mutual TLS, RFC 8705; admin only). A certificate identifies one
    client; its tokens are bound to it (`cnf.x5t#S256`)."""
    return await clients.add_certificate(client_id, body.certificate)


@router.get("/v1/clients/{client_id}/certificates", response_model=list[ClientCertificateRead])
async def list_client_certificates(
    client_id: str, clients: ClientServiceDep, principal: AgencyOrAdminDep
) -> list[ClientCertificateRead]:
    """A client's TLS client certificates (admin, or a client of the same agency)."""
    return await clients.certificates(client_id, principal=principal)


@router.delete(
    "/v1/clients/{client_id}/certificates/{thumbprint}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
)
async def remove_client_certificate(
    client_id: str, thumbprint: str, clients: ClientServiceDep, _admin: AdminDep
) -> Response:
    """Stop a certificate identifying this client: no new token with it (admin only). Tokens bound
    to it live until they expire; revoke the client to stop them at once."""
    await clients.remove_certificate(client_id, thumbprint)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/internal/v1/credentials/certificate", response_model=CredentialsValid, include_in_schema=False)
async def verify_certificate(
    body: CertificateCheck, request: Request, clients: ClientServiceDep, _gateway: InternalDep
) -> CredentialsValid | JSONResponse:
    """Check that a TLS client certificate identifies a client, for the gateway's token endpoint;
    the audit trail records the acceptance or the refusal in the check's transaction (as below)."""
    try:
        return await clients.verify_certificate(body.client_id, body.thumbprint)
    except (InvalidClientError, AgencyInactiveError) as exc:
        await clients.record_refusal(body.client_id, exc.code)
        return problem_response(exc, request)


@router.post("/internal/v1/credentials/verify", response_model=CredentialsValid, include_in_schema=False)
async def verify_credentials(
    body: CredentialsCheck, request: Request, clients: ClientServiceDep, _gateway: InternalDep
) -> CredentialsValid | JSONResponse:
    """Check client credentials for the gateway's token endpoint; the audit trail records the
    acceptance or the refusal in the check's transaction. A refusal is answered, not raised: raised,
    it would roll its entry back (and a second transaction would need a second connection while the
    first is held: parallel wrong secrets would empty the pool)."""
    try:
        return await clients.verify(body.client_id, body.client_secret)
    except (InvalidClientError, AgencyInactiveError) as exc:
        await clients.record_refusal(body.client_id, exc.code)
        return problem_response(exc, request)


@router.get("/internal/v1/clients/{client_id}/status", response_model=ClientStatus, include_in_schema=False)
async def client_status(
    client_id: str, clients: ClientServiceDep, users: UserServiceDep, _gateway: InternalDep
) -> ClientStatus:
    """Whether a client's tokens are still honoured (for the gateway's cache); ``user:<name>``: a
    console user's (active user of an active agency)."""
    if client_id.startswith(USER_PREFIX):
        return await users.status(client_id)
    return await clients.status(client_id)
