"""The signature service's settings: ``LIENTHONG_SIGNATURE__*``."""

from __future__ import annotations

from shared.config import DEFAULT_PORTS, ServiceSection


class SignatureSection(ServiceSection):
    """Where the signature service runs."""

    url: str = f"http://127.0.0.1:{DEFAULT_PORTS['signature']}"
