"""Rules of a verification: the cache by file hash and trust-store version, the worker's findings
turned into a report with one verdict, the Decree 30 reading and the sender's certificates."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from services.signature.errors import REFUSALS
from services.signature.verification.engine import Finding, Job, Outcome, TrustMaterial
from services.signature.verification.pool import VerifierPool
from services.signature.verification.repository import VerificationRepository
from services.signature.verification.schemas import (
    Chain,
    Decree30Reading,
    FileSummary,
    Integrity,
    Revocation,
    SenderBinding,
    SignatureReport,
    SignerCertificate,
    SigningTime,
    VerificationReport,
)
from shared.cache import TTLCache
from shared.clients import AgencyInfo, RegisteredCertificate, RegistryClient
from shared.errors import LienThongError
from shared.text import fold

ResultKey = tuple[str, str | None, int]


@dataclass(frozen=True)
class Upload:
    """A file to verify (and the signed file of a detached signature), read and hashed."""

    data: bytes
    signed_data: bytes | None
    sha256: str = field(init=False)
    signed_sha256: str | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", hashlib.sha256(self.data).hexdigest())
        signed = hashlib.sha256(self.signed_data).hexdigest() if self.signed_data is not None else None
        object.__setattr__(self, "signed_sha256", signed)


@dataclass(frozen=True)
class RevocationPolicy:
    mode: str
    fetch: bool
    fetch_timeout_seconds: float


@dataclass
class _Sender:
    code: str
    agency: AgencyInfo | None
    certificates: list[RegisteredCertificate] | None
    unavailable: str | None


class VerificationService:
    """Verifies uploads in the process pool, with results cached per trust-store version."""

    def __init__(
        self,
        repository: VerificationRepository,
        *,
        pool: VerifierPool,
        results: TTLCache[ResultKey, Outcome],
        registry: RegistryClient,
        policy: RevocationPolicy,
    ) -> None:
        self.repository = repository
        self.pool = pool
        self.results = results
        self.registry = registry
        self.policy = policy

    async def verify(self, upload: Upload, *, sender: str | None) -> VerificationReport:
        """Verify every signature of a file and report on each, with one verdict."""
        version = await self.repository.current_version()
        key: ResultKey = (upload.sha256, upload.signed_sha256, version)
        outcome = self.results.get(key)
        cached = outcome is not None
        if outcome is None:
            outcome = await self._run(upload, version)
            self.results.set(key, outcome)
        if outcome.refused is not None:
            code, detail = outcome.refused
            raise REFUSALS[code](detail)
        who = await self._sender(sender) if sender else None
        return self._report(upload, outcome, version, who, cached=cached)

    async def _run(self, upload: Upload, version: int) -> Outcome:
        roots, intermediates, crls = await self.repository.material()
        trust = TrustMaterial(
            version=version,
            roots=tuple(roots),
            intermediates=tuple(intermediates),
            crls=tuple(crls),
            revocation_mode=self.policy.mode,  # type: ignore[arg-type]
            fetch_revocation=self.policy.fetch,
            fetch_timeout_seconds=self.policy.fetch_timeout_seconds,
        )
        return await self.pool.verify(Job(upload.data, upload.signed_data, trust))

    async def _sender(self, code: str) -> _Sender:
        """What the registry says of the sender: the agency and its certificates (cached)."""
        try:
            agency = await self.registry.agency(code)
            certificates = await self.registry.agency_certificates(code) if agency is not None else None
        except LienThongError as exc:
            return _Sender(code, None, None, exc.detail)
        return _Sender(code, agency, certificates, None)

    # --- the report ---------------------------------------------------------------------------

    def _report(
        self, upload: Upload, outcome: Outcome, version: int, sender: _Sender | None, *, cached: bool
    ) -> VerificationReport:
        listed = {c.sha256: c.kind for c in (sender.certificates or [])} if sender else {}
        signatures = [self._signature(f, listed, sender) for f in outcome.findings]
        verdicts = {s.verdict for s in signatures}
        verdict = "invalid" if "invalid" in verdicts else "indeterminate" if "indeterminate" in verdicts else "valid"
        reasons = [f"Signature {s.index + 1} ({_who(s)}): {reason}" for s in signatures for reason in s.reasons]
        if verdict == "valid" and not reasons:
            reasons = [f"{len(signatures)} signature(s), all valid, trusted and not revoked"]
        assert outcome.format is not None
        return VerificationReport(
            verdict=verdict,
            reasons=reasons,
            file=FileSummary(
                sha256=upload.sha256,
                size=len(upload.data),
                format=outcome.format,
                signed_file_sha256=upload.signed_sha256,
            ),
            signatures=signatures,
            decree30=_decree30(signatures, sender) if outcome.format == "pdf" else None,
            sender=_binding(signatures, sender) if sender else None,
            notes=list(outcome.notes),
            trust_store_version=version,
            cached=cached,
            verified_at=dt.datetime.now(dt.UTC),
        )

    def _signature(self, finding: Finding, listed: Mapping[str, str], sender: _Sender | None) -> SignatureReport:
        signer = finding.signer
        role: str | None = None
        source: str | None = None
        if signer is not None:
            kind = listed.get(signer.sha256)
            if kind is not None:
                role, source = ("seal" if kind == "seal" else "person"), "registry"
            else:
                role, source = ("seal" if signer.kind_from_fields == "organization" else "person"), "certificate"
        return SignatureReport(
            index=finding.index,
            format=finding.format,
            name=finding.name,
            signer=SignerCertificate(
                subject=signer.subject,
                common_name=signer.common_name,
                organization=signer.organization,
                user_id=signer.user_id,
                issuer=signer.issuer,
                serial=signer.serial,
                not_before=signer.not_before,
                not_after=signer.not_after,
                sha256=signer.sha256,
                key_usage=signer.key_usage,
            )
            if signer is not None
            else None,
            role=role,
            role_source=source,
            listed_for_sender=(signer is not None and signer.sha256 in listed)
            if sender is not None and sender.certificates is not None
            else None,
            signing_time=SigningTime(
                claimed=finding.claimed_time, timestamp=finding.timestamp_time, timestamp_valid=finding.timestamp_ok
            ),
            integrity=Integrity(
                intact=finding.intact,
                signature_valid=finding.signature_ok,
                coverage=finding.coverage,
                revision=finding.revision,
                later_revisions=finding.later_revisions,
                later_changes=finding.later_changes,
                later_changes_allowed=finding.later_changes_allowed,
            ),
            chain=Chain(
                trusted=finding.trusted, anchor=finding.anchor, path=finding.path, problem=finding.trust_problem
            ),
            revocation=Revocation(
                status=finding.revocation,
                revoked_at=finding.revoked_at,
                mode=self.policy.mode,
            ),
            key_usage_ok=finding.key_usage_ok,
            algorithms=finding.algorithms,
            verdict=finding.verdict,
            reasons=finding.reasons,
        )


def _who(report: SignatureReport) -> str:
    if report.signer is None:
        return "unknown signer"
    return report.signer.common_name or report.signer.organization or report.signer.subject


def _same_name(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return fold(a).casefold().strip() == fold(b).casefold().strip()


def _decree30(signatures: list[SignatureReport], sender: _Sender | None) -> Decree30Reading:
    """Which signature is the person's and which the seal, in which order, and whose seal."""
    persons = [s for s in signatures if s.role == "person"]
    seals = [s for s in signatures if s.role == "seal"]
    person = persons[0] if persons else None
    seal = seals[-1] if seals else None
    notes: list[str] = []
    person_first: bool | None = None
    if person is None:
        notes.append("No signature of a person (the authorised signer) was found")
    if seal is None:
        notes.append("No signature of the agency (its seal) was found")
    if person is not None and seal is not None:
        person_first = (person.integrity.revision or 0) < (seal.integrity.revision or 0)
        if not person_first:
            notes.append("The agency's seal was applied before the person signed; Decree 30 wants it after")
    sealed_by_sender: bool | None = None
    if seal is not None and sender is not None:
        if seal.listed_for_sender:
            sealed_by_sender = True
        elif sender.agency is not None and seal.signer is not None:
            sealed_by_sender = _same_name(seal.signer.organization, sender.agency.name) or _same_name(
                seal.signer.common_name, sender.agency.name
            )
            if sealed_by_sender:
                notes.append("The seal's certificate names the sender but the registry does not list it")
            else:
                notes.append(f"The seal is not the sender's ({sender.code}): neither listed nor named after it")
        elif sender.unavailable is not None:
            notes.append(f"Whether the seal is the sender's could not be told: {sender.unavailable}")
        else:
            sealed_by_sender = False
            notes.append(f"The sender {sender.code} is not in the registry")
    complete = person is not None and seal is not None and bool(person_first) and sealed_by_sender is not False
    return Decree30Reading(
        person_signature=person.index if person else None,
        seal_signature=seal.index if seal else None,
        person_signed_first=person_first,
        sealed_by_sender=sealed_by_sender,
        complete=complete,
        notes=notes,
    )


def _binding(signatures: list[SignatureReport], sender: _Sender) -> SenderBinding:
    """Whether the registry lists a signing certificate for the sending agency."""
    if sender.unavailable is not None:
        return SenderBinding(
            agency_code=sender.code,
            agency_known=None,
            listed=None,
            notes=[f"The registry could not be asked: {sender.unavailable}"],
        )
    if sender.agency is None:
        return SenderBinding(
            agency_code=sender.code, agency_known=False, listed=False, notes=["The registry does not know this agency"]
        )
    listed = any(s.listed_for_sender for s in signatures)
    notes = [] if listed else ["No signing certificate is one the registry lists for this agency"]
    return SenderBinding(agency_code=sender.code, agency_known=True, listed=listed, notes=notes)
