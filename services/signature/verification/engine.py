"""The verification itself, run in a worker process: plain bytes in, plain findings out.

Nothing here touches the database, the network (unless revocation fetching is on) or the event
loop of the service: :func:`run_job` is what the process pool calls. PDF signatures are checked
with pyHanko's PAdES validation (integrity, coverage, the modification analysis of later
revisions), detached CMS with pyHanko's generic CMS validation, XML-DSig with signxml; the
certificate chain and revocation of all three with pyhanko-certvalidator against the trust store.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import io
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from asn1crypto import cms as asn1_cms
from asn1crypto import pem as asn1_pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.x509.oid import NameOID
from lxml import etree
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESIndeterminate, AdESSubIndic
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.generic_cms import async_validate_detached_cms, validate_cert_usage
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import SignatureCoverageLevel, StandardCMSSignatureStatus
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.exceptions import SignXMLException
from signxml.verifier import SignatureConfiguration

from shared.xmldsig import SIGNATURES, PlacedVerifier

Format = Literal["pdf", "cms", "xml"]
Verdict = Literal["valid", "invalid", "indeterminate"]

# A document signature's certificate may carry either usage (Vietnamese CAs set both).
KEY_USAGE = KeyUsageConstraints(key_usage={"digital_signature", "non_repudiation"}, match_all_key_usages=False)
EDXML_NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
WEAK_XML_ALGORITHMS = ("sha1",)

for _name in ("pyhanko", "pyhanko_certvalidator", "signxml", "aiohttp"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)  # findings go to the report, not the log


class _ChainProblems(logging.Handler):
    """Keeps what pyHanko says when a certificate fails to validate: it maps every failure to an AdES
    sub-indication and logs the certvalidator's own words, which say more (which certificate, why)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Validation error ["):
            self.messages.append(message.split("]: ", 1)[-1])


_chain_problems = _ChainProblems()
_cms_log = logging.getLogger("pyhanko.sign.validation.generic_cms")
_cms_log.setLevel(logging.WARNING)
_cms_log.propagate = False
_cms_log.addHandler(_chain_problems)


def _take_chain_problems() -> list[str]:
    """Return (and forget) what the certvalidator said since the last call."""
    messages = list(_chain_problems.messages)
    _chain_problems.messages.clear()
    return messages


