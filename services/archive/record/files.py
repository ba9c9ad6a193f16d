"""The scans of digitised records: kept by content hash under the archive's files directory,
their kind read from their first bytes (never from the uploader's label)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from services.archive.errors import ArchiveFileInvalidError

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
    """Keep a scan (once per content) and return its SHA-256."""
    sha256 = hashlib.sha256(data).hexdigest()
    target = files_dir / sha256[:2] / sha256
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(temporary, target)
    return sha256
