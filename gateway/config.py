"""The gateway's settings: ``LIENTHONG_GATEWAY__*``."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator

from shared.config import DEFAULT_PORTS


class RateBucket(BaseModel):
    """One route class's token bucket: ``burst`` requests at once, refilled at ``per_second``."""

    per_second: float = Field(gt=0, description="requests per second, sustained")
    burst: int = Field(ge=1, description="requests at once (the bucket's size)")


BUCKET_DEFAULTS: dict[str, dict[str, float]] = {
    "token": {"per_second": 20, "burst": 200},  # per source address
    "send": {"per_second": 300, "burst": 600},
    "write": {"per_second": 100, "burst": 500},
    "read": {"per_second": 500, "burst": 1000},
    "search": {"per_second": 50, "burst": 200},
    "admin": {"per_second": 50, "burst": 500},
}


class RateLimitSection(BaseModel):
    """Rate limits per client (the token's ``sub``; the source address without a valid token) and
    route class, in each gateway process's memory (docs/security.md, "Limits and resilience").

    The defaults are far above what an agency's system does, the send benchmark included (about
    200 documents/s from one client): they stop a runaway client, not a busy morning. A class may be
    set in part (``LIENTHONG_GATEWAY__RATE_LIMITS__SEND__PER_SECOND=100``): the rest keeps its default."""

    enabled: bool = True
    token: RateBucket = RateBucket(**BUCKET_DEFAULTS["token"])
    send: RateBucket = RateBucket(**BUCKET_DEFAULTS["send"])
    write: RateBucket = RateBucket(**BUCKET_DEFAULTS["write"])
    read: RateBucket = RateBucket(**BUCKET_DEFAULTS["read"])
    search: RateBucket = RateBucket(**BUCKET_DEFAULTS["search"])
    admin: RateBucket = RateBucket(**BUCKET_DEFAULTS["admin"])
    max_keys: int = Field(
        default=100_000, ge=100, description="clients remembered per process; idle full buckets are forgotten first"
    )

    @model_validator(mode="before")
    @classmethod
    def _partial_buckets(cls, data: Any) -> Any:
        """A class given in part (one environment variable) keeps the default of the rest."""
        if isinstance(data, dict):
            data = dict(data)
            for name, defaults in BUCKET_DEFAULTS.items():
                if isinstance(data.get(name), dict):
                    data[name] = {**defaults, **data[name]}
        return data


class RouteTimeouts(BaseModel):
    """How long the proxy waits for a service to move, per route class (unset: the service timeout)."""

    send: float | None = Field(
        default=90.0, gt=0, description="a document send (above the exchange's signature wait, 60 s)"
    )
    write: float | None = Field(default=None, gt=0)
    read: float | None = Field(default=None, gt=0)
    search: float | None = Field(default=None, gt=0)
    admin: float | None = Field(default=300.0, gt=0, description="registry imports and other admin writes")


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
    rate_limits: RateLimitSection = RateLimitSection()
    timeouts: RouteTimeouts = RouteTimeouts()
    circuit_failures: int = Field(
        default=5, ge=1, description="failures in a row (unreachable, timed out) after which a service's circuit opens"
    )
    circuit_cooldown_seconds: float = Field(
        default=10.0, gt=0, description="how long an open circuit answers 503 at once before one probe goes through"
    )
    access_log: bool = Field(default=True, description="one structured log line per request")
    hsts_seconds: int = Field(
        default=31_536_000, ge=0, description="Strict-Transport-Security max-age on answers over TLS (0: none)"
    )
    forwarded_proto_trusted: bool = Field(
        default=False,
        description="take X-Forwarded-Proto: https as TLS (only behind a TLS-terminating proxy that sets it)",
    )
    console_session_seconds: int = Field(
        default=8 * 3600, gt=0, le=7 * 86400, description="a web console session's lifetime from its sign-in"
    )
