"""Registry errors, each with a stable problem code."""

from shared.errors import ConflictError, ForbiddenError, NotFoundError, UnauthorizedError


class AgencyNotFoundError(NotFoundError):
    code, title = "agency_not_found", "Agency not found"


class AgencyExistsError(ConflictError):
    code, title = "agency_exists", "An agency with this code already exists"


class ParentAgencyNotFoundError(NotFoundError):
    code, title = "parent_agency_not_found", "Parent agency not found"


class ClientCredentialsInvalidError(UnauthorizedError):
    code, title = "invalid_client", "Client authentication failed"


class AgencyInactiveError(ForbiddenError):
    code, title = "agency_inactive", "The agency is not active"
