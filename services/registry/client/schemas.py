"""API client request and response bodies."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.auth import Scope
from shared.types import StrictInt, VietnameseText


class ClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: VietnameseText = Field(min_length=1, max_length=200, examples=["Hệ thống quản lý văn bản Sở Nội vụ"])
    scopes: list[str] = Field(default_factory=lambda: list(Scope.AGENCY_DEFAULT))

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, scopes: list[str]) -> list[str]:
        """Refuse unknown scopes; return the scopes sorted, each once."""
        unknown = sorted(set(scopes) - set(Scope.ALL))
        if unknown:
            raise ValueError(f"unknown scopes {unknown}; allowed: {list(Scope.ALL)}")
        return sorted(set(scopes))


class ClientRead(BaseModel):
    client_id: str
    name: str
    agency_code: str | None
    scopes: list[str]
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class ClientCreated(ClientRead):
    client_secret: str = Field(description="Shown once; only its argon2 hash is stored")


class CredentialsCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(min_length=1, max_length=64)
    client_secret: str = Field(min_length=1, max_length=200)


class CredentialsValid(BaseModel):
    client_id: str
    agency_code: str | None
    scopes: list[str]


class Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap_seconds: StrictInt = Field(
        default=86400, ge=0, le=30 * 86400, description="How long the old secret stays valid (0: not at all)"
    )


class Rotated(BaseModel):
    client_id: str
    client_secret: str = Field(description="The new secret, shown once")
    previous_secrets_expire_at: dt.datetime


class ClientStatus(BaseModel):
    """What the gateway needs to accept a token of this client (internal)."""

    client_id: str
    active: bool
    reason: str | None
    agency_code: str | None
    agency_status: str | None


class ClientCertificateUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    certificate: str = Field(
        min_length=1, max_length=200_000, description="The system's TLS client certificate: PEM text, or DER in base64"
    )


class ClientCertificateRead(BaseModel):
    client_id: str
    thumbprint: str = Field(description="x5t#S256: the base64url SHA-256 of the certificate's DER (RFC 8705)")
    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    created_at: dt.datetime


class CertificateCheck(BaseModel):
    """The gateway's question: does this certificate identify this client (internal)."""

    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(min_length=1, max_length=64)
    thumbprint: str = Field(min_length=43, max_length=43, pattern=r"^[A-Za-z0-9_-]{43}$")
