"""The exchange's settings: ``LIENTHONG_EXCHANGE__*``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from services.exchange.calendar import parse_office_hours, read_calendar_file
from services.exchange.document.types import strict_document_type
from shared.config import DEFAULT_PORTS, ServiceSection

SignatureMode = Literal["require", "flag", "off"]


class ExchangeSection(ServiceSection):
    """Where the exchange runs, its attachment store and limits, and its working calendar."""

    url: str = f"http://127.0.0.1:{DEFAULT_PORTS['exchange']}"
    blob_dir: Path | None = Field(default=None, description="the attachment store (default: <var_dir>/blobs)")
    max_attachment_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    max_attachments: int = Field(default=50, gt=0, le=1000)
    timezone: str = "Asia/Ho_Chi_Minh"
    holidays: list[dt.date] = Field(
        default_factory=list,
        description='extra days off on top of the calendar, e.g. LIENTHONG_EXCHANGE__HOLIDAYS=["2027-01-01"]',
    )
    calendar_file: Path | None = Field(
        default=None,
        description='a TOML file of days off and make-up working days per year (docs/exchange.md, "Working'
        ' calendar"): the years it lists replace the national data shipped',
    )
    office_hours: str = Field(
        default="07:30-17:00", description="the office hours of a working day (HH:MM-HH:MM, local time)"
    )
    urgent_deadline_hours: float = Field(
        default=2.0,
        gt=0,
        le=80,
        description="an urgent document (Khẩn, Thượng khẩn, Hỏa tốc) is registered or returned within this"
        " many office hours of its arrival (Decree 30: at once)",
    )
    blob_sweep_interval_hours: float = Field(
        default=6.0, ge=0, description="how often unreferenced attachment blobs are deleted (0: never)"
    )
    blob_sync_process: bool = Field(
        default=True,
        description="an attachment held in memory is synced to disk by a process of the exchange's own, not a"
        " worker thread (which waits for the busy event loop's GIL after each system call)",
    )
    blob_grace_hours: float = Field(
        default=24.0,
        ge=1,
        description="an unreferenced blob is deleted only once this old (a document commits its blob before its row)",
    )
    directory_cache_seconds: float = Field(
        default=60.0, ge=0, description="registry answers kept this long (directory events empty them sooner)"
    )
    push_retry_schedule: list[float] = Field(
        default_factory=lambda: [10.0, 60.0, 300.0, 1800.0, 3600.0, 10800.0, 21600.0, 43200.0],
        min_length=0,
        max_length=30,
        description="seconds between tries of a webhook or bus delivery (default: 9 tries over about 22.6 h)",
    )
    feed_linger_seconds: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="a long poll woken by a new entry answers this much later, with the entries committed meanwhile"
        " (one page for a burst, not one each); and one carrying on from a long poll's page answered less than this"
        " ago, finding a page that is not full, waits until then (a page per linger under a steady stream)",
    )
    dispatch_prefetch: int = Field(default=64, ge=1, le=1000, description="feed entries delivered at once per process")
    dispatch_defer_seconds: float = Field(
        default=5.0, gt=0, description="wait of an entry put back because its agency has the most calls in flight"
    )
    statistics_refresh_seconds: float = Field(
        default=60.0, ge=0, description="how often the statistics' rollups count the new delivery history (0: never)"
    )
    statistics_settle_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="history younger than this is left for the next refresh (a transaction still open is not missed)",
    )

    seal_key_file: Path | None = Field(
        default=None,
        description="the province's seal key (PEM, RSA or EC) that signs the edXML packets the exchange writes"
        " (default: a self-signed key generated under <var_dir>/keys, for development)",
    )
    seal_certificate_file: Path | None = Field(
        default=None, description="the seal key's certificate (PEM; the chain may follow it), with seal_key_file"
    )
    max_packet_bytes: int = Field(
        default=64 * 1024 * 1024, gt=0, description="the largest edXML packet read or written (base64 attachments in)"
    )

    signature_policy: dict[str, SignatureMode] = Field(
        default_factory=dict,
        description="per document type (its name or abbreviation): 'require' a valid signature on the main file"
        " (a send without one is refused), 'flag' (verified just after the send, the verdict shown), or 'off';"
        ' e.g. LIENTHONG_EXCHANGE__SIGNATURE_POLICY=\'{"QĐ": "require", "Công văn": "flag"}\'',
    )
    signature_policy_default: SignatureMode = Field(
        default="flag", description="the policy of the document types signature_policy does not name"
    )
    signature_timeout_seconds: float = Field(
        default=60.0, gt=0, le=600, description="how long the exchange waits for the signature service's verdict"
    )
    signature_retry_schedule: list[float] = Field(
        default_factory=lambda: [5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0],
        max_length=30,
        description="seconds between tries of a flagged document's verification while the signature service is"
        " unavailable; after the last the verdict is indeterminate",
    )

    @field_validator("calendar_file")
    @classmethod
    def _readable_calendar(cls, value: Path | None) -> Path | None:
        if value is not None:
            read_calendar_file(value)  # refuse a bad file at start, naming the problem
        return value

    @field_validator("office_hours")
    @classmethod
    def _office_hours(cls, value: str) -> str:
        parse_office_hours(value)
        return value

    @field_validator("signature_policy")
    @classmethod
    def _known_types(cls, value: dict[str, SignatureMode]) -> dict[str, SignatureMode]:
        """Keys are document types by name or abbreviation; kept by their canonical name."""
        policy: dict[str, SignatureMode] = {}
        for key, mode in value.items():
            try:
                policy[strict_document_type(key)[1]] = mode
            except ValueError as exc:
                raise ValueError(f"signature_policy: {key!r} is not a document type; {exc}") from exc
        return policy

    def signature_mode(self, type_name: str) -> SignatureMode:
        """The signature policy of a document type (by its canonical name)."""
        return self.signature_policy.get(type_name, self.signature_policy_default)

    @field_validator("push_retry_schedule", "signature_retry_schedule")
    @classmethod
    def _positive_delays(cls, value: list[float]) -> list[float]:
        if any(delay <= 0 for delay in value):
            raise ValueError("every retry delay must be positive")
        return value

    @model_validator(mode="after")
    def _seal_files_together(self) -> ExchangeSection:
        """The seal's key and certificate come together (or neither: a development seal is generated)."""
        if (self.seal_key_file is None) != (self.seal_certificate_file is None):
            raise ValueError("seal_key_file and seal_certificate_file are configured together, or neither")
        return self
