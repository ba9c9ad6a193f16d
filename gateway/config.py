"""The gateway's settings: ``LIENTHONG_GATEWAY__*``."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

from pydantic import BaseModel, Field

from shared.config import DEFAULT_PORTS


class GatewaySection(BaseModel):
    """Where the gateway listens, its tokens, and how long it waits for and trusts the services."""

    url: str = f"http://127.0.0.1:{DEFAULT_PORTS['gateway']}"
    workers: int = Field(default=1, ge=1, le=64, description="processes answering on the gateway's port")
    token_ttl_seconds: int = Field(default=900, gt=0, le=86400, description="access token lifetime")
    service_timeout_seconds: float = Field(default=30.0, gt=0, description="a proxied call to a service")
    upstream_keepalive_seconds: float = Field(
        default=4.0,
        gt=0,
        description="an idle pooled connection to a service kept this long: below the services' own keep-alive"
        " (uvicorn's 5 s), so that the gateway never reuses one a service is closing",
    )
    ready_timeout_seconds: float = Field(default=5.0, gt=0, description="each service's /ready, from /ready")
    credential_cache_seconds: float = Field(
        default=30.0, ge=0, description="a client's status kept this long (revocation events empty it sooner)"
    )
    tls_cert_file: Path | None = Field(
        default=None, description="serve the gateway over HTTPS with this certificate (PEM; chain after it)"
    )
    tls_key_file: Path | None = Field(default=None, description="the private key of tls_cert_file (PEM)")
    tls_client_ca_file: Path | None = Field(
        default=None,
        description="CA certificates of the agency systems' client certificates: with it the gateway asks for a"
        " client certificate (optional: clients with secrets send none) for mutual TLS (docs/security.md)",
    )
    client_cert_header: str | None = Field(
        default=None,
        description="the header in which a TLS-terminating proxy passes the client certificate it verified"
        " (e.g. X-Client-Cert, or Client-Cert of RFC 9440); off by default, honoured from trusted_proxies only",
    )
    trusted_proxies: list[IPv4Network | IPv6Network] = Field(
        default_factory=list, description="addresses of the proxies whose client_cert_header is believed"
    )
