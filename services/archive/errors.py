"""The archive's errors (problem+json codes under ``archive_*``)."""

from __future__ import annotations

from shared.errors import (
    BadRequestError,
    LienThongError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)


class ArchiveRecordNotFoundError(NotFoundError):
    code, title = "archive_record_not_found", "Archive record not found"


class ArchiveQueryInvalidError(BadRequestError):
    code, title = "archive_query_invalid", "The search query is not valid"


class ArchiveFilterInvalidError(BadRequestError):
    code, title = "archive_filter_invalid", "A search filter is not valid"


class ArchiveFileInvalidError(UnsupportedMediaTypeError):
    code, title = "archive_file_invalid", "The file is not a scan the archive accepts"


class ArchiveFileTooLargeError(PayloadTooLargeError):
    code, title = "archive_file_too_large", "The file is too large"


class ArchiveMetadataInvalidError(BadRequestError):
    status = 422
    code, title = "archive_metadata_invalid", "The record's metadata is not valid"


class ArchiveFileUnreadableError(LienThongError):
    status, code, title = 422, "archive_file_unreadable", "The scan cannot be read"
