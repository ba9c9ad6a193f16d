"""The signature service's errors, each with a stable problem code."""

from __future__ import annotations

from shared.errors import BadRequestError, ConflictError, NotFoundError, UnprocessableError


class DocumentUnreadableError(UnprocessableError):
    code, title = "document_unreadable", "The file cannot be read"


class FileUnreadableError(UnprocessableError):
    code, title = "file_unreadable", "The file is not in a signature format this service reads"


class DocumentEncryptedError(UnprocessableError):
    code, title = "document_encrypted", "The document is encrypted"


class SignatureUnreadableError(UnprocessableError):
    code, title = "signature_unreadable", "The signature cannot be read"


class SignatureNotFoundError(UnprocessableError):
    code, title = "signature_not_found", "The file carries no signature"


class SignedFileMissingError(UnprocessableError):
    code, title = "signed_file_missing", "A detached signature needs the signed file"


class VerificationTimeoutError(UnprocessableError):
    code, title = "verification_timeout", "The verification took too long and was given up"


class UploadInvalidError(BadRequestError):
    code, title = "upload_invalid", "The upload is not a valid multipart form"


class TrustItemInvalidError(UnprocessableError):
    code, title = "trust_item_invalid", "This is not a usable certificate or CRL"


class TrustItemExistsError(ConflictError):
    code, title = "trust_item_exists", "This certificate or CRL is in the trust store already"


class TrustItemNotFoundError(NotFoundError):
    code, title = "trust_item_not_found", "No such certificate or CRL in the trust store"


REFUSALS: dict[str, type[UnprocessableError]] = {
    "document_unreadable": DocumentUnreadableError,
    "file_unreadable": FileUnreadableError,
    "document_encrypted": DocumentEncryptedError,
    "signature_unreadable": SignatureUnreadableError,
    "signature_not_found": SignatureNotFoundError,
    "signed_file_missing": SignedFileMissingError,
}
"""The engine's refusal codes and the errors that answer them."""
