"""The scans of digitised records: kept by content hash under the archive's files directory,
their kind read from their first bytes (never from the uploader's label)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from services.archive.errors import ArchiveFileInvalidError
from shared.blobs import write_durably

PDF, PNG, JPEG, TIFF = "application/pdf", "image/png", "image/jpeg", "image/tiff"
ACCEPTED = "PDF, PNG, JPEG, TIFF"


def sniff(head: bytes) -> str:
    """The kind of a scan, from its first bytes; 415 for anything else."""
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return TIFF
    raise ArchiveFileInvalidError(f"The file is not a scan the archive accepts ({ACCEPTED}), read from its content")


def store(files_dir: Path, data: bytes) -> str:
    """Keep a scan (once per content) and return its SHA-256: its bytes, its name and a new
    directory's entry are on disk when it returns (the record naming it commits after)."""
    sha256 = hashlib.sha256(data).hexdigest()
    target = files_dir / sha256[:2] / sha256
    if not target.exists():
        write_durably(target, data, mode=0o600)  # as the exchange keeps its blobs: the owner only
    return sha256
