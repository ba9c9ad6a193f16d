"""The scans of digitised records: kept by content hash under the archive's files directory,
their kind read from their first bytes (never from the uploader's label)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from services.archive.errors import ArchiveFileInvalidError
from shared.blobs import sync_directory

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
        created = [directory for directory in (files_dir, target.parent) if not directory.exists()]
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        for directory in {target.parent, *(new.parent for new in created)}:
            sync_directory(directory)
    return sha256
