"""The registry's errors, each with a stable problem code (``invalid_client`` is
:class:`shared.clients.InvalidClientError`, ``agency_inactive`` :class:`shared.errors.AgencyInactiveError`)."""

from shared.errors import (
    ConflictError,
    NotFoundError,
    UnauthorizedError,
    UnprocessableError,
)


class AgencyNotFoundError(NotFoundError):
    code, title = "agency_not_found", "Agency not found"


class AgencyExistsError(ConflictError):
    code, title = "agency_exists", "An agency with this code already exists"


class ParentAgencyNotFoundError(NotFoundError):
    code, title = "parent_agency_not_found", "Parent agency not found"


class AgencyLevelUnknownError(UnprocessableError):
    code, title = "agency_level_unknown", "Unknown agency level"


class AgencyLevelExistsError(ConflictError):
    code, title = "agency_level_exists", "This level exists already"


class HierarchyCycleError(ConflictError):
    code, title = "hierarchy_cycle", "An agency cannot be placed under itself or its own descendants"


class SuccessorInvalidError(UnprocessableError):
    code, title = "successor_invalid", "The successor must be another, active agency"


class ClientNotFoundError(NotFoundError):
    code, title = "client_not_found", "API client not found"


class GroupNotFoundError(NotFoundError):
    code, title = "group_not_found", "Recipient group not found"


class GroupExistsError(ConflictError):
    code, title = "group_exists", "A group with this name exists already"


class GroupInvalidError(UnprocessableError):
    code, title = "group_invalid", "The group definition is not valid"


class CertificateInvalidError(UnprocessableError):
    code, title = "certificate_invalid", "The certificate cannot be read"


class CertificateExistsError(ConflictError):
    code, title = "certificate_exists", "This certificate is registered for the agency already"


class CertificateNotFoundError(NotFoundError):
    code, title = "certificate_not_found", "Certificate not found"


class ClientCertificateExistsError(ConflictError):
    code, title = "client_certificate_exists", "This certificate identifies an API client already"


class ClientCertificateNotFoundError(NotFoundError):
    code, title = "client_certificate_not_found", "No such certificate is registered for this API client"


class ImportInvalidError(UnprocessableError):
    code, title = "import_invalid", "The import file is not valid; nothing was written"


class AmqpNeedsBrokerError(UnprocessableError):
    code, title = "amqp_needs_broker", "AMQP delivery needs RabbitMQ"


class UserNotFoundError(NotFoundError):
    code, title = "user_not_found", "User not found"


class UserExistsError(ConflictError):
    code, title = "user_exists", "A user with this name exists already"


class UserCredentialsInvalidError(UnauthorizedError):
    """Unknown user, wrong password, or disabled user: the registry does not say which."""

    code, title = "user_credentials_invalid", "Wrong user name or password"
