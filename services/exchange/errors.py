"""Exchange errors, each with a stable problem code."""

from shared.errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    UnprocessableError,
    UnsupportedMediaTypeError,
)


class DocumentNotFoundError(NotFoundError):
    code, title = "document_not_found", "Document not found"


class DeliveryNotFoundError(NotFoundError):
    code, title = "delivery_not_found", "Delivery not found"


class AttachmentNotFoundError(NotFoundError):
    code, title = "attachment_not_found", "Attachment not found"


class RecipientInvalidError(UnprocessableError):
    code, title = "recipient_invalid", "A recipient cannot receive documents"


class MetadataInvalidError(UnprocessableError):
    code, title = "metadata_invalid", "The document metadata is not valid"


class AttachmentMissingError(BadRequestError):
    code, title = "attachment_missing", "A document needs at least one attachment"


class AttachmentTypeNotAllowedError(UnsupportedMediaTypeError):
    code, title = "attachment_type_not_allowed", "This kind of file is not accepted"


class AttachmentArchiveUnsafeError(UnprocessableError):
    code, title = "attachment_archive_unsafe", "An attachment is an archive past the decompression limits"


class DeliveryTransitionError(ConflictError):
    code, title = "delivery_transition_invalid", "This status cannot follow the delivery's current status"


class DocumentClassifiedError(UnprocessableError):
    code, title = "document_classified", "State-secret documents are not exchanged here"


class DocumentDuplicateError(ConflictError):
    code, title = "document_duplicate", "This number and notation was already sent this year"


class RelationInvalidError(ConflictError):
    code, title = "relation_invalid", "This document cannot be updated or replaced"


class RecallInvalidError(ConflictError):
    code, title = "recall_invalid", "Nothing to recall"


class IdempotencyKeyReusedError(UnprocessableError):
    code, title = "idempotency_key_reused", "This key (or sender document id) was used for another request"


class TransferFailureNotFoundError(NotFoundError):
    code, title = "transfer_failure_not_found", "Failed transfer not found"


class SignatureRequiredError(UnprocessableError):
    code, title = "signature_required", "Documents of this type need a valid signature on their main file"


class SignatureNotCheckableError(ConflictError):
    code, title = "signature_not_checkable", "The document has no file whose signatures could be verified"


class StatisticsRangeInvalidError(UnprocessableError):
    code, title = "statistics_range_invalid", "The months asked for do not form a valid range"


class StatisticsAgencyNotFoundError(NotFoundError):
    code, title = "statistics_agency_not_found", "The directory has no such agency"


class StatisticsLevelNotFoundError(NotFoundError):
    code, title = "statistics_level_not_found", "The directory has no such administrative level"


class PacketSenderMismatchError(ForbiddenError):
    """An edXML packet's From is another agency than the caller's: an agency sends only as itself."""

    code, title = "packet_sender_mismatch", "The packet is not from your agency"
