"""The archive's runtime and the typed dependencies its routes get their services through."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import IO, Annotated

import httpx
from fastapi import Depends, Request

from services.archive.consumers import consumers
from services.archive.extractor import TextExtractor
from services.archive.indexer import IndexFeeder, TextEnricher, rebuild
from services.archive.models import messaging
from services.archive.record.repository import ArchiveRecordRepository
from services.archive.record.service import Reader, RecordService
from services.archive.search.index import ArchiveIndex, claim_slot
from services.archive.search.repository import SearchRepository
from services.archive.search.service import SearchService
from services.settings import Settings
from shared.auth import Principal, Scope
from shared.cache import TTLCache
from shared.clients import DIRECTORY_EVENTS, RegistryClient
from shared.db import SessionDep
from shared.messaging import Broker
from shared.runtime import runtime_of
from shared.service import Listener, ServiceRuntime

log = logging.getLogger("lienthong.archive")


class ArchiveRuntime(ServiceRuntime):
    """The archive's runtime: the shared parts, plus its index, its feeder and its text extraction."""

    def __init__(
        self,
        settings: Settings,
        *,
        broker: Broker | None = None,
        transports: dict[str, httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        super().__init__(
            "archive",
            settings,
            messaging,
            consumers=consumers(settings.archive, self._recorded),
            # the exchange's events come once, through the consumer's queue: its commit wakes the
            # index feeder and the text enricher (:meth:`_recorded`); another replica's records
            # reach this replica's index at the feeder's next look (``index_commit_seconds``)
            listeners=[Listener(DIRECTORY_EVENTS, self._directory_changed)],
            broker=broker,
            transports=transports,
        )
        self.config = settings.archive
        self.index_dir = self.config.index_dir or settings.var_dir / "archive-index"
        self.files_dir = self.config.files_dir or settings.var_dir / "archive-files"
        self.blob_dir = settings.blob_dir  # the exchange's store: read by hash when this process sees it
        self._index: ArchiveIndex | None = None
        self._slot_lock: IO[str] | None = None
        self._subtrees: TTLCache[str, list[str]] = TTLCache(60)
        self.feeder: IndexFeeder | None = None
        self.enricher: TextEnricher | None = None
        self.extractor = TextExtractor(
            timeout_seconds=self.config.extract_timeout_seconds,
            memory_mb=self.config.extract_memory_mb,
            languages=self.config.ocr_languages,
            max_chars=self.config.max_text_chars,
        )
        self.on_startup(self.open_index)
        self.on_startup(self.start_indexing)
        self.on_shutdown(self.extractor.shutdown)

    @property
    def index(self) -> ArchiveIndex:
        if self._index is None:
            raise RuntimeError("the archive is not started: no index yet")
        return self._index

    def registry(self) -> RegistryClient:
        return RegistryClient(self.client("registry"), self.internal_authorization)

    async def subtree(self, code: str) -> list[str] | None:
        """An agency and every agency below it, from the registry, kept a minute (emptied by the
        registry's directory events)."""
        if (cached := self._subtrees.get(code)) is not None:
            return cached
        codes = await self.registry().subtree(code)
        if codes is not None:
            self._subtrees.set(code, codes)
        return codes

    async def open_index(self) -> None:
        """Claim this replica's index slot; rebuild it from the records when it is missing, corrupt
        or of another schema version (before the service answers a single search)."""
        self.load_internal_issuer()
        path, lock = await asyncio.to_thread(claim_slot, self.index_dir)
        self._slot_lock = lock
        self.on_shutdown(self._release_slot)
        index = ArchiveIndex(path, heap_mb=self.config.index_heap_mb)
        if await asyncio.to_thread(index.is_complete):
            await asyncio.to_thread(index.open)
        else:
            log.info("archive index %s missing or unusable: rebuilding it from the records", path)
            count = await rebuild(index, self.db)
            log.info("archive index %s rebuilt: %d records", path, count)
        self._index = index

    async def _release_slot(self) -> None:
        if self._index is not None:
            await asyncio.to_thread(self._index.close)
            self._index = None
        if self._slot_lock is not None:
            self._slot_lock.close()
            self._slot_lock = None

    async def start_indexing(self) -> None:
        """Run the index feeder and the text extraction until the service stops."""
        self.feeder = feeder = IndexFeeder(
            self.index, self.db, self.config.index_commit_seconds, self.config.index_commit_max_seconds
        )
        await feeder.catch_up()
        self.enricher = TextEnricher(
            self.db,
            self.extractor,
            exchange=self.client("exchange"),
            authorization=self.internal_authorization,
            files_dir=self.files_dir,
            blob_dir=self.blob_dir,
            max_bytes=self.config.extract_max_bytes,
            max_chars=self.config.max_text_chars,
            changed=feeder.wake,
            linger=self.config.batch_linger_seconds,
        )
        tasks = [asyncio.create_task(feeder.run(), name="archive-index-feeder")]
        if self.config.extract_text:
            tasks.append(asyncio.create_task(self.enricher.run(), name="archive-text-enricher"))

        async def stop() -> None:
            feeder.stop()
            if self.enricher is not None:
                self.enricher.stop()
            for task in tasks:
                # cancel until done: on Python 3.11 asyncio.wait_for may swallow a cancellation
                # that arrives as its timeout fires (the loops also see their stop flag)
                while not task.done():
                    task.cancel()
                    await asyncio.wait({task}, timeout=0.5)
                with contextlib.suppress(asyncio.CancelledError):
                    task.result()

        self.on_shutdown(stop)

    def _recorded(self, waiting: int) -> None:
        """This replica's consumer committed its batch: records changed, ``waiting`` of them new and
        waiting for their text."""
        if self.feeder is not None:
            self.feeder.wake()
        if self.enricher is not None and waiting:
            self.enricher.wake(waiting)

    async def _directory_changed(self, _envelope: object) -> None:
        self._subtrees.clear()

    def changed(self) -> None:
        """A record changed through this replica's API: index it, and fill its text, soon."""
        if self.feeder is not None:
            self.feeder.wake()
        if self.enricher is not None:
            self.enricher.wake()


async def archive_runtime(request: Request) -> ArchiveRuntime:
    return runtime_of(request, ArchiveRuntime)


ArchiveRuntimeDep = Annotated[ArchiveRuntime, Depends(archive_runtime)]


async def record_service(session: SessionDep) -> RecordService:
    return RecordService(ArchiveRecordRepository(session))


async def search_service(session: SessionDep, runtime: ArchiveRuntimeDep) -> SearchService:
    return SearchService(runtime.index, SearchRepository(session), runtime.subtree)


def reader_of(principal: Principal) -> Reader:
    """An auditor (``audit:read``) reads every record; an agency, what it sent or still holds."""
    return Reader(principal.agency_code, auditor=Scope.AUDIT in principal.scopes)


RecordServiceDep = Annotated[RecordService, Depends(record_service)]
SearchServiceDep = Annotated[SearchService, Depends(search_service)]
