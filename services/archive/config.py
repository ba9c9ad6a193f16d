"""The archive's settings: ``LIENTHONG_ARCHIVE__*``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.config import DEFAULT_PORTS, ServiceSection


class ArchiveSection(ServiceSection):
    """Where the archive runs, how it takes the documents' events, and how it builds its index."""

    url: str = f"http://127.0.0.1:{DEFAULT_PORTS['archive']}"
    batch_size: int = Field(
        default=64, ge=1, le=1000, description="exchange events recorded in one transaction at most"
    )
    batch_linger_seconds: float = Field(
        default=0.25,
        ge=0,
        le=5,
        description="how long a batch waits for more events after its first arrived (and the text enricher, once "
        "woken, for more records to claim together)",
    )
    index_dir: Path | None = Field(
        default=None, description="where each replica keeps its Tantivy index (default: <var_dir>/archive-index)"
    )
    files_dir: Path | None = Field(
        default=None, description="where digitised records' scans are kept (default: <var_dir>/archive-files)"
    )
    index_commit_seconds: float = Field(
        default=0.5, gt=0, le=30, description="how often the index takes the records changed since its last commit"
    )
    index_commit_max_seconds: float | None = Field(
        default=None,
        gt=0,
        le=120,
        description=(
            "how often while records change faster than 20 a second: each commit then holds more of"
            " them (default: four times index_commit_seconds; never below it)"
        ),
    )
    index_heap_mb: int = Field(default=64, ge=15, le=4096, description="the index writer's memory budget")
    extract_text: bool = Field(
        default=True,
        description="extract the attachments' text and index it (off: documents are found by their metadata only)",
    )
    extract_timeout_seconds: float = Field(
        default=60, gt=0, le=3600, description="the longest one attachment's text extraction (OCR included) may run"
    )
    extract_memory_mb: int = Field(
        default=768, ge=64, le=16384, description="the address space an extraction process may use"
    )
    extract_max_bytes: int = Field(
        default=50 * 1024 * 1024, ge=1024, description="attachments larger than this are not read for text"
    )
    max_text_chars: int = Field(
        default=200_000, ge=1000, le=10_000_000, description="text kept and indexed per record at most"
    )
    ocr_languages: str = Field(default="vie", description="Tesseract languages for scans without a text layer")
