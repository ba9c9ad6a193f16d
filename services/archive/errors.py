"""The archive's errors (problem+json codes under ``archive_*``)."""

from __future__ import annotations

from shared.errors import NotFoundError


class ArchiveRecordNotFoundError(NotFoundError):
    code, title = "archive_record_not_found", "Archive record not found"
