"""Roles: the named scope sets an API client is issued with, defined once here (the table in
docs/security.md, "Roles and scopes", says the same), and the dependency a route uses when more
than one role may call it.

A client acts for the agency it was issued for and only as it: nothing in a request names the
agency a caller acts as; every route takes it from the token (``shared.auth.agency_of``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from fastapi import Depends

from shared.auth import Principal, PrincipalDep, Scope
from shared.errors import ForbiddenError


class Role(StrEnum):
    """The roles a client may be issued with (``POST /v1/agencies/{code}/clients {"role": …}``)."""

    AGENCY = "agency"
    """An agency's document system: sends, receives, searches what its agency sent or holds."""
    REGISTRY_ADMIN = "registry_admin"
    """The province IT office: the directory, clients, endpoints, trust store, failed transfers."""
    AUDITOR = "auditor"
    """Reads the audit trail and every document's and delivery's metadata, never content."""
    STATISTICS = "statistics"
    """Reads aggregates only, never a document: the statistics API (``/v1/statistics/...``), nothing else."""


ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.AGENCY: frozenset(Scope.AGENCY_DEFAULT),
    Role.REGISTRY_ADMIN: frozenset({Scope.REGISTRY_ADMIN}),
    Role.AUDITOR: frozenset({Scope.AUDIT}),
    Role.STATISTICS: frozenset({Scope.STATS}),
}

DIRECTORY_READERS = (Scope.SEND, Scope.RECEIVE, Scope.SEARCH, Scope.REGISTRY_ADMIN, Scope.AUDIT, Scope.INTERNAL)
"""Who reads the directory (agencies, levels, groups, certificates): every role but the statistics
reader, and the services themselves (``internal``)."""


AGENCY_OR_ADMIN = (Scope.SEND, Scope.RECEIVE, Scope.SEARCH, Scope.REGISTRY_ADMIN)
"""Who reads an agency's own settings (its clients, delivery endpoint, history): the registry admin,
any agency; an agency system, its own agency's."""


VERIFIERS = (Scope.SEND, Scope.RECEIVE, Scope.SEARCH, Scope.REGISTRY_ADMIN, Scope.AUDIT)
"""Who may have a file's signatures verified (``POST /v1/signatures/verify``): every role but the
statistics reader."""


def scopes_of(role: Role) -> list[str]:
    """Return a role's scopes, sorted."""
    return sorted(ROLE_SCOPES[role])


def role_of(scopes: list[str] | tuple[str, ...] | frozenset[str]) -> Role | None:
    """Return the role whose scope set holds all of ``scopes`` (a client may hold a narrowed role,
    e.g. an agency system that only receives); None when they mix roles or are empty."""
    wanted = frozenset(scopes)
    if not wanted:
        return None
    for role, allowed in ROLE_SCOPES.items():
        if wanted <= allowed:
            return role
    return None


def require_any_scope(*scopes: str) -> Any:
    """Return a dependency that requires a valid token holding at least one of ``scopes``."""

    async def dependency(principal: PrincipalDep) -> Principal:
        if principal.scopes.isdisjoint(scopes):
            raise ForbiddenError(
                f"This call needs one of the scopes {list(scopes)}", required_scope=scopes[0], any_of=list(scopes)
            )
        return principal

    return Depends(dependency)
