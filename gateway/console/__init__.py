"""The web console: server-rendered pages under ``/console`` for clerks, the province's admins and
its leaders, acting as the signed-in user's agency through the gateway's own API (docs/operations.md,
"The web console")."""

from gateway.console.router import router

__all__ = ["router"]
