"""The registry's runtime, the authorization its routes need, and the typed dependencies they get
their services through.

Each ``*_service`` function builds a service on a session; routes declare the matching
``*ServiceDep``, and code outside a request (start-up, the CLI, the benchmark) calls the function
itself. The actor a service records in the agency history is the calling client's id.
"""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import Depends, Request

from services.registry.agency.repository import AgencyRepository
from services.registry.agency.service import AgencyService
from services.registry.audit.repository import AuditRepository
from services.registry.audit.service import AuditService
from services.registry.certificate.repository import CertificateRepository
from services.registry.certificate.service import CertificateService
from services.registry.client.repository import ClientRepository
from services.registry.client.service import ClientService
from services.registry.config import RegistrySection
from services.registry.endpoint.repository import EndpointRepository
from services.registry.endpoint.service import EndpointService
from services.registry.group.repository import GroupRepository
from services.registry.group.service import GroupService
from services.registry.models import messaging
from services.registry.transfer.repository import TransferRepository
from services.registry.transfer.service import TransferService
from services.registry.user.repository import UserRepository
from services.registry.user.service import UserService
from services.settings import Settings
from shared.audit import AnchorKey
from shared.auth import Principal, PrincipalDep, Scope, require_scope
from shared.db import SessionDep
from shared.errors import ForbiddenError
from shared.messaging import Broker
from shared.roles import AGENCY_OR_ADMIN, DIRECTORY_READERS, require_any_scope
from shared.runtime import runtime_of
from shared.service import ServiceRuntime

# -- the runtime -----------------------------------------------------------------------------------


class RegistryRuntime(ServiceRuntime):
    """The registry's runtime: the shared parts, plus its own settings section."""

    def __init__(
        self,
        settings: Settings,
        *,
        broker: Broker | None = None,
        transports: dict[str, httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        super().__init__("registry", settings, messaging, broker=broker, transports=transports)
        self.config: RegistrySection = settings.registry
        self.anchor_key: AnchorKey | None = None  # loaded at start-up (the gateway's signing key)


async def registry_runtime(request: Request) -> RegistryRuntime:
    """Return the runtime of the registry serving the request."""
    return runtime_of(request, RegistryRuntime)


async def _config(request: Request) -> RegistrySection:
    """Return the registry's settings section."""
    return runtime_of(request, RegistryRuntime).config


RegistryConfigDep = Annotated[RegistrySection, Depends(_config)]
RegistryRuntimeDep = Annotated[RegistryRuntime, Depends(registry_runtime)]

# -- who may call ----------------------------------------------------------------------------------

AdminDep = Annotated[Principal, require_scope(Scope.REGISTRY_ADMIN)]
InternalDep = Annotated[Principal, require_scope(Scope.INTERNAL)]
DirectoryReaderDep = Annotated[Principal, require_any_scope(*DIRECTORY_READERS)]
"""Reads the directory: every role but the statistics reader (docs/security.md, roles)."""
AgencyOrAdminDep = Annotated[Principal, require_any_scope(*AGENCY_OR_ADMIN)]
"""An agency system (then only its own agency's, see ``require_admin_or_own``) or the registry admin."""
AuditorDep = Annotated[Principal, require_scope(Scope.AUDIT)]


def require_admin_or_own(principal: Principal, agency_code: str) -> None:
    """Allow the registry admin, or a client of the agency itself."""
    if not principal.is_admin and principal.agency_code != agency_code:
        raise ForbiddenError("Only the registry admin or the agency itself may do this")


async def _actor(principal: PrincipalDep) -> str:
    """Return who acts: the calling client's id, kept in the agency history."""
    return principal.client_id


ActorDep = Annotated[str, Depends(_actor)]

# -- the services ----------------------------------------------------------------------------------


def agency_service(session: SessionDep, actor: ActorDep) -> AgencyService:
    """Build the agency service on a session, acting as ``actor``."""
    return AgencyService(AgencyRepository(session), actor=actor)


async def group_service(session: SessionDep, config: RegistryConfigDep, actor: ActorDep) -> GroupService:
    """Build the group and recipient-resolution service on a session, acting as ``actor``."""
    return GroupService(
        GroupRepository(session), AgencyRepository(session), max_successor_hops=config.max_successor_hops, actor=actor
    )


async def endpoint_service(session: SessionDep, actor: ActorDep, runtime: RegistryRuntimeDep) -> EndpointService:
    """Build the delivery endpoint service on a session, acting as ``actor``, with the deployment's
    webhook policy; AMQP is available when the broker is RabbitMQ, not the in-process bus."""
    return EndpointService(
        EndpointRepository(session),
        AgencyRepository(session),
        actor=actor,
        webhooks=runtime.settings.webhooks,
        amqp_available=not runtime.settings.broker_url.startswith("memory://"),
    )


async def certificate_service(session: SessionDep, actor: ActorDep) -> CertificateService:
    """Build the certificate service on a session, acting as ``actor``."""
    return CertificateService(CertificateRepository(session), AgencyRepository(session), actor=actor)


def client_service(session: SessionDep, actor: str | None = None) -> ClientService:
    """Build the API client service on a session (acting as ``actor``, for the audit trail)."""
    return ClientService(ClientRepository(session), AgencyRepository(session), actor=actor)


def user_service(session: SessionDep, actor: str | None = None) -> UserService:
    """Build the console users' service on a session (acting as ``actor``, for the audit trail)."""
    return UserService(UserRepository(session), AgencyRepository(session), actor=actor)


def transfer_service(session: SessionDep, actor: ActorDep) -> TransferService:
    """Build the bulk import and export on a session, writing as ``actor``."""
    return TransferService(TransferRepository(session), agency_service(session, actor))


def audit_service(session: SessionDep, runtime: RegistryRuntime) -> AuditService:
    """Build the audit chain's service on a session, signing anchors with the runtime's key."""
    return AuditService(
        AuditRepository(session), key=runtime.anchor_key, anchor_every=runtime.config.audit_anchor_entries
    )


# The dependencies are coroutines: FastAPI runs a plain function in a worker thread, a hop per request.
async def _agency_service(session: SessionDep, actor: ActorDep) -> AgencyService:
    return agency_service(session, actor)


async def _client_service(session: SessionDep, actor: ActorDep) -> ClientService:
    return client_service(session, actor)


async def _transfer_service(session: SessionDep, actor: ActorDep) -> TransferService:
    return transfer_service(session, actor)


async def _user_service(session: SessionDep, actor: ActorDep) -> UserService:
    return user_service(session, actor)


async def _audit_service(session: SessionDep, runtime: RegistryRuntimeDep) -> AuditService:
    return audit_service(session, runtime)


AgencyServiceDep = Annotated[AgencyService, Depends(_agency_service)]
GroupServiceDep = Annotated[GroupService, Depends(group_service)]
EndpointServiceDep = Annotated[EndpointService, Depends(endpoint_service)]
CertificateServiceDep = Annotated[CertificateService, Depends(certificate_service)]
ClientServiceDep = Annotated[ClientService, Depends(_client_service)]
TransferServiceDep = Annotated[TransferService, Depends(_transfer_service)]
AuditServiceDep = Annotated[AuditService, Depends(_audit_service)]
UserServiceDep = Annotated[UserService, Depends(_user_service)]
