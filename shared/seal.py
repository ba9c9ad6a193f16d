"""The province's seal: the key and certificate that sign the edXML packets the province writes —
the exchange's exports and the hub connector's packets alike (one seal, one identity).

In production both files are configured (``LIENTHONG_EXCHANGE__SEAL_KEY_FILE`` and
``LIENTHONG_EXCHANGE__SEAL_CERTIFICATE_FILE``: the province's organisation certificate from the
national CA, RSA or EC, PEM; the certificate file may hold the chain after it). When neither is
configured (embedded mode, tests, ``make run``) a self-signed RSA key and certificate are made at
first use under ``<var_dir>/keys`` (``seal-key.pem`` mode 0600, ``seal-certificate.pem``), as the
gateway's JWT keys are at first start: a packet signed by them verifies, and is trusted by no one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from shared.keyring import write_atomically

SEAL_KEY_NAME = "seal-key.pem"
SEAL_CERTIFICATE_NAME = "seal-certificate.pem"
GENERATED_SUBJECT = "LienThong seal (generated for development, not trusted)"


@dataclass(frozen=True)
class Seal:
    """The key that signs packets, its certificate, and the chain above it (if the file holds one)."""

    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    chain: list[x509.Certificate] = field(default_factory=list)


def load_seal(key_file: Path, certificate_file: Path) -> Seal:
    """Read the seal's key and certificate (PEM); raise ValueError when they are unusable or do not match."""
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"the seal key {key_file} must be an RSA or EC key, not {type(key).__name__}")
    certificates = x509.load_pem_x509_certificates(certificate_file.read_bytes())
    if not certificates:
        raise ValueError(f"no certificate in {certificate_file}")
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    leaf = (
        certificates[0]
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    if public != leaf:
        raise ValueError(f"the first certificate of {certificate_file} is not the seal key's")
    return Seal(key, certificates[0], certificates[1:])


def generate_seal(directory: Path) -> tuple[Path, Path]:
    """Write a self-signed RSA seal key (mode 0600) and certificate under ``directory`` unless both exist."""
    key_path, certificate_path = directory / SEAL_KEY_NAME, directory / SEAL_CERTIFICATE_NAME
    if key_path.exists() and certificate_path.exists():
        return key_path, certificate_path
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, GENERATED_SUBJECT)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # the certificate first: whoever finds the key finds its certificate
    write_atomically(certificate_path, certificate.public_bytes(serialization.Encoding.PEM))
    write_atomically(key_path, pem, 0o600)
    return key_path, certificate_path


def province_seal(key_file: Path | None, certificate_file: Path | None, var_dir: Path) -> Seal:
    """The configured seal, or the development one under ``<var_dir>/keys`` (made at first use)."""
    if key_file is None or certificate_file is None:
        key_file, certificate_file = generate_seal(var_dir / "keys")
    return load_seal(key_file, certificate_file)
