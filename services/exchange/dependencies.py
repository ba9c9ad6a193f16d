"""FastAPI dependencies of the exchange."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.exchange.blobstore import BlobStore
from services.exchange.calendar import WorkingCalendar
from services.exchange.document.service import DocumentService
from services.exchange.registry_client import RegistryClient
from shared.db import SessionDep
from shared.service import ServiceRuntime


def _blobs(request: Request) -> BlobStore:
    blobs: BlobStore = request.app.state.blobs
    return blobs


def _registry(request: Request) -> RegistryClient:
    runtime: ServiceRuntime = request.app.state.runtime
    return RegistryClient(runtime.client("registry"), request.app.state.directory_cache)


def _documents(request: Request, session: SessionDep) -> DocumentService:
    calendar: WorkingCalendar = request.app.state.calendar
    return DocumentService(session, calendar)


BlobsDep = Annotated[BlobStore, Depends(_blobs)]
DocumentsDep = Annotated[DocumentService, Depends(_documents)]
RegistryDep = Annotated[RegistryClient, Depends(_registry)]