class InputRefused(Exception):
    """The input cannot be verified at all (not a signature format, unreadable, encrypted …)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class TrustMaterial:
    """The trust store at one version, as DER bytes, and the revocation policy."""

    version: int
    roots: tuple[bytes, ...]
    intermediates: tuple[bytes, ...]
    crls: tuple[bytes, ...]
    revocation_mode: Literal["soft-fail", "hard-fail"] = "soft-fail"
    fetch_revocation: bool = False
    fetch_timeout_seconds: float = 5.0


@dataclass(frozen=True)
class Job:
    """What one verification gets: the file, the signed file of a detached CMS, the trust store."""

    data: bytes
    signed_data: bytes | None
    trust: TrustMaterial


@dataclass
class CertificateInfo:
    subject: str
    common_name: str | None
    organization: str | None
    user_id: str | None
    issuer: str
    serial: str
    not_before: dt.datetime
    not_after: dt.datetime
    sha256: str
    key_usage: list[str]
    kind_from_fields: Literal["person", "organization"]


@dataclass
class Finding:
    """What was found about one signature (the router turns it into the report)."""

    index: int
    format: Literal["pades", "cms", "xmldsig"]
    name: str | None
    signer: CertificateInfo | None
    claimed_time: dt.datetime | None = None
    timestamp_time: dt.datetime | None = None
    timestamp_ok: bool | None = None
    intact: bool = False
    signature_ok: bool = False
    coverage: str | None = None
    revision: int | None = None
    later_revisions: int | None = None
    later_changes: str | None = None
    later_changes_allowed: bool | None = None
    trusted: bool = False
    anchor: str | None = None
    path: list[str] = field(default_factory=list)
    trust_problem: str | None = None
    revocation: Literal["not_revoked", "revoked", "unknown"] = "unknown"
    revoked_at: dt.datetime | None = None
    key_usage_ok: bool | None = None
    algorithms: list[str] = field(default_factory=list)
    chain_messages: list[str] = field(default_factory=list, repr=False)
    verdict: Verdict = "indeterminate"
    reasons: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    """The findings of one file, or why it was refused."""

    format: Format | None
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    refused: tuple[str, str] | None = None


# --- entry point -----------------------------------------------------------------------------


def run_job(job: Job) -> Outcome:
    """Verify a file (called in a worker process)."""
    try:
        return asyncio.run(_verify(job))
    except InputRefused as exc:
        return Outcome(format=None, refused=(exc.code, exc.detail))
    except RecursionError:
        return Outcome(format=None, refused=("document_unreadable", "The file is nested too deeply to be read"))
    except Exception as exc:  # a parser's surprise on hostile input is the file's fault, never a 500
        return Outcome(format=None, refused=("document_unreadable", f"The file cannot be verified: {exc}"))


def detect_format(data: bytes, signed_data: bytes | None) -> Format:
    """Tell a PDF, an XML document and a CMS signature apart by their first bytes."""
    head = data[:1024]
    if signed_data is not None:
        return "cms"
    if b"%PDF-" in head:
        return "pdf"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"-----BEGIN"):
        return "cms"
    if stripped.startswith(b"<"):
        return "xml"
    if stripped[:1] == b"\x30":  # a DER SEQUENCE: a CMS ContentInfo
        return "cms"
    raise InputRefused(
        "file_unreadable", "The file is neither a PDF, a CMS/PKCS#7 signature (.p7s) nor an XML document"
    )


_backend: AIOHttpFetcherBackend | None = None  # one job at a time per worker: the job's fetcher


async def _verify(job: Job) -> Outcome:
    global _backend
    kind = detect_format(job.data, job.signed_data)
    if job.trust.fetch_revocation:
        _backend = AIOHttpFetcherBackend(per_request_timeout=job.trust.fetch_timeout_seconds)
    try:
        if kind == "pdf":
            return await _verify_pdf(job)
        if kind == "cms":
            return await _verify_cms(job)
        return await _verify_xml(job)
    finally:
        if _backend is not None:
            await _backend.close()  # type: ignore[no-untyped-call]
            _backend = None


# --- the trust store ---------------------------------------------------------------------------

_parsed: dict[int, tuple[list[asn1_x509.Certificate], list[asn1_x509.Certificate]]] = {}


def _certificates(trust: TrustMaterial) -> tuple[list[asn1_x509.Certificate], list[asn1_x509.Certificate]]:
    """The roots and intermediates, parsed once per trust-store version in this worker."""
    cached = _parsed.get(trust.version)
    if cached is None:
        cached = (
            [asn1_x509.Certificate.load(der) for der in trust.roots],
            [asn1_x509.Certificate.load(der) for der in trust.intermediates],
        )
        _parsed.clear()
        _parsed[trust.version] = cached
    return cached


def _context(trust: TrustMaterial, other_certs: list[asn1_x509.Certificate] = ()) -> ValidationContext:  # type: ignore[assignment]
    roots, intermediates = _certificates(trust)
    return ValidationContext(
        trust_roots=list(roots),
        other_certs=[*intermediates, *other_certs],
        crls=list(trust.crls),
        allow_fetching=trust.fetch_revocation,
        revocation_mode=trust.revocation_mode,
        fetcher_backend=_backend if trust.fetch_revocation else None,
    )


# --- certificates ------------------------------------------------------------------------------

_PERSON_ID = re.compile(r"^(CMND|CCCD|HC|PID)[:\s]", re.IGNORECASE)
_ORG_ID = re.compile(r"^(MST|MNS|MDV|MSNS|MBHXH)[:\s]", re.IGNORECASE)


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else None


def kind_from_fields(cert: x509.Certificate) -> Literal["person", "organization"]:
    """Whether a certificate names a person or an organisation, from its subject.

    Vietnamese CAs put a personal id (``UID=CMND:``/``CCCD:``) in a person's certificate and a tax
    or budget code (``UID=MST:``/``MNS:``) in an organisation's; without either, a subject whose
    common name is its organisation (or that has no common name) is the organisation's."""
    subject = cert.subject
    uid = _attribute(subject, NameOID.USER_ID) or ""
    if _PERSON_ID.match(uid):
        return "person"
    if _ORG_ID.match(uid):
        return "organization"
    cn, org = _attribute(subject, NameOID.COMMON_NAME), _attribute(subject, NameOID.ORGANIZATION_NAME)
    if cn is None or (org is not None and cn.strip().casefold() == org.strip().casefold()):
        return "organization"
    if subject.get_attributes_for_oid(NameOID.GIVEN_NAME) or subject.get_attributes_for_oid(NameOID.SURNAME):
        return "person"
    return "person" if org is not None else "organization"


