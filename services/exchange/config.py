"""The exchange's settings: ``LIENTHONG_EXCHANGE__*``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydantic import Field

from shared.config import DEFAULT_PORTS, ServiceSection


class ExchangeSection(ServiceSection):
    """Where the exchange runs, its attachment store and limits, and its working calendar."""

    url: str = f"http://127.0.0.1:{DEFAULT_PORTS['exchange']}"
    blob_dir: Path | None = Field(default=None, description="the attachment store (default: <var_dir>/blobs)")
    max_attachment_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    max_attachments: int = Field(default=50, gt=0, le=1000)
    timezone: str = "Asia/Ho_Chi_Minh"
    holidays: list[dt.date] = Field(
        default_factory=list, description='public holidays, e.g. LIENTHONG_EXCHANGE__HOLIDAYS=["2027-01-01"]'
    )
    directory_cache_seconds: float = Field(
        default=60.0, ge=0, description="registry answers kept this long (directory events empty them sooner)"
    )
