"""The exchange's runtime and the typed dependencies its routes get their services through."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

import httpx
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from services.exchange.blobstore import BlobStore, ReferenceCheck, SweepReport, sweep_unreferenced
from services.exchange.blobsync import BlobSyncer
from services.exchange.calendar import WorkingCalendar, read_calendar_file
from services.exchange.consumers import report_status_over_bus
from services.exchange.delivery.packets import StatusPacketService
from services.exchange.delivery.repository import DeliveryRepository
from services.exchange.delivery.service import DeliveryService
from services.exchange.document.packets import PacketService
from services.exchange.document.repository import DocumentRepository
from services.exchange.document.service import DocumentService
from services.exchange.feed.repository import FeedRepository
from services.exchange.feed.service import DispatchRule, FeedNotifier, FeedReader, FeedService
from services.exchange.feed.wakeup import FeedListener, listen_parameters, wake_after_commit
from services.exchange.models import messaging
from services.exchange.signatures.client import SignatureClient
from services.exchange.signatures.repository import SignatureRepository
from services.exchange.signatures.service import FlaggedVerifier, SignaturePolicy, SignatureService
from services.exchange.statistics.directory import DirectorySource
from services.exchange.statistics.metrics import BusinessMetrics
from services.exchange.statistics.repository import StatisticsRepository
from services.exchange.statistics.service import StatisticsRefresher, StatisticsService, utc_offset_minutes
from services.exchange.transfer.dispatcher import Dispatcher
from services.exchange.transfer.repository import TransferRepository
from services.exchange.transfer.service import TransferService
from services.settings import Settings
from shared.clients import DIRECTORY_EVENTS, DirectoryCache, RegistryClient
from shared.db import Database, SessionDep
from shared.http import tls_context
from shared.messaging import Broker, Envelope, RetryLater, RetryPolicy
from shared.runtime import runtime_of
from shared.safezip import ArchiveLimits
from shared.seal import Seal, province_seal
from shared.service import Consumer, Listener, ServiceRuntime, Worker
from shared.types import is_agency_code

log = logging.getLogger("lienthong.exchange.blobs")


class ExchangeRuntime(ServiceRuntime):
    """The exchange's runtime: the shared parts, plus its blob store, calendar and directory cache."""

    def __init__(
        self,
        settings: Settings,
        *,
        broker: Broker | None = None,
        transports: dict[str, httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        config = settings.exchange
        directory = DirectoryCache(config.directory_cache_seconds)
        statistics_directory = DirectorySource(
            lambda: self.client("registry"), self.internal_authorization, config.directory_cache_seconds
        )
        notifier = FeedNotifier()
        retry = RetryPolicy(tuple(config.push_retry_schedule), defer_seconds=config.dispatch_defer_seconds)
        super().__init__(
            "exchange",
            settings,
            messaging,
            listeners=[
                Listener(DIRECTORY_EVENTS, directory.on_event),
                Listener(DIRECTORY_EVENTS, statistics_directory.on_event),
                Listener(("agency.updated.v1",), self._endpoint_changed),
            ],
            consumers=[Consumer("status_reports", ("delivery.status_reported.v1",), self._status_reported)],
            workers=[
                Worker(
                    "dispatch",
                    ("feed.entry_added.v1",),
                    self._dispatch,
                    retry=retry,
                    on_dead=self._dispatch_failed,
                    prefetch=config.dispatch_prefetch,
                ),
                Worker(
                    "signature_checks",
                    ("document.signature_pending.v1",),
                    self._check_signature,
                    retry=RetryPolicy(tuple(config.signature_retry_schedule)),
                    on_dead=self._signature_check_failed,
                ),
            ],
            broker=broker,
            transports=transports,
        )
        self.config = config
        self.directory = directory
        self.statistics_directory = statistics_directory
        self._statistics_refresher: StatisticsRefresher | None = None
        self.business_metrics = BusinessMetrics(self.metrics.registry, self)
        self.feed_notifier = notifier
        self.feed_listener: FeedListener | None = None
        self._feed_rule: DispatchRule | None = None
        self.calendar = WorkingCalendar(
            config.holidays,
            config.timezone,
            years=read_calendar_file(config.calendar_file) if config.calendar_file else None,
            office_hours=config.office_hours,
            urgent_hours=config.urgent_deadline_hours,
        )
        self.blob_dir = settings.blob_dir
        self._blobs: BlobStore | None = None
        self._dispatcher: Dispatcher | None = None
        self._signatures: SignatureClient | None = None
        self._verifier: FlaggedVerifier | None = None
        self._seal: Seal | None = None

    @property
    def feed_rule(self) -> DispatchRule:
        """Which entries get a ``feed.entry_added.v1`` event (the dispatcher's registry client and cache)."""
        if self._feed_rule is None:
            raise RuntimeError("the exchange is not started: no dispatcher")
        return self._feed_rule

    def feed_service(self, session: AsyncSession) -> FeedService:
        return FeedService(FeedRepository(session), self.feed_rule)

    async def start_feed_wakeups(self) -> None:
        """Wake the long-polling readers when entries are committed: on PostgreSQL one LISTEN
        connection per process (the feed_entry trigger's NOTIFY), on SQLite the session's commit."""
        notifier = self.feed_notifier
        if self.db.is_sqlite:
            self.on_shutdown(_async(wake_after_commit(self.db, notifier.notify)))
            return
        listener = FeedListener(listen_parameters(self.db), notifier.notify, notifier.notify_all)
        listener.start()
        self.on_shutdown(listener.stop)
        self.feed_listener = listener

    @property
    def blobs(self) -> BlobStore:
        if self._blobs is None:
            raise RuntimeError("the exchange is not started: no blob store yet")
        return self._blobs

    async def open_dispatcher(self) -> None:
        """Load the key that signs the exchange's own calls to the registry, and open the webhook client."""
        settings = self.settings
        self.load_internal_issuer()
        http = httpx.AsyncClient(
            verify=tls_context(),
            follow_redirects=False,
            timeout=httpx.Timeout(settings.webhooks.timeout_seconds),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            headers={"User-Agent": "LienThong-webhooks/1", "Content-Type": "application/json"},
        )
        self.on_shutdown(http.aclose)
        self._dispatcher = Dispatcher(
            database=self.db,
            broker=self.current_broker,
            registry=RegistryClient(self.client("registry"), self.internal_authorization, cache=self.directory),
            webhooks=settings.webhooks,
            http=http,
        )
        registry = self._dispatcher.registry
        self._feed_rule = DispatchRule(registry.delivery_endpoint, registry.known_delivery_endpoint)
        self.on_shutdown(self._feed_rule.stop)
        self._signatures = SignatureClient(
            self.client("signature"), self.internal_authorization, self.config.signature_timeout_seconds
        )
        self._verifier = FlaggedVerifier(self.db, self.blobs.path, self._signatures)

    async def seal(self) -> Seal:
        """The key and certificate that sign the packets the exchange writes: configured, else
        generated under ``<var_dir>/keys`` at first use (development)."""
        if self._seal is None:
            self._seal = await asyncio.to_thread(self._load_seal)
        return self._seal

    def _load_seal(self) -> Seal:
        return province_seal(self.config.seal_key_file, self.config.seal_certificate_file, self.settings.var_dir)

    @property
    def signature_policy(self) -> SignaturePolicy:
        return SignaturePolicy(self.config, self._signatures)

    async def _check_signature(self, envelope: Envelope) -> None:
        if self._verifier is None:  # a message before start-up finished
            raise RetryLater("the exchange is starting", counts=False)
        await self._verifier.handle(envelope)

    async def _signature_check_failed(self, envelope: Envelope, reason: str) -> None:
        if self._verifier is None:
            raise RuntimeError("the exchange is starting")
        await self._verifier.on_dead(envelope, reason)

    def current_broker(self) -> Broker:
        if self.broker is None:
            raise RuntimeError("the exchange is not started: no broker")
        return self.broker

    async def _dispatch(self, envelope: Envelope) -> None:
        if self._dispatcher is None:  # a message before start-up finished
            raise RetryLater("the exchange is starting", counts=False)
        await self._dispatcher.handle(envelope)

    async def _status_reported(self, session: AsyncSession, envelope: Envelope) -> None:
        if self._dispatcher is None:
            raise RuntimeError("the exchange is starting")
        await report_status_over_bus(session, envelope, self._dispatcher.registry)

    async def _endpoint_changed(self, envelope: Envelope) -> None:
        if self._dispatcher is not None:
            await self._dispatcher.on_endpoint_changed(envelope)

    async def _dispatch_failed(self, envelope: Envelope, reason: str) -> None:
        if self._dispatcher is None:
            raise RuntimeError("the exchange is starting")
        await self._dispatcher.on_dead(envelope, reason)

    @property
    def statistics_refresher(self) -> StatisticsRefresher:
        if self._statistics_refresher is None:
            self._statistics_refresher = StatisticsRefresher(
                self.db, timezone=self.config.timezone, settle_seconds=self.config.statistics_settle_seconds
            )
        return self._statistics_refresher

    async def start_statistics_refresher(self) -> None:
        """Refresh the statistics' rollups every ``statistics_refresh_seconds`` (0: never) until the
        service stops; a failed refresh is logged and tried again at the next turn."""
        interval = self.config.statistics_refresh_seconds
        if interval <= 0:
            return
        task = asyncio.create_task(self._refresh_every(interval), name="exchange-statistics-refresh")

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        self.on_shutdown(stop)

    async def _refresh_every(self, interval: float) -> None:
        while True:
            try:
                report = await self.statistics_refresher.refresh()
                if report.changes:
                    log.info("statistics refreshed: %d change(s) into %d row(s)", report.changes, report.rows)
            except Exception:
                log.exception("statistics refresh failed; next try in %g s", interval)
            await asyncio.sleep(interval)

    async def refresh_metrics(self) -> None:
        """The outbox gauges, then the business gauges read from the rollups (on each scrape)."""
        await super().refresh_metrics()
        if self.database is not None:
            await self.business_metrics.refresh()

    def statistics_repository(self, session: AsyncSession) -> StatisticsRepository:
        return StatisticsRepository(
            session, timezone=self.config.timezone, utc_offset_minutes=utc_offset_minutes(self.config.timezone)
        )

    async def open_blob_store(self) -> None:
        """Open the attachment store, deleting what a killed process was uploading."""
        blobs = BlobStore(self.blob_dir, syncer=BlobSyncer() if self.config.blob_sync_process else None)
        await asyncio.to_thread(blobs.remove_abandoned_uploads)
        self._blobs = blobs
        self.on_shutdown(blobs.close)

    async def sweep_blobs(self) -> SweepReport:
        """Delete the blobs no attachment references, older than ``blob_grace_hours``; log what went."""
        report = await sweep_unreferenced(
            self.blobs,
            attachment_references(self.db),
            grace_seconds=self.config.blob_grace_hours * 3600,
            apply=True,
        )
        log.info(
            "blob sweep: %d blob(s) scanned, %d unreferenced deleted, %d bytes freed "
            "(%d referenced, %d younger than %g h kept)",
            report.scanned,
            report.deleted,
            report.freed_bytes,
            report.referenced,
            report.young,
            self.config.blob_grace_hours,
        )
        return report

    async def start_blob_sweeper(self) -> None:
        """Sweep the blob store every ``blob_sweep_interval_hours`` (0: never) until the service stops."""
        interval = self.config.blob_sweep_interval_hours * 3600
        if interval <= 0:
            log.info("blob sweep disabled (LIENTHONG_EXCHANGE__BLOB_SWEEP_INTERVAL_HOURS=0)")
            return
        task = asyncio.create_task(self._sweep_every(interval), name="exchange-blob-sweep")

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        self.on_shutdown(stop)

    async def _sweep_every(self, interval: float) -> None:
        """Sweep now and then: the first time after a random part of the interval (replicas and
        restarts spread out), then once per interval; a failed sweep is logged and tried again."""
        delay = interval * random.uniform(0.5, 1.0)
        while True:
            await asyncio.sleep(delay)
            delay = interval
            try:
                await self.sweep_blobs()
            except Exception:
                log.exception("blob sweep failed; next try in %g h", interval / 3600)


def _async(call: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        call()

    return run


def attachment_references(database: Database) -> ReferenceCheck:
    """Return the blob sweep's question to the database: which of these hashes an attachment names."""

    async def referenced(hashes: Sequence[str]) -> set[str]:
        async with database.session() as session:
            return await DocumentRepository(session).referenced_hashes(hashes)

    return referenced


# The services' dependencies take the request and the session only, and find the runtime and the
# registry client themselves: FastAPI resolves every sub-dependency on every request (its cache
# keys, its checks of each callable), and the send's tree of seventeen dependants cost more CPU than
# its SQL statements (docs/performance.md, "The sixth session's changes").


def _runtime(request: Request) -> ExchangeRuntime:
    return runtime_of(request, ExchangeRuntime)


def _registry(request: Request, runtime: ExchangeRuntime) -> RegistryClient:
    """The registry, asked on behalf of the calling agency (with its own token)."""
    authorization = request.headers.get("authorization", "")
    return RegistryClient(runtime.client("registry"), lambda: authorization, cache=runtime.directory)


async def document_service(request: Request, session: SessionDep) -> DocumentService:
    runtime = _runtime(request)
    return DocumentService(
        documents=DocumentRepository(session),
        deliveries=DeliveryRepository(session),
        feed=runtime.feed_service(session),
        registry=_registry(request, runtime),
        blobs=runtime.blobs,
        calendar=runtime.calendar,
        max_attachments=runtime.config.max_attachments,
        max_attachment_bytes=runtime.config.max_attachment_bytes,
        signatures=runtime.signature_policy,
        archive_limits=ArchiveLimits.from_settings(runtime.settings.limits),
    )


async def delivery_service(request: Request, session: SessionDep) -> DeliveryService:
    return DeliveryService(
        deliveries=DeliveryRepository(session),
        documents=DocumentRepository(session),
        feed=_runtime(request).feed_service(session),
    )


async def transfer_service(session: SessionDep) -> TransferService:
    return TransferService(transfers=TransferRepository(session), feed=FeedRepository(session))


async def feed_reader(request: Request) -> FeedReader:
    """The feed reader: no request session (a long poll holds no database connection)."""
    runtime = _runtime(request)
    return FeedReader(runtime.db, runtime.feed_notifier, linger=runtime.config.feed_linger_seconds)


DocumentServiceDep = Annotated[DocumentService, Depends(document_service)]


def packets_of(request: Request, documents: DocumentService) -> PacketService:
    """The packet service of a request whose document service is built already (the send route
    builds it only for a packet)."""
    runtime = _runtime(request)
    return PacketService(
        documents=documents,
        repository=documents.documents,
        deliveries=documents.deliveries,
        blobs=runtime.blobs,
        seal=runtime.seal,
        max_packet_bytes=runtime.config.max_packet_bytes,
    )


async def packet_service(request: Request, documents: DocumentServiceDep) -> PacketService:
    return packets_of(request, documents)


async def status_packet_service(request: Request, session: SessionDep) -> StatusPacketService:
    runtime = _runtime(request)
    registry = _registry(request, runtime)

    async def canonical_code(code: str) -> str | None:
        if not is_agency_code(code):  # a packet's text, not asked of the registry unless it is a code
            return None
        agency = await registry.agency(code)
        return agency.code if agency is not None else None

    deliveries = DeliveryRepository(session)
    documents = DocumentRepository(session)
    return StatusPacketService(
        statuses=DeliveryService(deliveries=deliveries, documents=documents, feed=runtime.feed_service(session)),
        documents=documents,
        deliveries=deliveries,
        canonical_code=canonical_code,
        max_packet_bytes=runtime.config.max_packet_bytes,
    )


PacketServiceDep = Annotated[PacketService, Depends(packet_service)]
StatusPacketServiceDep = Annotated[StatusPacketService, Depends(status_packet_service)]
DeliveryServiceDep = Annotated[DeliveryService, Depends(delivery_service)]
FeedReaderDep = Annotated[FeedReader, Depends(feed_reader)]
TransferServiceDep = Annotated[TransferService, Depends(transfer_service)]


async def signature_service(session: SessionDep) -> SignatureService:
    return SignatureService(SignatureRepository(session))


SignatureServiceDep = Annotated[SignatureService, Depends(signature_service)]


async def statistics_service(request: Request, session: SessionDep) -> StatisticsService:
    runtime = _runtime(request)
    return StatisticsService(
        statistics=runtime.statistics_repository(session),
        directory=runtime.statistics_directory.get,
        timezone=runtime.config.timezone,
    )


StatisticsServiceDep = Annotated[StatisticsService, Depends(statistics_service)]
