"""Mutual TLS for agency systems (RFC 8705): the certificate a client presented, as the gateway sees it.

Two ways, both off by default:

- the gateway terminates TLS itself (``LIENTHONG_GATEWAY__TLS_CERT_FILE``, ``TLS_KEY_FILE``, and
  ``TLS_CLIENT_CA_FILE`` to ask for client certificates): the server puts the verified peer
  certificate into the request's scope as the ASGI TLS extension
  (``scope["extensions"]["tls"]["client_cert_chain"]``, see shared/httpserver.py; uvicorn alone
  does not);
- a TLS-terminating proxy in front passes the certificate it verified in a header
  (``LIENTHONG_GATEWAY__CLIENT_CERT_HEADER``), honoured only from the proxies'
  addresses (``LIENTHONG_GATEWAY__TRUSTED_PROXIES``): from anyone else the header is ignored. The
  header holds the URL-encoded PEM (nginx ``$ssl_client_escaped_cert``) or the
  RFC 9440 ``Client-Cert`` form (``:base64-DER:``).

A certificate is identified by its ``x5t#S256`` thumbprint (base64url SHA-256 of its DER): the
registry holds the thumbprints registered for each client, and a token issued on a certificate is
bound to it (``cnf``), usable only with that certificate.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from ipaddress import ip_address
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request

from gateway.config import GatewaySection

_PEM_BEGIN = "-----BEGIN CERTIFICATE-----"


def thumbprint(der: bytes) -> str:
    """x5t#S256 (RFC 8705): the base64url SHA-256 of the certificate's DER, without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def _pem_to_der(pem: str) -> bytes | None:
    start = pem.find(_PEM_BEGIN)
    end = pem.find("-----END CERTIFICATE-----", start + 1)
    if start < 0 or end < 0:
        return None
    body = "".join(pem[start + len(_PEM_BEGIN) : end].split())
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None


def _header_der(value: str) -> bytes | None:
    value = value.strip()
    if len(value) > 2 and value.startswith(":") and value.endswith(":"):  # RFC 9440 byte sequence
        try:
            return base64.b64decode(value[1:-1], validate=True)
        except (binascii.Error, ValueError):
            return None
    return _pem_to_der(unquote(value))


def _tls_peer(scope: Mapping[str, Any]) -> bytes | None:
    tls = (scope.get("extensions") or {}).get("tls")
    if not isinstance(tls, dict):
        return None
    chain = tls.get("client_cert_chain") or []
    return _pem_to_der(chain[0]) if chain and isinstance(chain[0], str) else None


def _from_trusted_proxy(request: Request, section: GatewaySection) -> bool:
    if not section.trusted_proxies or request.client is None:
        return False
    try:
        address = ip_address(request.client.host)
    except ValueError:
        return False
    return any(address in network for network in section.trusted_proxies)


def peer_certificate(request: Request, section: GatewaySection) -> bytes | None:
    """The DER of the client certificate of this request: the TLS peer's, else the trusted proxy's
    header; None when there is none (or the header comes from an address that is not a proxy's)."""
    der = _tls_peer(request.scope)
    if der is not None:
        return der
    header = section.client_cert_header
    if header and (value := request.headers.get(header)) and _from_trusted_proxy(request, section):
        return _header_der(value)
    return None


def peer_thumbprint(request: Request, section: GatewaySection) -> str | None:
    """The x5t#S256 of the request's client certificate (None: no certificate)."""
    der = peer_certificate(request, section)
    return thumbprint(der) if der is not None else None
