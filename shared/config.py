"""Typed settings for every LienThong process, read from ``LIENTHONG_*`` environment variables.

Nested sections use ``__``: ``LIENTHONG_REGISTRY__DATABASE_URL``, ``LIENTHONG_AUTH__PUBLIC_KEY_FILE``.
Settings are validated when a process starts, so a wrong value stops it with a clear message.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE_NAMES = ("registry", "exchange", "signature", "archive")
ServiceName = Literal["registry", "exchange", "signature", "archive"]

DEFAULT_PORTS: dict[str, int] = {
    "gateway": 8000,
    "registry": 8001,
    "exchange": 8002,
    "signature": 8003,
    "archive": 8004,
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

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str | None) -> str | None:
        return check_database_url(value)


class RegistrySection(ServiceSection):
    url: str = f"http://127.0.0.1:{DEFAULT_PORTS['registry']}"
    admin_client_id: str = "admin"
    admin_client_secret: SecretStr | None = None


class ExchangeSection(ServiceSection):
    url: str = f"http://127.0.0.1:{DEFAULT_PORTS['exchange']}"
    blob_dir: Path | None = None
    max_attachment_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    max_attachments: int = Field(default=50, gt=0, le=1000)
    timezone: str = "Asia/Ho_Chi_Minh"
    holidays: list[dt.date] = Field(
        default_factory=list, description='public holidays, e.g. LIENTHONG_EXCHANGE__HOLIDAYS=["2027-01-01"]'
    )


class SignatureSection(ServiceSection):
    url: str = f"http://127.0.0.1:{DEFAULT_PORTS['signature']}"


class ArchiveSection(ServiceSection):
    url: str = f"http://127.0.0.1:{DEFAULT_PORTS['archive']}"


class GatewaySection(BaseModel):
    url: str = f"http://127.0.0.1:{DEFAULT_PORTS['gateway']}"
    token_ttl_seconds: int = Field(default=900, gt=0, le=86400)
    service_timeout_seconds: float = Field(default=30.0, gt=0)


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


class AuthSection(BaseModel):
    """JWT keys: the gateway signs with the private key, every service verifies with the public key."""

    private_key_file: Path | None = None
    public_key_file: Path | None = None
    issuer: str = "lienthong-gateway"
    audience: str = "lienthong"
    secret_hash_time_cost: int = Field(default=3, ge=1, le=20)
    secret_hash_memory_kib: int = Field(default=65536, ge=8, le=4 * 1024 * 1024)


class Settings(BaseSettings):
    """All settings of one LienThong process."""

    model_config = SettingsConfigDict(
        env_prefix="LIENTHONG_", env_nested_delimiter="__", extra="ignore", validate_default=True
    )

    var_dir: Path = Path("var")
    database_url: str | None = None
    broker_url: str = "memory://"
    broker_prefix: str = Field(default="lienthong", pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    auto_migrate: bool = True
    log_level: str = "INFO"
    log_json: bool = True

    relay_poll_seconds: float | None = Field(
        default=None, gt=0, description="deprecated: LIENTHONG_OUTBOX__POLL_SECONDS replaces it"
    )

    outbox: OutboxSection = OutboxSection()
    auth: AuthSection = AuthSection()
    gateway: GatewaySection = GatewaySection()
    registry: RegistrySection = RegistrySection()
    exchange: ExchangeSection = ExchangeSection()
    signature: SignatureSection = SignatureSection()
    archive: ArchiveSection = ArchiveSection()

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str | None) -> str | None:
        return check_database_url(value)

    @model_validator(mode="after")
    def _deprecated_relay_poll(self) -> Settings:
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
        section: ServiceSection = getattr(self, service)
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
    def blob_dir(self) -> Path:
        return self.exchange.blob_dir or self.var_dir / "blobs"

    @property
    def private_key_file(self) -> Path:
        return self.auth.private_key_file or self.var_dir / "keys" / "jwt-private.pem"

    @property
    def public_key_file(self) -> Path:
        return self.auth.public_key_file or self.var_dir / "keys" / "jwt-public.pem"
