"""The hub connector's settings: ``LIENTHONG_HUB__*``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from shared.config import DEFAULT_PORTS, ServiceSection


class HubSection(ServiceSection):
    """Where the national hub is, who the province is there, and how the connector polls and retries."""

    url: str = f"http://127.0.0.1:{DEFAULT_PORTS['hub']}"
    enabled: bool = Field(default=True, description="run the hub connector (embedded: a task; topology: its process)")
    base_url: str | None = Field(
        default=None,
        description="the national hub's address; unset: a local hub double (embedded in `lienthong dev`,"
        " `lienthong hub-double` beside `lienthong up`)",
    )
    client_id: str = Field(default="lienthong", min_length=1, max_length=200, description="the province's hub account")
    client_secret: SecretStr | None = Field(default=None, description="its secret (unset: generated for the double)")
    province_group: str = Field(
        default="H10",
        pattern=r"^[A-Z][0-9]{2}$",
        description="the level-1 group of the province's codes (H10: …H10, H10.…): what the double routes to it"
        " (the default is the demo province's)",
    )
    poll_seconds: float = Field(default=10.0, gt=0, le=3600, description="how often the hub is asked for packets")
    timeout_seconds: float = Field(default=30.0, gt=0, le=600, description="one call to the hub")
    retry_schedule: list[float] | None = Field(
        default=None,
        max_length=30,
        description="seconds between tries of a sendEdoc"
        " (unset: the dispatcher's LIENTHONG_EXCHANGE__PUSH_RETRY_SCHEDULE)",
    )
    require_signature: bool = Field(
        default=True, description="refuse (updateStatus fail) a document packet from the hub without a valid signature"
    )
    seal_key_file: Path | None = Field(
        default=None,
        description="the province's seal key (PEM) packets are signed with (unset: one made under var/keys)",
    )
    seal_certificate_file: Path | None = Field(default=None, description="its certificate (PEM), put in X509Data")
    directory_sync_hours: float = Field(
        default=24.0,
        ge=0,
        description="how often the national directory is synced into the registry (0: only by command)",
    )
