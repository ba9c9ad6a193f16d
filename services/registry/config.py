"""The registry's settings: ``LIENTHONG_REGISTRY__*``."""

from __future__ import annotations

from pydantic import Field, SecretStr

from shared.config import DEFAULT_PORTS, ServiceSection


class RegistrySection(ServiceSection):
    """Where the registry runs, its bootstrap admin, and its limits (import size, successor chains)."""

    url: str = f"http://127.0.0.1:{DEFAULT_PORTS['registry']}"
    admin_client_id: str = Field(default="admin", description="the bootstrap admin's client id")
    admin_client_secret: SecretStr | None = Field(
        default=None, description="the bootstrap admin's secret (generated into var/ by `make run` when unset)"
    )
    max_import_bytes: int = Field(default=20 * 1024 * 1024, gt=0, description="the largest import file accepted")
    import_batch_size: int = Field(
        default=200,
        ge=1,
        le=100_000,
        description="agencies an import writes per transaction (the writer is free for others between batches)",
    )
    max_successor_hops: int = Field(
        default=10,
        ge=1,
        le=100,
        description="agencies looked at along a retired agency's chain of successors (itself included)",
    )
    audit_anchor_seconds: float = Field(
        default=60.0,
        ge=0,
        description="how often the audit chain's head is signed when it moved (0: only every audit_anchor_entries)",
    )
    audit_anchor_entries: int = Field(
        default=1000, ge=1, description="the audit chain's head is also signed after this many entries"
    )
