"""Authorization dependencies of the registry."""

from __future__ import annotations

from typing import Annotated

from shared.auth import Principal, Scope, require_scope
from shared.errors import ForbiddenError

AdminDep = Annotated[Principal, require_scope(Scope.REGISTRY_ADMIN)]
InternalDep = Annotated[Principal, require_scope(Scope.INTERNAL)]


def require_admin_or_own(principal: Principal, agency_code: str) -> None:
    """Allow the registry admin, or a client of the agency itself."""
    if not principal.is_admin and principal.agency_code != agency_code:
        raise ForbiddenError("Only the registry admin or the agency itself may do this")
