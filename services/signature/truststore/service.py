"""Rules of the trust store: what may go in (CA certificates, CRLs), the version every change bumps,
the history and the event every change leaves."""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from services.signature.errors import TrustItemExistsError, TrustItemInvalidError, TrustItemNotFoundError
from services.signature.events import TrustItemKind, TrustStoreChanged, record
from services.signature.models import TrustCertificate, TrustChange, TrustCrl, messaging
from services.signature.truststore.repository import TrustStoreRepository
from services.signature.truststore.schemas import (
    CrlPage,
    CrlRead,
    CrlUpload,
    TrustCertificatePage,
    TrustCertificateRead,
    TrustCertificateUpload,
    TrustChangePage,
    TrustChangeRead,
    TrustStoreSummary,
)
from shared.audit import record_audit


def _der_from_text(text: str, what: str) -> bytes:
    """Return PEM bytes as they are, or the DER bytes of base64 text."""
    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        return stripped.encode()
    try:
        return base64.b64decode("".join(stripped.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TrustItemInvalidError(f"This is not {what}: send PEM text or DER in base64") from exc


def parse_ca_certificate(text: str) -> x509.Certificate:
    """Read a CA certificate (PEM or base64 DER); refuse what is not one."""
    raw = _der_from_text(text, "an X.509 certificate")
    try:
        cert = x509.load_pem_x509_certificate(raw) if raw.startswith(b"-----") else x509.load_der_x509_certificate(raw)
    except ValueError as exc:
        raise TrustItemInvalidError("This is not an X.509 certificate: send PEM text or DER in base64") from exc
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    except ValueError as exc:
        raise TrustItemInvalidError(f"The certificate's extensions cannot be read: {exc}") from exc
    if constraints is None or not constraints.ca:
        raise TrustItemInvalidError("Only CA certificates (basicConstraints CA:TRUE) go into the trust store")
    return cert


def parse_crl(text: str) -> x509.CertificateRevocationList:
    """Read a CRL (PEM or base64 DER); refuse what is not one."""
    raw = _der_from_text(text, "a CRL")
    try:
        return x509.load_pem_x509_crl(raw) if raw.startswith(b"-----") else x509.load_der_x509_crl(raw)
    except ValueError as exc:
        raise TrustItemInvalidError(
            "This is not a certificate revocation list: send PEM text or DER in base64"
        ) from exc


def _certificate_read(row: TrustCertificate) -> TrustCertificateRead:
    return TrustCertificateRead.model_validate(row, from_attributes=True)


def _crl_read(row: TrustCrl) -> CrlRead:
    return CrlRead.model_validate(row, from_attributes=True)


class TrustStoreService:
    """Adds, lists and removes trust anchors, intermediates and CRLs, acting as ``actor``."""

    def __init__(
        self, repository: TrustStoreRepository, *, actor: str, revocation_mode: str, fetch_revocation: bool
    ) -> None:
        self.repository = repository
        self.actor = actor
        self.revocation_mode = revocation_mode
        self.fetch_revocation = fetch_revocation

    async def summary(self) -> TrustStoreSummary:
        """Return the version, what the store holds and the revocation policy."""
        version = await self.repository.version()
        counts = await self.repository.counts()
        return TrustStoreSummary(
            version=version.version,
            changed_at=version.changed_at,
            roots=counts.get("root", 0),
            intermediates=counts.get("intermediate", 0),
            crls=counts.get("crl", 0),
            revocation_mode=self.revocation_mode,
            fetch_revocation=self.fetch_revocation,
        )

    async def add_certificate(self, data: TrustCertificateUpload) -> TrustCertificateRead:
        """Put a root or intermediate CA certificate into the store."""
        cert = parse_ca_certificate(data.certificate)
        der = cert.public_bytes(serialization.Encoding.DER)
        sha256 = hashlib.sha256(der).hexdigest()
        if await self.repository.certificate_by_fingerprint(sha256) is not None:
            raise TrustItemExistsError("This certificate is in the trust store already", sha256=sha256)
        row = TrustCertificate(
            kind=data.kind,
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            serial=format(cert.serial_number, "x"),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            sha256=sha256,
            der=der,
            created_by=self.actor,
        )
        await self.repository.add(row)
        await self._changed("added", data.kind, row.id, row.subject, sha256)
        return _certificate_read(row)

    async def list_certificates(self, *, kind: str | None, cursor: str | None, limit: int) -> TrustCertificatePage:
        page = await self.repository.certificates_page(kind=kind, cursor=cursor, limit=limit)
        return TrustCertificatePage(items=[_certificate_read(r) for r in page.rows], next_cursor=page.next_cursor)

    async def remove_certificate(self, certificate_id: uuid.UUID) -> None:
        """Take a certificate out of the store."""
        row = await self.repository.get(certificate_id)
        if row is None:
            raise TrustItemNotFoundError("No such certificate in the trust store")
        await self.repository.remove(row)
        await self._changed("removed", row.kind, row.id, row.subject, row.sha256)  # type: ignore[arg-type]

    async def add_crl(self, data: CrlUpload) -> CrlRead:
        """Put a CRL into the store (its issuer's signature is checked when it is used)."""
        crl = parse_crl(data.crl)
        der = crl.public_bytes(serialization.Encoding.DER)
        sha256 = hashlib.sha256(der).hexdigest()
        if await self.repository.crl_by_fingerprint(sha256) is not None:
            raise TrustItemExistsError("This CRL is in the trust store already", sha256=sha256)
        row = TrustCrl(
            issuer=crl.issuer.rfc4514_string(),
            this_update=crl.last_update_utc,
            next_update=crl.next_update_utc,
            revoked_count=len(crl),
            sha256=sha256,
            der=der,
            created_by=self.actor,
        )
        await self.repository.add_crl(row)
        await self._changed("added", "crl", row.id, row.issuer, sha256)
        return _crl_read(row)

    async def list_crls(self, *, cursor: str | None, limit: int) -> CrlPage:
        page = await self.repository.crls_page(cursor=cursor, limit=limit)
        return CrlPage(items=[_crl_read(r) for r in page.rows], next_cursor=page.next_cursor)

    async def remove_crl(self, crl_id: uuid.UUID) -> None:
        """Take a CRL out of the store."""
        row = await self.repository.get_crl(crl_id)
        if row is None:
            raise TrustItemNotFoundError("No such CRL in the trust store")
        await self.repository.remove(row)
        await self._changed("removed", "crl", row.id, row.issuer, row.sha256)

    async def changes(self, *, cursor: str | None, limit: int) -> TrustChangePage:
        """Return the history, newest first."""
        page = await self.repository.changes_page(cursor=cursor, limit=limit)
        return TrustChangePage(
            items=[TrustChangeRead.model_validate(r, from_attributes=True) for r in page.rows],
            next_cursor=page.next_cursor,
        )

    async def _changed(self, action: str, item: TrustItemKind, item_id: uuid.UUID, subject: str, sha256: str) -> None:
        """Bump the version, keep the change in the history, tell the other processes."""
        version = await self.repository.next_version()
        await self.repository.add_change(
            TrustChange(
                version=version,
                action=action,
                item=item,
                item_id=item_id,
                subject=subject,
                sha256=sha256,
                actor=self.actor,
            )
        )
        await record(
            self.repository,
            TrustStoreChanged(
                version=version,
                action=action,
                item=item,
                item_id=item_id,
                subject=subject,
                sha256=sha256,
                actor=self.actor,
            ),
        )
        audited = f"truststore.{'crl' if item == 'crl' else 'certificate'}_{action}"
        details = {"kind": item, "sha256": sha256, "version": version}
        await record_audit(self.repository, messaging, audited, actor=self.actor, target=item_id, details=details)