def _key_usage(cert: x509.Certificate) -> list[str]:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return []
    names = [
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
    ]
    return [n for n in names if getattr(usage, n)]


def certificate_info(der: bytes) -> CertificateInfo:
    cert = x509.load_der_x509_certificate(der)
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        common_name=_attribute(cert.subject, NameOID.COMMON_NAME),
        organization=_attribute(cert.subject, NameOID.ORGANIZATION_NAME),
        user_id=_attribute(cert.subject, NameOID.USER_ID),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sha256=hashlib.sha256(der).hexdigest(),
        key_usage=_key_usage(cert),
        kind_from_fields=kind_from_fields(cert),
    )


def _key_usage_ok(info: CertificateInfo) -> bool:
    return not info.key_usage or bool({"digital_signature", "content_commitment"} & set(info.key_usage))


# --- judgment ----------------------------------------------------------------------------------

_TRUST_WORDS: dict[AdESSubIndic, tuple[Verdict, str]] = {
    AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND: (
        "indeterminate",
        "The signer's certificate does not chain to a trust anchor of the trust store",
    ),
    AdESIndeterminate.TRY_LATER: (
        "indeterminate",
        "Revocation information for the signer's certificate could not be obtained (hard-fail policy)",
    ),
    AdESIndeterminate.REVOCATION_OUT_OF_BOUNDS_NO_POE: (
        "indeterminate",
        "The revocation information available is too old or too new for the signing time",
    ),
    AdESIndeterminate.CHAIN_CONSTRAINTS_FAILURE: (
        "invalid",
        "The signer's certificate is not allowed to sign documents (key usage or chain constraints)",
    ),
    AdESIndeterminate.CRYPTO_CONSTRAINTS_FAILURE: (
        "invalid",
        "The signature or its chain uses an algorithm that is no longer accepted",
    ),
    AdESIndeterminate.CRYPTO_CONSTRAINTS_FAILURE_NO_POE: (
        "indeterminate",
        "The signature or its chain uses an algorithm accepted only before a date that cannot be proven",
    ),
    AdESIndeterminate.NOT_YET_VALID: ("invalid", "The signer's certificate was not yet valid when it signed"),
}


def _subindication_name(indication: AdESSubIndic) -> str:
    return str(getattr(indication, "name", indication))


def _judge_trust(finding: Finding, indication: AdESSubIndic | None, revocation_date: dt.datetime | None) -> None:
    """Set the chain, revocation and verdict parts of a finding from the certvalidator's outcome."""
    finding.trust_problem = _subindication_name(indication) if indication is not None else None
    finding.trusted = indication is None and bool(finding.path)
    if indication in (AdESIndeterminate.REVOKED_NO_POE, AdESIndeterminate.REVOKED_CA_NO_POE):
        finding.revocation = "revoked"
        finding.revoked_at = revocation_date
        whose = "signer's" if indication == AdESIndeterminate.REVOKED_NO_POE else "issuing CA's"
        when = f" on {revocation_date:%Y-%m-%d %H:%M} UTC" if revocation_date else ""
        finding.reasons.append(f"The {whose} certificate was revoked{when}")
        finding.verdict = "invalid"
        return
    if indication == AdESIndeterminate.OUT_OF_BOUNDS_NO_POE and finding.signer is not None:
        expired = finding.signer.not_after
        signed_at = finding.timestamp_time or finding.claimed_time
        if signed_at is None or signed_at > expired:
            finding.reasons.append(
                f"The signer's certificate expired on {expired:%Y-%m-%d}, before the signature was made"
            )
            finding.verdict = "invalid"
        else:
            finding.reasons.append(
                f"The signer's certificate expired on {expired:%Y-%m-%d}; no timestamp proves the signature "
                "was made before"
            )
            finding.verdict = "indeterminate"
        return
    if indication is not None:
        said = finding.chain_messages[-1] if finding.chain_messages else None
        if said is not None and "no revocation information" in said:
            indication = AdESIndeterminate.TRY_LATER
            finding.trust_problem = indication.name
        detail = f": {said}" if said else f" ({_subindication_name(indication)})"
        verdict, words = _TRUST_WORDS.get(
            indication, ("indeterminate", f"The signer's certificate could not be validated{detail}")
        )
        finding.reasons.append(words)
        finding.verdict = verdict
        if indication != AdESIndeterminate.TRY_LATER:
            finding.revocation = "unknown"
        return
    finding.revocation = "not_revoked"
    finding.verdict = "valid"


