"""The province's seal key and certificate, which sign the packets sent to the hub."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Seal:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    certificate: x509.Certificate


def load_seal(key_file: Path, certificate_file: Path) -> Seal:
    """Read the seal key (PEM, RSA or EC) and its certificate (PEM)."""
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise RuntimeError(f"{key_file}: the seal key must be RSA or EC, not {type(key).__name__}")
    return Seal(key, x509.load_pem_x509_certificate(certificate_file.read_bytes()))


def local_seal(directory: Path, common_name: str) -> Seal:
    """A self-signed seal under ``directory`` (made once) for development and the hub double."""
    key_file, cert_file = directory / "hub-seal-key.pem", directory / "hub-seal-cert.pem"
    if key_file.exists() and cert_file.exists():
        return load_seal(key_file, cert_file)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_file.chmod(0o600)
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return Seal(key, certificate)
