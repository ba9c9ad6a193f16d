"""What an app owns while it runs, reached from a request through one typed accessor.

Every LienThong app (each service and the gateway) keeps exactly one object on ``app.state``: its
runtime, built by its ``create_app`` and started by its lifespan. Dependencies reach it with
:func:`runtime_of`, which checks its type; nothing else reads ``app.state``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from fastapi import FastAPI, Request

if TYPE_CHECKING:
    from shared.auth import TokenVerifier
    from shared.db import Database
    from shared.observability import Metrics, Operations

R = TypeVar("R", bound="AppRuntime")


class AppRuntime:
    """The part every runtime has: a name, the token verifier, and (for services) a database."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.verifier: TokenVerifier | None = None
        self.database: Database | None = None
        self.operations: Operations | None = None  # what its /health, /ready and /metrics answer from
        self.request_metrics: Metrics | None = None  # what its requests are counted in (``instrument``)

    @property
    def db(self) -> Database:
        if self.database is None:
            raise RuntimeError(f"{self.name} has no database, or is not started")
        return self.database

    @property
    def token_verifier(self) -> TokenVerifier:
        if self.verifier is None:
            raise RuntimeError(f"{self.name} is not started: no token verifier yet")
        return self.verifier


def attach_runtime(app: FastAPI, runtime: AppRuntime) -> None:
    """Make ``runtime`` the app's runtime (done once, by ``create_app``)."""
    app.state.runtime = runtime


def app_runtime(app: FastAPI, kind: type[R]) -> R:
    """Return an app's runtime, checked to be a ``kind``."""
    runtime = getattr(app.state, "runtime", None)
    if not isinstance(runtime, kind):
        raise RuntimeError(f"{app.title} has no {kind.__name__} (got {type(runtime).__name__})")
    return runtime


def runtime_of(request: Request, kind: type[R]) -> R:
    """Return the runtime of the app serving ``request``, checked to be a ``kind``."""
    return app_runtime(request.app, kind)
