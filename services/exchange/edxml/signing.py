"""Sign an edXML packet and verify its signature (XML-DSig, with signxml).

Signing: an enveloped signature (``Reference URI=""``: the whole packet, attachments included, less
the signature itself), exclusive c14n, SHA-256 with the key's own algorithm (RSA or ECDSA), the
signer's certificate (and any chain passed) in ``KeyInfo/X509Data``, placed as the last child of
``edXMLHeader`` in the XML-DSig namespace (``ds:``), where stock verifiers look for it. A signature
already in the header is replaced (a packet forwarded is signed by whoever forwards it).

Verification accepts both placements found in the wild: ``ds:Signature``, and the national samples'
``<Signature>`` that declares no namespace and so sits in the edXML default namespace. The signed
bytes are what they are: the signature is canonicalised where and as it stands, never moved into
``ds`` first. It checks integrity (every reference's digest, and the signature value against the
certificate in X509Data); whether that certificate is trusted (chain, revocation) is the signature
service's question: :class:`SignatureCheck` hands the certificate over for it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidSignature, SignXMLException
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration

from services.exchange.edxml.errors import PacketInvalidError, PacketSignatureInvalidError
from services.exchange.edxml.packet import Packet, SignaturePlacement
from services.exchange.edxml.parse import (
    DEFAULT_MAX_ATTACHMENT_BYTES,
    DEFAULT_MAX_PACKET_BYTES,
    packet_from_xml,
    read_xml,
)
from services.exchange.edxml.write import EDXML_NS, to_bytes
from shared.xmldsig import SIGNATURES, PlacedVerifier

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
DSIG11_NS = "http://www.w3.org/2009/xmldsig11#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
WEAK = ("sha1",)
_ANY_METHOD = SignatureConfiguration(
    require_x509=True,
    expect_references=True,
    # the samples sign with rsa-sha1: reported, not refused; a shared secret (HMAC) proves no sender
    signature_methods=frozenset(m for m in SignatureMethod if not m.name.startswith("HMAC")),
    digest_algorithms=frozenset(DigestAlgorithm),
)


@dataclass
class SignatureCheck:
    """What a verified signature says: where it sat, who signed (for the trust check), with what."""

    placement: SignaturePlacement
    certificate: x509.Certificate
    chain: list[x509.Certificate] = field(default_factory=list)
    algorithms: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --- signing --------------------------------------------------------------------------------------


def _signature_method(key: Any) -> SignatureMethod:
    if isinstance(key, rsa.RSAPrivateKey):
        return SignatureMethod.RSA_SHA256
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return SignatureMethod.ECDSA_SHA256
    raise TypeError(f"cannot sign an edXML packet with a {type(key).__name__}: an RSA or EC key is needed")


def sign_packet(
    data: bytes,
    *,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    certificate: x509.Certificate,
    chain: Sequence[x509.Certificate] = (),
    max_bytes: int = DEFAULT_MAX_PACKET_BYTES,
) -> bytes:
    """Sign the packet ``data`` (as :func:`write_packet` writes it) with ``key``; the certificate
    (then ``chain``) goes in X509Data. Returns the signed packet's bytes."""
    root = read_xml(data, max_bytes=max_bytes)
    header = root.find(f"{{{EDXML_NS}}}edXMLEnvelope/{{{EDXML_NS}}}edXMLHeader")
    if header is None:
        raise PacketInvalidError(
            "Only an edXML packet can be signed here", reason="not_a_packet", element="edXML/edXMLEnvelope/edXMLHeader"
        )
    for old in [e for e in header if isinstance(e.tag, str) and etree.QName(e).localname == "Signature"]:
        header.remove(old)
    etree.SubElement(header, f"{{{DS_NS}}}Signature", Id="placeholder")  # signxml signs in its place
    signer = XMLSigner(
        signature_algorithm=_signature_method(key),
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=EXC_C14N,
    )
    signed = signer.sign(root, key=key, cert=[certificate, *chain])
    return to_bytes(signed, pretty=False)


# --- verification ---------------------------------------------------------------------------------


