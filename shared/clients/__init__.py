"""Typed clients of the internal APIs that more than one service calls."""

from shared.clients.registry import (
    CREDENTIAL_EVENTS,
    DIRECTORY_EVENTS,
    HUB_ENTRY_EVENT,
    AgencyInfo,
    ClientStatus,
    DeliveryEndpoint,
    DirectoryCache,
    GrantedClient,
    InactiveRecipient,
    InvalidClientError,
    Redirect,
    RegisteredCertificate,
    RegistryClient,
    Resolution,
    ResolvedAgency,
    SignedInUser,
)

__all__ = [
    "CREDENTIAL_EVENTS",
    "DIRECTORY_EVENTS",
    "HUB_ENTRY_EVENT",
    "AgencyInfo",
    "ClientStatus",
    "DeliveryEndpoint",
    "DirectoryCache",
    "GrantedClient",
    "InactiveRecipient",
    "InvalidClientError",
    "Redirect",
    "RegisteredCertificate",
    "RegistryClient",
    "Resolution",
    "ResolvedAgency",
    "SignedInUser",
]
