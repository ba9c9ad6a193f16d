"""API client request and response bodies."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.auth import Scope
from shared.roles import Role, scopes_of
from shared.types import StrictInt, VietnameseText


class ClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: VietnameseText = Field(min_length=1, max_length=200, examples=["Hệ thống quản lý văn bản Sở Nội vụ"])
    role: Role | None = Field(
        default=None, description="the client's role, which gives its scopes (docs/security.md); default: agency"
    )
    scopes: list[str] | None = Field(
        default=None, description="scopes instead of a role (to narrow one, e.g. receive only); not with `role`"
    )

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, scopes: list[str] | None) -> list[str] | None:
        """Refuse unknown scopes; return the scopes sorted, each once."""
        if scopes is None:
            return None
        unknown = sorted(set(scopes) - set(Scope.ALL))
        if unknown:
            raise ValueError(f"unknown scopes {unknown}; allowed: {list(Scope.ALL)}")
        return sorted(set(scopes))

    @model_validator(mode="after")
    def _role_or_scopes(self) -> ClientCreate:
        """A role gives the scopes; neither role nor scopes: the agency system's."""
        if self.role is not None and self.scopes is not None:
            raise ValueError("give a `role` or `scopes`, not both")
        if self.scopes is None:
            self.scopes = scopes_of(self.role or Role.AGENCY)
        return self

    @property
    def granted(self) -> list[str]:
        """The scopes the client gets."""
        return list(self.scopes or ())


class ClientRead(BaseModel):
    client_id: str
    name: str
    agency_code: str | None
    role: Role | None = Field(description="the role its scopes belong to; null: they mix roles (the bootstrap admin)")
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
    scopes: list[str] | None = Field(
        default=None, description="a console user's: the scopes its role holds now (a token holding more is refused)"
    )


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
