"""Typed settings for every LienThong process, read from ``LIENTHONG_*`` environment variables.

Nested sections use ``__``: ``LIENTHONG_REGISTRY__DATABASE_URL``, ``LIENTHONG_AUTH__PUBLIC_KEY_FILE``.
Settings are validated when a process starts, so a wrong value stops it with a clear message.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE_NAMES = ("registry", "exchange", "signature", "archive")
ServiceName = Literal["registry", "exchange", "signature", "archive"]

DEFAULT_PORTS: dict[str, int] = {
    "gateway": 8000,
    "registry": 8001,
    "exchange": 8002,
    "signature": 8003,
    "archive": 8004,
    "hub": 8005,  # the hub connector (not a service others call: health, ready and metrics only)
    "hub_double": 8009,  # the national hub's stand-in beside `lienthong up` when no hub is configured
}


def check_database_url(value: str | None) -> str | None:
    if not value:  # unset, or set to "" in the environment
        return None
    if value is not None and not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        raise ValueError("database_url must start with postgresql+asyncpg:// or sqlite+aiosqlite://")
    return value


class ServiceSection(BaseModel):
    """Where a service is reached and where it keeps its data."""

    url: str = ""
    database_url: str | None = None
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="processes answering on the service's port (production topology; each runs the service's"
        " consumers and outbox relay like a replica); about one per core the service may use",
    )

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str | None) -> str | None:
        return check_database_url(value)


class HttpSection(BaseModel):
    """The pooled HTTP clients between services (and from the gateway to them)."""

    timeout_seconds: float = Field(default=30.0, gt=0, description="a whole call to another service")
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    max_connections: int = Field(default=100, ge=1)
    max_keepalive_connections: int = Field(default=20, ge=0)


class OutboxSection(BaseModel):
    """The outbox relay of every service: how it polls, how it backs off, when a row counts as stuck."""

    poll_seconds: float = Field(default=2.0, gt=0, description="fallback poll when no commit wakes the relay")
    retry_initial_seconds: float = Field(default=0.5, gt=0, description="first wait after a failed publish")
    retry_max_seconds: float = Field(default=30.0, gt=0, description="the longest wait between two tries")
    stuck_after_attempts: int = Field(default=10, ge=1, description="tries after which a row is reported stuck")
    ready_max_lag_seconds: float = Field(
        default=60.0, gt=0, description="/ready fails when the oldest unpublished event is older than this"
    )
    retention_hours: float = Field(default=168.0, ge=0, description="published rows kept this long (0: forever)")


class WebhookSection(BaseModel):
    """Which webhook URLs an agency may register, and how a webhook call is made (shared/webhooks.py)."""

    allow_http: bool = Field(default=False, description="accept http:// webhook URLs (development: https elsewhere)")
    allowed_networks: list[IPv4Network | IPv6Network] = Field(
        default_factory=list,
        description="networks allowed although private, loopback or link-local (e.g. the province's own network)",
    )
    timeout_seconds: float = Field(default=10.0, gt=0, description="a whole webhook call")
    max_concurrent_per_agency: int = Field(default=4, ge=1, description="webhook calls in flight to one agency")


class AuthSection(BaseModel):
    """JWT keys: the gateway signs with the private key, every service verifies with the public key."""

    private_key_file: Path | None = None
    public_key_file: Path | None = None
    keyring_file: Path | None = Field(
        default=None,
        description="the other public keys that verify (previous and staged keys): jwt-keyring.json next to the"
        " public key by default (docs/security.md, Keys and rotation)",
    )
    jwks_url: str | None = Field(
        default=None,
        description="the gateway's JWKS, fetched by a service when a token names a key its files do not hold"
        " (production topology where the ring file is not mounted, e.g. Kubernetes); the gateway never uses it",
    )
    key_reload_seconds: float = Field(
        default=5.0, ge=0, description="an unknown key id reads the key files (and fetches the JWKS) at most this often"
    )
    jwks_max_age_seconds: float = Field(
        default=300.0, gt=0, description="the fetched JWKS is fetched again, in the background, when this old"
    )
    issuer: str = "lienthong-gateway"
    audience: str = "lienthong"
    secret_hash_time_cost: int = Field(default=3, ge=1, le=20)
    secret_hash_memory_kib: int = Field(default=65536, ge=8, le=4 * 1024 * 1024)


class LimitsSection(BaseModel):
    """Limits against hostile input (docs/security.md, "Hostile input"): request sizes, failed
    client authentication, archives opened by the services."""

    json_body_max_bytes: int = Field(
        default=1024 * 1024, gt=0, description="the largest request body of a route that takes JSON or a form"
    )
    upload_margin_bytes: int = Field(
        default=1024 * 1024, ge=0, description="metadata and multipart framing allowed on top of an upload's files"
    )
    header_max_bytes: int = Field(
        default=64 * 1024, ge=1024, description="the request line and all request headers together (431 beyond)"
    )
    auth_failures_per_client: int = Field(
        default=10, ge=1, description="failed token requests of one client id in the window before 429"
    )
    auth_failures_per_address: int = Field(
        default=100, ge=1, description="failed token requests from one source address in the window before 429"
    )
    auth_failure_window_seconds: float = Field(
        default=300.0, gt=0, description="how long a failed token request counts against its client id and address"
    )
    secret_verify_concurrency: int = Field(
        default=2, ge=1, le=64, description="argon2 secret verifications running at once (threads, off the event loop)"
    )
    zip_max_entries: int = Field(default=10_000, ge=1, description="entries of an archive the services open")
    zip_max_total_bytes: int = Field(
        default=512 * 1024 * 1024, gt=0, description="inflated bytes of all entries of an archive together"
    )
    zip_max_ratio: int = Field(default=200, ge=1, description="inflated / compressed size of one archive entry")


class CoreSettings(BaseSettings):
    """The settings every LienThong process shares. Each service adds its own section in its
    ``config.py``; ``services.settings.Settings`` puts them together."""

    model_config = SettingsConfigDict(
        env_prefix="LIENTHONG_", env_nested_delimiter="__", extra="ignore", validate_default=True
    )

    var_dir: Path = Path("var")
    database_url: str | None = None
    broker_url: str = "memory://"
    broker_prefix: str = Field(default="lienthong", pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    auto_migrate: bool = True
    sqlite_synchronous: Literal["FULL", "EXTRA", "NORMAL"] = Field(
        default="FULL",
        description=(
            "SQLite's synchronous level (embedded mode): FULL, a commit is on disk when it returns, power"
            " loss included; NORMAL keeps it through a crash of the process only"
        ),
    )
    database_pool_size: int = Field(
        default=20,
        ge=1,
        le=500,
        description=(
            "PostgreSQL connections each service process keeps open once used: at least its concurrent"
            " transactions (a connection beyond it is closed when returned, and opened again under load)"
        ),
    )
    database_max_overflow: int = Field(
        default=10, ge=0, le=500, description="connections a service process may open beyond the pool at a peak"
    )
    log_level: str = "INFO"
    log_json: bool = True

    relay_poll_seconds: float | None = Field(
        default=None, gt=0, description="deprecated: LIENTHONG_OUTBOX__POLL_SECONDS replaces it"
    )

    outbox: OutboxSection = OutboxSection()
    auth: AuthSection = AuthSection()
    http: HttpSection = HttpSection()
    webhooks: WebhookSection = WebhookSection()
    limits: LimitsSection = LimitsSection()

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str | None) -> str | None:
        return check_database_url(value)

    @field_validator("sqlite_synchronous", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value  # as SQLite reads it: full is FULL

    @model_validator(mode="after")
    def _deprecated_relay_poll(self) -> CoreSettings:
        if self.relay_poll_seconds is not None and "poll_seconds" not in self.outbox.model_fields_set:
            self.outbox = self.outbox.model_copy(update={"poll_seconds": self.relay_poll_seconds})
        return self

    @field_validator("broker_url")
    @classmethod
    def _known_broker(cls, value: str) -> str:
        if not value.startswith(("memory://", "amqp://", "amqps://")):
            raise ValueError("broker_url must be memory:// (in-process) or amqp(s)://user:pass@host:port/")
        return value

    def section(self, service: str) -> ServiceSection:
        """Return the settings section of one service."""
        section = getattr(self, service, None)
        if not isinstance(section, ServiceSection):
            raise KeyError(f"no settings section for service {service!r}")
        return section

    def database_url_for(self, service: str) -> str:
        """Return the database URL a service uses: its own, the shared one, or a SQLite file in var/."""
        own = self.section(service).database_url
        if own:
            return own
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.var_dir / f'{service}.db').as_posix()}"

    @property
    def uses_rabbitmq(self) -> bool:
        return self.broker_url.startswith("amqp")

    @property
    def private_key_file(self) -> Path:
        return self.auth.private_key_file or self.var_dir / "keys" / "jwt-private.pem"

    @property
    def public_key_file(self) -> Path:
        return self.auth.public_key_file or self.var_dir / "keys" / "jwt-public.pem"

    @property
    def keyring_file(self) -> Path:
        return self.auth.keyring_file or self.public_key_file.parent / "jwt-keyring.json"
