"""The signature service's settings: ``LIENTHONG_SIGNATURE__*``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.config import DEFAULT_PORTS, ServiceSection


class SignatureSection(ServiceSection):
    """Where the signature service runs, its limits, its verification pool and revocation policy."""

    url: str = f"http://127.0.0.1:{DEFAULT_PORTS['signature']}"
    max_upload_bytes: int = Field(
        default=50 * 1024 * 1024, gt=0, description="the largest file (and signed file) a verification accepts"
    )
    verify_workers: int | None = Field(
        default=None, ge=1, le=256, description="processes verifying signatures (default: the machine's CPU count)"
    )
    verify_timeout_seconds: float = Field(
        default=30.0, gt=0, description="the longest one verification may take before it is given up (422)"
    )
    revocation_mode: Literal["soft-fail", "hard-fail"] = Field(
        default="soft-fail",
        description="soft-fail: unreachable revocation information is noted and tolerated; hard-fail: it makes "
        "the verdict indeterminate",
    )
    fetch_revocation: bool = Field(
        default=False,
        description="fetch CRLs from the certificates' distribution points and ask their OCSP responders",
    )
    fetch_timeout_seconds: float = Field(default=5.0, gt=0, le=60, description="timeout of each revocation fetch")
    result_cache_size: int = Field(default=1000, ge=0, description="verification results kept in memory")
    registry_cache_seconds: float = Field(
        default=60.0, ge=0, description="how long the registry's certificate lists are kept (events empty it)"
    )
