"""A test PKI made with ``cryptography`` (EC P-256: fast), and documents signed with it.

The chain is root → intermediate → leaves: the agency's seal, a person, a revoked signer (listed in
the intermediate's CRL), an expired signer; and a root nobody trusts with a leaf of its own. Built
once per test session (:func:`build_pki`)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from lxml import etree

NOW = dt.datetime.now(dt.UTC)
SEAL_NAME = "Sở Tài chính tỉnh Nghệ An"
PERSON_NAME = "Nguyễn Văn An"
EDXML_NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
CRL_URL = "http://127.0.0.1:9/lienthong-test-ca.crl"


@dataclass
class Identity:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: Any  # EC P-256, RSA for the TSA

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def sha256(self) -> str:
        return self.cert.fingerprint(hashes.SHA256()).hex()


@dataclass
class Pki:
    root: Identity
    intermediate: Identity
    seal: Identity
    person: Identity
    revoked: Identity
    expired: Identity
    untrusted_root: Identity
    untrusted: Identity
    tsa: Identity
    crl: bytes = field(repr=False)


def _name(**parts: str) -> x509.Name:
    oids = {
        "cn": NameOID.COMMON_NAME,
        "o": NameOID.ORGANIZATION_NAME,
        "ou": NameOID.ORGANIZATIONAL_UNIT_NAME,
        "title": NameOID.TITLE,
        "uid": NameOID.USER_ID,
        "c": NameOID.COUNTRY_NAME,
    }
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in parts.items()])


def _issue(
    subject: x509.Name,
    issuer: Identity | None,
    *,
    ca: bool,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    time_stamping: bool = False,
) -> Identity:
    # pyHanko's test timestamper signs with RSA only: the TSA has an RSA key, everyone else EC P-256
    key: Any = rsa.generate_private_key(65537, 2048) if time_stamping else ec.generate_private_key(ec.SECP256R1())
    issuer_name = issuer.cert.subject if issuer else subject
    signing_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - dt.timedelta(days=30))
        .not_valid_after(not_after or NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=not ca,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    if time_stamping:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
    if not ca:
        # pyHanko checks revocation only for certificates declaring where it is published (as real
        # CA certificates do); nothing listens there: the tests upload the CRL to the trust store
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(CRL_URL)], None, None, None)
        builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
    return Identity(builder.sign(signing_key, hashes.SHA256()), key)


def build_pki() -> Pki:
    """Make the whole test PKI (a few milliseconds)."""
    root = _issue(_name(cn="LienThong Test Root CA", o="Test PKI", c="VN"), None, ca=True)
    intermediate = _issue(_name(cn="LienThong Test Signing CA", o="Test PKI", c="VN"), root, ca=True)
    seal = _issue(_name(cn=SEAL_NAME, o=SEAL_NAME, uid="MNS:1234567", c="VN"), intermediate, ca=False)
    person = _issue(
        _name(cn=PERSON_NAME, title="Giám đốc", o=SEAL_NAME, uid="CCCD:001234567890", c="VN"), intermediate, ca=False
    )
    revoked = _issue(_name(cn="Trần Thị Bích", o=SEAL_NAME, uid="CCCD:009876543210", c="VN"), intermediate, ca=False)
    expired = _issue(
        _name(cn="Lê Văn Cũ", o=SEAL_NAME, uid="CCCD:001111111111", c="VN"),
        intermediate,
        ca=False,
        not_before=NOW - dt.timedelta(days=400),
        not_after=NOW - dt.timedelta(days=35),
    )
    untrusted_root = _issue(_name(cn="Unknown Root CA", o="Nobody", c="VN"), None, ca=True)
    untrusted = _issue(_name(cn="Phạm Văn Lạ", uid="CCCD:002222222222", c="VN"), untrusted_root, ca=False)
    tsa = _issue(_name(cn="LienThong Test TSA", o="Test PKI", c="VN"), intermediate, ca=False, time_stamping=True)
    revoked_entry = (
        x509.RevokedCertificateBuilder()
        .serial_number(revoked.cert.serial_number)
        .revocation_date(NOW - dt.timedelta(days=2))
        .build()
    )
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(intermediate.cert.subject)
        .last_update(NOW - dt.timedelta(days=1))
        .next_update(NOW + dt.timedelta(days=7))
        .add_revoked_certificate(revoked_entry)
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(intermediate.key.public_key()), critical=False
        )
        .sign(intermediate.key, hashes.SHA256())
    )
    return Pki(
        root,
        intermediate,
        seal,
        person,
        revoked,
        expired,
        untrusted_root,
        untrusted,
        tsa,
        crl.public_bytes(serialization.Encoding.DER),
    )


# --- PDF (pyHanko) ---------------------------------------------------------------------------------


def _signer(identity: Identity, chain: list[Identity]) -> object:
    from pyhanko.sign import signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    key_der = identity.key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return signers.SimpleSigner(
        signing_cert=asn1_x509.Certificate.load(identity.der),
        signing_key=asn1_keys.PrivateKeyInfo.load(key_der),
        cert_registry=SimpleCertificateStore.from_certs(  # type: ignore[no-untyped-call]
            [asn1_x509.Certificate.load(c.der) for c in chain]
        ),
    )


def sign_pdf(
    pdf: bytes,
    identity: Identity,
    chain: list[Identity],
    field_name: str = "Signature1",
    *,
    tsa: Identity | None = None,
) -> bytes:
    """Sign ``pdf`` as a new revision (an earlier signature stays valid); with ``tsa``, the signature
    gets an RFC 3161 timestamp from it."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

    timestamper = None
    if tsa is not None:
        key_der = tsa.key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        timestamper = DummyTimeStamper(
            tsa_cert=asn1_x509.Certificate.load(tsa.der), tsa_key=asn1_keys.PrivateKeyInfo.load(key_der)
        )
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    out = signers.sign_pdf(
        writer,
        signers.PdfSignatureMetadata(field_name=field_name),
        signer=_signer(identity, chain),  # type: ignore[arg-type]
        timestamper=timestamper,
    )
    return bytes(out.getvalue())