def _path_of(status_path: Any) -> tuple[str | None, list[str]]:
    if status_path is None:
        return None, []
    subjects = []
    for cert in status_path.iter_certs(include_root=True):
        subjects.append(cert.subject.human_friendly)
    return (subjects[0] if subjects else None), subjects


def _combine(finding: Finding, problems: list[str], indication: AdESSubIndic | None, status: Any) -> Finding:
    """Integrity problems make a signature invalid whatever its chain; otherwise the chain decides."""
    finding.anchor, finding.path = _path_of(getattr(status, "validation_path", None))
    revocation = getattr(status, "revocation_details", None)
    _judge_trust(finding, indication, revocation.revocation_date if revocation is not None else None)
    if problems:
        finding.reasons[:0] = problems
        finding.verdict = "invalid"
    if finding.signer is not None and not _key_usage_ok(finding.signer) and finding.verdict == "valid":
        finding.verdict = "invalid"
        finding.reasons.append("The signer's certificate is not meant for signatures (key usage)")
    if finding.timestamp_ok is False and finding.verdict == "valid":
        finding.verdict = "indeterminate"
        finding.reasons.append("The signature timestamp could not be validated")
    return finding


def _cms_common(finding: Finding, status: StandardCMSSignatureStatus) -> list[str]:
    finding.signer = certificate_info(status.signing_cert.dump())
    finding.key_usage_ok = _key_usage_ok(finding.signer)
    finding.claimed_time = status.signer_reported_dt
    finding.intact, finding.signature_ok = status.intact, status.valid
    finding.algorithms = [status.md_algorithm, status.pkcs7_signature_mechanism]
    ts = status.timestamp_validity
    if ts is not None:
        finding.timestamp_time = ts.timestamp
        finding.timestamp_ok = ts.intact and ts.valid and ts.trusted
    problems = []
    if not status.intact:
        problems.append("The signed content was changed after signing (its digest does not match)")
    if not status.valid:
        problems.append("The signature value does not match the signer's key")
    return problems


# --- PDF -------------------------------------------------------------------------------------

_CHANGES = {
    "NONE": "none",
    "LTA_UPDATES": "validation_data_only",
    "FORM_FILLING": "signatures_and_form_fields",
    "ANNOTATIONS": "annotations",
    "OTHER": "other",
}


def _pdf_reader(data: bytes) -> PdfFileReader:
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        if reader.encrypted:
            # a PDF "encrypted" with an empty user password is readable by anyone: try it
            try:
                result = reader.decrypt(b"")
            except Exception as exc:
                raise InputRefused("document_encrypted", "The PDF is encrypted; send it unencrypted") from exc
            if getattr(result, "status", None) is not None and result.status.name == "FAILED":
                raise InputRefused("document_encrypted", "The PDF is encrypted; send it unencrypted")
        return reader
    except InputRefused:
        raise
    except (PdfError, ValueError, KeyError, IndexError, TypeError, AttributeError, OverflowError) as exc:
        raise InputRefused("document_unreadable", f"The PDF cannot be read: {exc}") from exc


async def _verify_pdf(job: Job) -> Outcome:
    reader = _pdf_reader(job.data)
    try:
        embedded = list(reader.embedded_signatures)
        revisions = reader.xrefs.total_revisions
    except InputRefused:
        raise
    except Exception as exc:
        raise InputRefused("document_unreadable", f"The PDF cannot be read: {exc}") from exc
    outcome = Outcome(format="pdf")
    for index, signature in enumerate(embedded):
        if signature.sig_object_type == "/DocTimeStamp":
            outcome.notes.append(f"A document timestamp ({signature.field_name}) is present; it is not a signature")
            continue
        outcome.findings.append(await _pdf_signature(job, index, signature, revisions))
    if not outcome.findings:
        raise InputRefused("signature_not_found", "The PDF carries no signature")
    for number, finding in enumerate(outcome.findings):
        finding.index = number
    return outcome