def _certificates(signature: Any) -> list[x509.Certificate]:
    found = []
    for element in signature.iter():
        if isinstance(element.tag, str) and etree.QName(element).localname == "X509Certificate" and element.text:
            try:
                certificate = x509.load_der_x509_certificate(base64.b64decode("".join(element.text.split())))
                certificate.public_key()  # parsed lazily: a broken key shows here
            except (binascii.Error, ValueError, UnsupportedAlgorithm):
                continue
            found.append(certificate)
    return found


def _pick_signature(root: Any) -> tuple[int, Any]:
    signatures = SIGNATURES(root)
    if not signatures:
        raise PacketSignatureInvalidError("The packet carries no XML-DSig signature", reason="signature_missing")
    for index, element in enumerate(signatures):  # the packet's own: the one in edXMLHeader
        parent = element.getparent()
        if parent is not None and etree.QName(parent).localname == "edXMLHeader":
            return index, element
    return 0, signatures[0]


def verify_root(root: Any) -> SignatureCheck:
    """Verify the packet signature of an already parsed (safely) packet."""
    index, element = _pick_signature(root)
    namespace = etree.QName(element).namespace or ""
    placement: SignaturePlacement = "ds" if namespace == DS_NS else "edXML"
    signed_info = element.find(f"{{{namespace}}}SignedInfo") if namespace else element.find("SignedInfo")
    if signed_info is None:  # a SignedInfo, but in another namespace than its Signature
        raise PacketSignatureInvalidError(
            "SignedInfo is not in the namespace of its Signature", reason="signature_unreadable"
        )
    uris = [
        r.get("URI") for r in signed_info.iter() if isinstance(r.tag, str) and etree.QName(r).localname == "Reference"
    ]
    if not uris or any(uri != "" for uri in uris):
        raise PacketSignatureInvalidError(
            f'The signature must cover the whole packet (Reference URI=""), not {uris}', reason="partial_coverage"
        )
    certificates = _certificates(element)
    if not certificates:
        raise PacketSignatureInvalidError(
            "The signature carries no readable X.509 certificate (KeyInfo/X509Data)", reason="certificate_missing"
        )
    error: tuple[str, str] | None = None
    for certificate in certificates:  # X509Data may hold the chain: the signer is whose key verifies
        try:
            PlacedVerifier(index, namespace).verify(
                root, x509_cert=certificate, expect_config=_ANY_METHOD, validate_schema=placement == "ds"
            )
        except InvalidDigest as exc:
            raise PacketSignatureInvalidError(
                f"The packet was changed after it was signed ({exc})", reason="digest_mismatch"
            ) from exc
        except InvalidCertificate as exc:
            error = ("certificate_invalid", f"The signer's certificate is not usable: {exc}")
            continue
        except InvalidSignature as exc:
            error = error or ("signature_mismatch", f"The signature value does not match the signer's key ({exc})")
            continue
        except (SignXMLException, UnsupportedAlgorithm, ValueError, TypeError, KeyError, etree.LxmlError) as exc:
            error = error or ("signature_unreadable", f"The signature cannot be read: {exc}")
            continue
        algorithms = sorted(
            {
                a.rsplit("#", 1)[-1]
                for m in signed_info.iter()
                if isinstance(m.tag, str) and (a := m.get("Algorithm")) and "c14n" not in a and "enveloped" not in a
            }
        )
        notes = (
            ["The signature uses SHA-1 (as the national samples do; weak)"]
            if any(w in a for a in algorithms for w in WEAK)
            else []
        )
        chain = [c for c in certificates if c is not certificate]
        return SignatureCheck(
            placement=placement, certificate=certificate, chain=chain, algorithms=algorithms, notes=notes
        )
    reason, detail = error or ("signature_unreadable", "The signature cannot be verified")
    raise PacketSignatureInvalidError(detail, reason=reason)


def verify_packet(data: bytes, *, max_bytes: int = DEFAULT_MAX_PACKET_BYTES) -> SignatureCheck:
    """Verify a signed packet's integrity; raise :class:`PacketSignatureInvalidError` with the reason."""
    return verify_root(read_xml(data, max_bytes=max_bytes))


def read_signed_packet(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_PACKET_BYTES,
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
) -> tuple[Packet, SignatureCheck]:
    """Parse once, verify the signature, then read the packet from the very tree that was verified."""
    root = read_xml(data, max_bytes=max_bytes)
    check = verify_root(root)
    return packet_from_xml(root, max_attachment_bytes=max_attachment_bytes), check
