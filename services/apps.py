"""Where each service's app factory lives, imported on demand: a process that serves one service
imports that service's code and nothing of the others' (nor the gateway's, nor the embedded mode's)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from fastapi import FastAPI

from shared.config import SERVICE_NAMES

AppFactory = Callable[..., FastAPI]

APP_MODULES = {name: f"services.{name}.app" for name in (*SERVICE_NAMES, "hub")}


def app_factory(service: str) -> AppFactory:
    """Return a service's ``create_app`` (KeyError for a name that is no service)."""
    factory: AppFactory = importlib.import_module(APP_MODULES[service]).create_app
    return factory