async def _pdf_signature(job: Job, index: int, signature: Any, revisions: int) -> Finding:
    finding = Finding(index=index, format="pades", name=signature.field_name, signer=None)
    _take_chain_problems()
    try:
        status = await async_validate_pdf_signature(
            signature, signer_validation_context=_context(job.trust), key_usage_settings=KEY_USAGE
        )
    except Exception as exc:
        finding.reasons.append(f"The signature cannot be read: {exc}")
        finding.verdict = "invalid"
        return finding
    finding.chain_messages = _take_chain_problems()
    problems = _cms_common(finding, status)
    finding.revision = signature.signed_revision
    finding.later_revisions = max(0, revisions - 1 - signature.signed_revision)
    coverage = status.coverage
    finding.coverage = coverage.name.lower() if coverage is not None else None
    level = status.modification_level
    finding.later_changes = _CHANGES.get(level.name, level.name.lower()) if level is not None else None
    trailing = False
    if coverage is None or coverage < SignatureCoverageLevel.ENTIRE_REVISION:
        problems.append("The signature does not cover its whole revision of the file")
    elif coverage == SignatureCoverageLevel.ENTIRE_REVISION:
        finding.later_changes_allowed = bool(status.docmdp_ok)
        if not status.docmdp_ok:
            problems.append(
                "Content was changed after this signature "
                f"(a later revision modifies the document: {finding.later_changes})"
            )
        elif finding.later_revisions == 0:
            trailing = True
    else:
        finding.later_changes_allowed = True
    _combine(finding, problems, status.trust_problem_indic, status)
    if trailing:
        # bytes after the last revision that no reader shows: suspicious, not proof of a forgery
        finding.reasons.insert(0, "Bytes that are not a PDF revision were appended after the signature")
        if finding.verdict == "valid":
            finding.verdict = "indeterminate"
    return finding


# --- CMS -------------------------------------------------------------------------------------


def _signed_data(data: bytes) -> asn1_cms.SignedData:
    try:
        if asn1_pem.detect(data):
            _, _, data = asn1_pem.unarmor(data)
        content_info = asn1_cms.ContentInfo.load(data, strict=True)
        if content_info["content_type"].native != "signed_data":
            raise InputRefused("signature_unreadable", "The CMS object is not SignedData")
        signed = content_info["content"]
        assert isinstance(signed, asn1_cms.SignedData)
        _ = signed.native  # parse everything now: errors surface here, not deep in the validation
        return signed
    except InputRefused:
        raise
    except Exception as exc:
        raise InputRefused("signature_unreadable", f"The CMS/PKCS#7 signature cannot be read: {exc}") from exc


async def _verify_cms(job: Job) -> Outcome:
    signed = _signed_data(job.data)
    encapsulated = signed["encap_content_info"]
    content: bytes | asn1_cms.EncapsulatedContentInfo
    if job.signed_data is not None:
        content = job.signed_data
    elif encapsulated["content"].native is not None:
        content = encapsulated
    else:
        raise InputRefused("signed_file_missing", "This is a detached signature: send the signed file as `signed_file`")
    signer_infos = signed["signer_infos"]
    if len(signer_infos) == 0:
        raise InputRefused("signature_not_found", "The CMS object carries no signer")
    outcome = Outcome(format="cms")
    if len(signer_infos) > 1:
        outcome.notes.append(f"The CMS object has {len(signer_infos)} signers; the first is verified")
    finding = Finding(index=0, format="cms", name=None, signer=None)
    _take_chain_problems()
    try:
        status = await async_validate_detached_cms(
            content, signed, signer_validation_context=_context(job.trust), key_usage_settings=KEY_USAGE
        )
    except Exception as exc:
        finding.reasons.append(f"The signature cannot be checked: {exc}")
        finding.verdict = "invalid"
        outcome.findings.append(finding)
        return outcome
    finding.chain_messages = _take_chain_problems()
    problems = _cms_common(finding, status)
    finding.coverage = "entire_file"
    outcome.findings.append(_combine(finding, problems, status.trust_problem_indic, status))
    return outcome


# --- XML-DSig --------------------------------------------------------------------------------

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_comments=False)


