"""The exchange's runtime and the typed dependencies its routes get their services through."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.exchange.blobstore import BlobStore
from services.exchange.calendar import WorkingCalendar
from services.exchange.config import ExchangeSection
from services.exchange.document.service import DocumentService
from shared.clients import DirectoryCache, RegistryClient
from shared.db import SessionDep
from shared.runtime import runtime_of
from shared.service import ServiceRuntime


class ExchangeRuntime(ServiceRuntime):
    """The exchange's runtime: the shared parts, plus its blob store, calendar and directory cache."""

    config: ExchangeSection
    directory: DirectoryCache
    calendar: WorkingCalendar
    _blobs: BlobStore | None = None

    @property
    def blobs(self) -> BlobStore:
        if self._blobs is None:
            raise RuntimeError("the exchange is not started: no blob store yet")
        return self._blobs


def exchange_runtime(request: Request) -> ExchangeRuntime:
    return runtime_of(request, ExchangeRuntime)


ExchangeDep = Annotated[ExchangeRuntime, Depends(exchange_runtime)]


def _blobs(runtime: ExchangeDep) -> BlobStore:
    return runtime.blobs


def _registry(request: Request, runtime: ExchangeDep) -> RegistryClient:
    """The registry, asked on behalf of the calling agency (with its own token)."""
    authorization = request.headers.get("authorization", "")
    return RegistryClient(runtime.client("registry"), lambda: authorization, cache=runtime.directory)


def _documents(runtime: ExchangeDep, session: SessionDep) -> DocumentService:
    return DocumentService(session, runtime.calendar)


BlobsDep = Annotated[BlobStore, Depends(_blobs)]
DocumentsDep = Annotated[DocumentService, Depends(_documents)]
RegistryDep = Annotated[RegistryClient, Depends(_registry)]
