"""Rules for agency certificates: parse X.509 (PEM or DER), keep what binds a signature to an agency."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.agency.repository import AgencyRepository
from services.registry.agency.service import require_agency
from services.registry.certificate.schemas import CertificateRead, CertificateUpload
from services.registry.errors import (
    CertificateExistsError,
    CertificateInvalidError,
    CertificateNotFoundError,
)
from services.registry.models import AgencyCertificate, AgencyChange, messaging
from shared.messaging import record_event

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


class CertificateService:
    def __init__(self, session: AsyncSession, actor: str = "system") -> None:
        self.session = session
        self.actor = actor
        self.agencies = AgencyRepository(session)

    @staticmethod
    def _read(cert: AgencyCertificate, agency_code: str) -> CertificateRead:
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

    async def add(self, code: str, data: CertificateUpload) -> CertificateRead:
        """Register a certificate for an agency."""
        agency = await require_agency(self.agencies, code)
        cert = parse_certificate(data.certificate)
        sha256 = cert.fingerprint(hashes.SHA256()).hex()
        query = select(AgencyCertificate).where(
            AgencyCertificate.agency_id == agency.id, AgencyCertificate.sha256 == sha256
        )
        if (await self.session.execute(query)).scalar_one_or_none() is not None:
            raise CertificateExistsError(f"Certificate {sha256} is registered for {agency.code} already")
        record = AgencyCertificate(
            agency_id=agency.id,
            kind=data.kind,
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            serial=format(cert.serial_number, "x"),
            not_before=cert.not_valid_before_utc.astimezone(dt.UTC),
            not_after=cert.not_valid_after_utc.astimezone(dt.UTC),
            sha1=cert.fingerprint(hashes.SHA1()).hex(),
            sha256=sha256,
            key_usage=key_usage(cert),
            pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        )
        self.session.add(record)
        self.session.add(
            AgencyChange(
                agency_id=agency.id,
                action="certificate_added",
                actor=self.actor,
                changes={"sha256": sha256, "kind": data.kind, "subject": record.subject},
            )
        )
        await self.session.flush()
        await record_event(
            self.session,
            messaging,
            "agency.updated.v1",
            {"agency": {"code": agency.code}, "changed": ["certificates"], "certificate_sha256": sha256},
            ordering_key=f"agency:{agency.code}",
        )
        return self._read(record, agency.code)

    async def list(self, code: str) -> list[CertificateRead]:
        agency = await require_agency(self.agencies, code)
        query = (
            select(AgencyCertificate)
            .where(AgencyCertificate.agency_id == agency.id)
            .order_by(AgencyCertificate.created_at)
        )
        rows: Sequence[AgencyCertificate] = (await self.session.execute(query)).scalars().all()
        return [self._read(c, agency.code) for c in rows]

    async def remove(self, code: str, certificate_id: uuid.UUID) -> None:
        agency = await require_agency(self.agencies, code)
        cert = await self.session.get(AgencyCertificate, certificate_id)
        if cert is None or cert.agency_id != agency.id:
            raise CertificateNotFoundError(f"{agency.code} has no certificate {certificate_id}")
        await self.session.delete(cert)
        self.session.add(
            AgencyChange(
                agency_id=agency.id, action="certificate_removed", actor=self.actor, changes={"sha256": cert.sha256}
            )
        )
        await self.session.flush()
        await record_event(
            self.session,
            messaging,
            "agency.updated.v1",
            {"agency": {"code": agency.code}, "changed": ["certificates"], "certificate_sha256": cert.sha256},
            ordering_key=f"agency:{agency.code}",
        )