def _xml_root(data: bytes) -> Any:
    try:
        return etree.fromstring(data, parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        raise InputRefused("document_unreadable", f"The XML document cannot be read: {exc}") from exc


def _embedded_certs(signature: Any) -> list[bytes]:
    certs = []
    for element in signature.iter():
        if isinstance(element.tag, str) and etree.QName(element).localname == "X509Certificate" and element.text:
            try:
                certs.append(base64.b64decode("".join(element.text.split()), validate=True))
            except (binascii.Error, ValueError):
                continue
    return certs


async def _verify_xml(job: Job) -> Outcome:
    root = _xml_root(job.data)
    signatures = SIGNATURES(root)
    if not signatures:
        raise InputRefused("signature_not_found", "The XML document carries no XML-DSig signature")
    outcome = Outcome(format="xml")
    for index, element in enumerate(signatures):
        outcome.findings.append(await _xml_signature(job, root, index, element))
    return outcome


async def _xml_signature(job: Job, root: Any, index: int, element: Any) -> Finding:
    namespace = etree.QName(element).namespace or ""
    placement = "ds" if namespace == DS_NS else ("edXML" if namespace == EDXML_NS else namespace or "none")
    finding = Finding(index=index, format="xmldsig", name=f"Signature ({placement} namespace)", signer=None)
    certs = []
    for der in _embedded_certs(element):
        try:
            certs.append((der, x509.load_der_x509_certificate(der)))
        except ValueError:
            continue
    if not certs:
        finding.reasons.append("The signature carries no readable X.509 certificate (X509Data)")
        finding.verdict = "indeterminate"
        return finding
    config = SignatureConfiguration(
        require_x509=True,
        expect_references=True,
        signature_methods=frozenset(SignatureMethod),
        digest_algorithms=frozenset(DigestAlgorithm),
    )
    error: str | None = None
    signing: tuple[bytes, x509.Certificate] | None = None
    results: Any = None
    for der, cert in certs:  # X509Data may hold the chain too: the signer is whose key verifies
        try:
            results = PlacedVerifier(index, namespace).verify(
                root, x509_cert=cert, expect_config=config, validate_schema=placement == "ds"
            )
        except SignXMLException as exc:
            error = str(exc)
            if "Digest mismatch" in error:
                signing = (der, cert)
                break
            continue
        except (ValueError, TypeError, etree.LxmlError) as exc:
            error = str(exc)
            continue
        signing, error = (der, cert), None
        break
    der, cert = signing or certs[0]
    finding.signer = certificate_info(der)
    finding.key_usage_ok = _key_usage_ok(finding.signer)
    problems: list[str] = []
    signed_info = element.find(f"{{{namespace}}}SignedInfo") if namespace else element.find("SignedInfo")
    methods = (
        [m.get("Algorithm", "") for m in signed_info.iter() if m.get("Algorithm")] if signed_info is not None else []
    )
    finding.algorithms = sorted({m.rsplit("#", 1)[-1] for m in methods if "c14n" not in m and "enveloped" not in m})
    if signing is None:
        problems.append(f"The signature value does not match the signer's key ({error})")
    elif error is not None:
        finding.signature_ok = True
        problems.append("The packet was changed after signing (a reference's digest does not match)")
    else:
        finding.signature_ok = finding.intact = True
        uris = [
            r.get("URI")
            for r in (signed_info.iter() if signed_info is not None else [])
            if etree.QName(r).localname == "Reference"
        ]
        finding.coverage = "entire_file" if "" in uris else "referenced_parts"
        if finding.coverage != "entire_file":
            finding.reasons.append(f"The signature covers only parts of the packet ({', '.join(str(u) for u in uris)})")
        if any(weak in a for a in finding.algorithms for weak in WEAK_XML_ALGORITHMS):
            finding.reasons.append("The signature uses SHA-1 (accepted for the national samples; weak)")
    del results
    other = [asn1_x509.Certificate.load(d) for d, _ in certs if d != der]
    context = _context(job.trust, other)
    signer = asn1_x509.Certificate.load(der)
    _take_chain_problems()
    operation = await validate_cert_usage(
        signer, context, KEY_USAGE, paths=context.path_builder.async_build_paths_lazy(signer)
    )
    finding.chain_messages = _take_chain_problems()
    status = _XmlStatus(operation.success_result or operation.error_path, operation.revo_details)
    return _combine(finding, problems, operation.error_subindic, status)


@dataclass
class _XmlStatus:
    validation_path: Any
    revocation_details: Any


__all__ = ["Finding", "InputRefused", "Job", "Outcome", "TrustMaterial", "detect_format", "run_job"]
