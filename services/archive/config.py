"""The archive's settings: ``LIENTHONG_ARCHIVE__*``."""

from __future__ import annotations

from pydantic import Field

from shared.config import DEFAULT_PORTS, ServiceSection


class ArchiveSection(ServiceSection):
    """Where the archive runs, and how it takes the documents' events."""

    url: str = f"http://127.0.0.1:{DEFAULT_PORTS['archive']}"
    batch_size: int = Field(
        default=64, ge=1, le=1000, description="document.submitted.v1 events recorded in one transaction at most"
    )
    batch_linger_seconds: float = Field(
        default=0.05, ge=0, le=5, description="how long a batch waits for more events after its first arrived"
    )
