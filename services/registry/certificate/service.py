"""Rules for agency certificates: parse X.509 (PEM or DER), keep what binds a signature to an agency."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from services.registry.agency.repository import AgencyRepository
from services.registry.agency.service import require_agency
from services.registry.certificate.repository import CertificateRepository
from services.registry.certificate.schemas import CertificateKind, CertificateRead, CertificateUpload
from services.registry.errors import (
    CertificateExistsError,
    CertificateInvalidError,
    CertificateNotFoundError,
)
from services.registry.events import AgencyRef, AgencyUpdated, CertificatesUpdated, record
from services.registry.models import Agency, AgencyCertificate, messaging
from shared.audit import record_audit

KEY_USAGES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


def parse_certificate(text: str) -> x509.Certificate:
    """Read a certificate from PEM text or base64 DER; raise CertificateInvalidError otherwise."""
    stripped = text.strip()
    try:
        if "-----BEGIN CERTIFICATE-----" in stripped:
            return x509.load_pem_x509_certificate(stripped.encode())
        return x509.load_der_x509_certificate(base64.b64decode("".join(stripped.split()), validate=True))
    except (ValueError, binascii.Error, TypeError) as exc:
        raise CertificateInvalidError(
            "This is not an X.509 certificate: send PEM text (-----BEGIN CERTIFICATE-----) or DER in base64"
        ) from exc


def key_usage(cert: x509.Certificate) -> list[str]:
    """Return the key usages a certificate allows (none when it has no key usage extension)."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return []
    result = []
    for name in KEY_USAGES:
        try:
            if getattr(usage, name):
                result.append(name)
        except ValueError:  # encipher_only / decipher_only style accessors
            continue
    return result


def _row(cert: x509.Certificate, *, agency_id: uuid.UUID, kind: CertificateKind) -> AgencyCertificate:
    """Return the row that keeps what binds a signature to the agency: names, validity, fingerprints."""
    return AgencyCertificate(
        agency_id=agency_id,
        kind=kind,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc.astimezone(dt.UTC),
        not_after=cert.not_valid_after_utc.astimezone(dt.UTC),
        sha1=cert.fingerprint(hashes.SHA1()).hex(),
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
        key_usage=key_usage(cert),
        pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
    )


def _read(cert: AgencyCertificate, agency_code: str) -> CertificateRead:
    """Return a certificate as the API shows it."""
    return CertificateRead(
        id=cert.id,
        agency_code=agency_code,
        kind=cert.kind,
        subject=cert.subject,
        issuer=cert.issuer,
        serial=cert.serial,
        not_before=cert.not_before,
        not_after=cert.not_after,
        sha1=cert.sha1,
        sha256=cert.sha256,
        key_usage=list(cert.key_usage),
        pem=cert.pem,
        created_at=cert.created_at,
    )


class CertificateService:
    def __init__(self, certificates: CertificateRepository, agencies: AgencyRepository, *, actor: str) -> None:
        self.certificates = certificates
        self.agencies = agencies
        self.actor = actor

    async def add(self, code: str, data: CertificateUpload) -> CertificateRead:
        """Register a certificate for an agency."""
        agency = await require_agency(self.agencies, code)
        record = _row(parse_certificate(data.certificate), agency_id=agency.id, kind=data.kind)
        if await self.certificates.by_fingerprint(agency.id, record.sha256) is not None:
            raise CertificateExistsError(f"Certificate {record.sha256} is registered for {agency.code} already")
        await self.certificates.add(record)
        await self._announce(
            agency,
            action="certificate_added",
            changes={"sha256": record.sha256, "kind": data.kind, "subject": record.subject},
            sha256=record.sha256,
        )
        return _read(record, agency.code)

    async def list(self, code: str) -> list[CertificateRead]:
        """Return an agency's certificates, oldest first."""
        agency = await require_agency(self.agencies, code)
        return [_read(c, agency.code) for c in await self.certificates.of_agency(agency.id)]

    async def remove(self, code: str, certificate_id: uuid.UUID) -> None:
        """Remove a certificate from an agency."""
        agency = await require_agency(self.agencies, code)
        cert = await self.certificates.get(certificate_id)
        if cert is None or cert.agency_id != agency.id:
            raise CertificateNotFoundError(f"{agency.code} has no certificate {certificate_id}")
        await self.certificates.remove(cert)
        await self._announce(agency, action="certificate_removed", changes={"sha256": cert.sha256}, sha256=cert.sha256)

    async def _announce(self, agency: Agency, *, action: str, changes: dict[str, str], sha256: str) -> None:
        """Keep a certificate change in the agency's history and record ``agency.updated.v1``."""
        await self.agencies.record_change(agency.id, action=action, actor=self.actor, changes=changes)
        event = CertificatesUpdated(
            agency=AgencyRef(code=agency.code), changed=["certificates"], certificate_sha256=sha256
        )
        await record(self.certificates, AgencyUpdated(event), ordering_key=f"agency:{agency.code}")
        action = "certificate.added" if action == "certificate_added" else "certificate.removed"
        details = {"sha256": sha256}
        await record_audit(self.certificates, messaging, action, actor=self.actor, target=agency.code, details=details)
