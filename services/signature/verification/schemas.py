"""The verification report."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

Verdict = Literal["valid", "invalid", "indeterminate"]


class SignerCertificate(BaseModel):
    subject: str
    common_name: str | None
    organization: str | None
    user_id: str | None = Field(
        description="the subject's UID: CCCD:/CMND: for a person, MST:/MNS: for an organisation"
    )
    issuer: str
    serial: str = Field(description="hexadecimal")
    not_before: dt.datetime
    not_after: dt.datetime
    sha256: str
    key_usage: list[str]


class SigningTime(BaseModel):
    claimed: dt.datetime | None = Field(description="the time the signer's software wrote (not proof)")
    timestamp: dt.datetime | None = Field(description="the time of an RFC 3161 timestamp on the signature")
    timestamp_valid: bool | None


class Integrity(BaseModel):
    intact: bool = Field(description="the signed bytes are unchanged (their digest matches)")
    signature_valid: bool = Field(description="the signature value matches the signer's key")
    coverage: str | None = Field(
        description="entire_file; entire_revision (a PDF with later revisions); referenced_parts (XML)"
    )
    revision: int | None = Field(description="PDF: the revision the signature signed (1 is the first)")
    later_revisions: int | None = Field(description="PDF: revisions added after this signature")
    later_changes: str | None = Field(
        description="PDF: none, validation_data_only, signatures_and_form_fields, annotations or other"
    )
    later_changes_allowed: bool | None = Field(description="PDF: whether the later revisions are allowed ones")


class Chain(BaseModel):
    trusted: bool
    anchor: str | None
    path: list[str] = Field(description="from the trust anchor down to the signer")
    problem: str | None = Field(description="the AdES sub-indication when the chain did not validate")


class Revocation(BaseModel):
    status: Literal["not_revoked", "revoked", "unknown"]
    revoked_at: dt.datetime | None
    mode: Literal["soft-fail", "hard-fail"]


class SignatureReport(BaseModel):
    index: int
    format: Literal["pades", "cms", "xmldsig"]
    name: str | None = Field(description="the PDF signature field, or the XML signature's placement")
    signer: SignerCertificate | None
    role: Literal["person", "seal"] | None = Field(description="a person's signature or the agency's seal")
    role_source: Literal["registry", "certificate"] | None
    listed_for_sender: bool | None = Field(description="the registry lists this certificate for `sender`")
    signing_time: SigningTime
    integrity: Integrity
    chain: Chain
    revocation: Revocation
    key_usage_ok: bool | None
    algorithms: list[str]
    verdict: Verdict
    reasons: list[str]


class Decree30Reading(BaseModel):
    """Decree 30/2020: the authorised person signs first, then the agency seals (the sender)."""

    person_signature: int | None = Field(description="index of the person's signature")
    seal_signature: int | None = Field(description="index of the agency's seal")
    person_signed_first: bool | None
    sealed_by_sender: bool | None = Field(description="None when no `sender` was given or it could not be told")
    complete: bool
    notes: list[str]


class SenderBinding(BaseModel):
    agency_code: str
    agency_known: bool | None = Field(description="None when the registry did not answer")
    listed: bool | None = Field(description="a signing certificate is one the registry lists for the agency")
    notes: list[str]


class FileSummary(BaseModel):
    sha256: str
    size: int
    format: Literal["pdf", "cms", "xml"]
    signed_file_sha256: str | None


class VerificationReport(BaseModel):
    verdict: Verdict
    reasons: list[str]
    file: FileSummary
    signatures: list[SignatureReport]
    decree30: Decree30Reading | None = Field(description="PDF only")
    sender: SenderBinding | None
    notes: list[str]
    trust_store_version: int
    cached: bool = Field(description="the findings came from the cache (same file, same trust-store version)")
    verified_at: dt.datetime