def append_page_text(pdf: bytes, text: str) -> bytes:
    """Add an incremental update that changes the page content (not an allowed change)."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    stream = generic.StreamObject(stream_data=f"BT /F1 12 Tf 72 700 Td ({text}) Tj ET".encode())
    ref = writer.add_object(stream)
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    page["/Contents"] = generic.ArrayObject([page.raw_get("/Contents"), ref])
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)  # type: ignore[no-untyped-call]
    return out.getvalue()


# --- detached CMS ----------------------------------------------------------------------------------


def sign_detached(data: bytes, identity: Identity, chain: list[Identity]) -> bytes:
    """Return a detached CMS signature (.p7s, DER) of ``data``."""
    import asyncio

    from pyhanko.sign import signers

    signer = _signer(identity, chain)
    assert isinstance(signer, signers.Signer)
    content_info = asyncio.run(signer.async_sign_general_data(data, "sha256", detached=True))
    return bytes(content_info.dump())


# --- edXML ---------------------------------------------------------------------------------------


def edxml_packet(subject: str = "Kế hoạch chuyển đổi số") -> bytes:
    """A small edXML packet (no signature yet)."""
    attachment = base64.b64encode(b"%PDF-1.7 attachment").decode()
    parts = [
        f'<?xml version="1.0" encoding="UTF-8"?>\n<edXML:edXML xmlns:edXML="{EDXML_NS}">',
        "<edXML:edXMLEnvelope><edXML:edXMLHeader><edXML:MessageHeader>",
        f"<edXML:From><edXML:OrganId>000.00.01.H41</edXML:OrganId><edXML:OrganName>{SEAL_NAME}</edXML:OrganName>",
        "</edXML:From><edXML:To><edXML:OrganId>000.00.02.H41</edXML:OrganId></edXML:To>",
        "<edXML:DocumentId>000.00.01.H41,2026/11/20,24/KH-STC</edXML:DocumentId>",
        f"<edXML:Subject>{subject}</edXML:Subject></edXML:MessageHeader></edXML:edXMLHeader>",
        "<edXML:edXMLBody><edXML:edXMLManifest><edXML:Reference><edXML:ContentId>cid:1</edXML:ContentId>",
        "</edXML:Reference></edXML:edXMLManifest></edXML:edXMLBody></edXML:edXMLEnvelope>",
        "<edXML:AttachmentEncoded><edXML:Attachment><edXML:ContentId>1</edXML:ContentId>",
        f"<edXML:ContentTransferEncoded>{attachment}</edXML:ContentTransferEncoded>",
        "</edXML:Attachment></edXML:AttachmentEncoded></edXML:edXML>",
    ]
    return "".join(parts).encode()


def sign_edxml_ds(packet: bytes, identity: Identity) -> bytes:
    """Sign with signxml: an enveloped ``ds:Signature`` at the end of edXMLHeader."""
    from signxml.algorithms import SignatureMethod
    from signxml.signer import XMLSigner

    root = etree.fromstring(packet)
    header = root.find(f".//{{{EDXML_NS}}}edXMLHeader")
    assert header is not None
    placeholder = etree.SubElement(header, f"{{{DS_NS}}}Signature", Id="placeholder")
    del placeholder  # signxml replaces the ds:Signature placeholder where it stands
    signer = XMLSigner(
        signature_algorithm=SignatureMethod.ECDSA_SHA256, c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"
    )
    signed = signer.sign(root, key=identity.key, cert=[identity.cert])
    return bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))


def sign_edxml_default_namespace(packet: bytes, identity: Identity) -> bytes:
    """Sign as the national samples are: ``<Signature>`` without a namespace of its own, so in the
    edXML namespace, its SignedInfo canonicalised as it stands there."""
    exc_c14n = "http://www.w3.org/2001/10/xml-exc-c14n#"
    root = etree.fromstring(packet)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(etree.tostring(root, method="c14n", exclusive=True))
    header = root.find(f".//{{{EDXML_NS}}}edXMLHeader")
    assert header is not None

    def el(parent: etree._Element, tag: str, **attrs: str) -> etree._Element:
        return etree.SubElement(parent, f"{{{EDXML_NS}}}{tag}", **attrs)

    signature = el(header, "Signature")
    signed_info = el(signature, "SignedInfo")
    el(signed_info, "CanonicalizationMethod", Algorithm=exc_c14n)
    el(signed_info, "SignatureMethod", Algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256")
    reference = el(signed_info, "Reference", URI="")
    transforms = el(reference, "Transforms")
    el(transforms, "Transform", Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature")
    el(transforms, "Transform", Algorithm=exc_c14n)
    el(reference, "DigestMethod", Algorithm="http://www.w3.org/2001/04/xmlenc#sha256")
    el(reference, "DigestValue").text = base64.b64encode(digest.finalize()).decode()
    der = identity.key.sign(etree.tostring(signed_info, method="c14n", exclusive=True), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    el(signature, "SignatureValue").text = base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode()
    x509_data = el(el(signature, "KeyInfo"), "X509Data")
    el(x509_data, "X509Certificate").text = base64.b64encode(identity.der).decode()
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def sign_edxml_as_the_samples(data: bytes, identity: Identity) -> bytes:
    """Sign as the national samples are signed: an unprefixed ``<Signature>`` in the edXML default
    namespace, SignedInfo canonicalised inclusively (c14n 1.0), rsa-sha1, the packet digested with
    the enveloped-signature and exclusive c14n transforms."""
    root = etree.fromstring(data)
    header = root.find(f"{{{EDXML_NS}}}edXMLEnvelope/{{{EDXML_NS}}}edXMLHeader")
    assert header is not None
    digest = hashlib.sha1(etree.tostring(root, method="c14n", exclusive=True)).digest()

    def el(parent: etree._Element, tag: str, **attrs: str) -> etree._Element:
        return etree.SubElement(parent, f"{{{EDXML_NS}}}{tag}", attrs, nsmap={None: EDXML_NS})

    signature = el(header, "Signature")
    signed_info = el(signature, "SignedInfo")
    el(signed_info, "CanonicalizationMethod", Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315")
    el(signed_info, "SignatureMethod", Algorithm="http://www.w3.org/2000/09/xmldsig#rsa-sha1")
    reference = el(signed_info, "Reference", URI="")
    transforms = el(reference, "Transforms")
    el(transforms, "Transform", Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature")
    el(transforms, "Transform", Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#")
    el(reference, "DigestMethod", Algorithm="http://www.w3.org/2000/09/xmldsig#sha1")
    el(reference, "DigestValue").text = base64.b64encode(digest).decode()
    # c14n 1.0 of SignedInfo as a correct signer (.NET's SignedXml) computes it: on a copy that is its
    # own document (lxml's c14n of a nested element adds xmlns="" below it: see shared.xmldsig.PlacedVerifier)
    canonical = etree.tostring(etree.fromstring(etree.tostring(signed_info, with_tail=False)), method="c14n")
    assert b'xmlns=""' not in canonical
    value = identity.key.sign(canonical, padding.PKCS1v15(), hashes.SHA1())
    el(signature, "SignatureValue").text = base64.b64encode(value).decode()
    el(el(el(signature, "KeyInfo"), "X509Data"), "X509Certificate").text = base64.b64encode(identity.der).decode()
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def encrypt_pdf(pdf: bytes, user_password: str) -> bytes:
    """Return ``pdf`` encrypted with a user password (pyHanko's standard security handler)."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.pdf_utils.writer import copy_into_new_writer

    writer = copy_into_new_writer(PdfFileReader(io.BytesIO(pdf)))
    writer.encrypt("owner-secret", user_password)  # type: ignore[no-untyped-call]
    out = io.BytesIO()
    writer.write(out)  # type: ignore[no-untyped-call]
    return out.getvalue()
