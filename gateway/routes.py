"""Which service answers which public path."""

from __future__ import annotations

ROUTES: tuple[tuple[str, str], ...] = (
    ("/v1/agencies", "registry"),
    ("/v1/agency-levels", "registry"),
    ("/v1/groups", "registry"),
    ("/v1/clients", "registry"),
    ("/v1/audit", "registry"),
    ("/v1/users", "registry"),
    ("/v1/documents", "exchange"),
    ("/v1/inbox", "exchange"),
    ("/v1/deliveries", "exchange"),
    ("/v1/feed", "exchange"),
    ("/v1/transfers", "exchange"),
    ("/v1/statistics", "exchange"),
    ("/v1/signatures", "signature"),
    ("/v1/archive", "archive"),
)


def service_for(path: str) -> str | None:
    """Return the service that serves ``path`` (None when no service does)."""
    for prefix, service in ROUTES:
        if path == prefix or path.startswith(prefix + "/"):
            return service
    return None
