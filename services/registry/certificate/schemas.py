"""Certificate bodies."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CertificateKind = Literal["seal", "signer"]


class CertificateUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: CertificateKind = Field(description="seal: the agency's own certificate; signer: one of its signers'")
    certificate: str = Field(min_length=1, max_length=200_000, description="PEM text, or the DER bytes in base64")


class CertificateRead(BaseModel):
    id: uuid.UUID
    agency_code: str
    kind: CertificateKind
    subject: str
    issuer: str
    serial: str
    not_before: dt.datetime
    not_after: dt.datetime
    sha1: str
    sha256: str
    key_usage: list[str]
    pem: str
    created_at: dt.datetime
