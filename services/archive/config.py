"""The archive's settings: ``LIENTHONG_ARCHIVE__*``."""

from __future__ import annotations

from shared.config import DEFAULT_PORTS, ServiceSection


class ArchiveSection(ServiceSection):
    """Where the archive runs."""

    url: str = f"http://127.0.0.1:{DEFAULT_PORTS['archive']}"
