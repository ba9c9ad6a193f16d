"""The hub connector's runtime: its database, its work queue on the feed, the hub client, the poller."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx
from prometheus_client import Counter

from services.hub.client import HubClient, HubError, HubUnavailableError
from services.hub.connector import HubConnector
from services.hub.directory import DirectorySync, DirectorySyncError
from services.hub.models import messaging
from services.settings import Settings
from shared.clients import HUB_ENTRY_EVENT, RegistryClient
from shared.clients.registry import DIRECTORY_EVENTS, DirectoryCache
from shared.http import tls_context
from shared.messaging import Broker, Envelope, RetryLater, RetryPolicy
from shared.observability import ReadyCheck
from shared.seal import Seal, province_seal
from shared.service import Listener, ServiceRuntime, Worker

log = logging.getLogger("lienthong.hub")

CLIENT_ID = "hub-connector"  # the ``sub`` of the tokens the connector signs for its calls
DOUBLE_URL = "http://hub-double"  # the base URL of an in-process double (embedded mode)
SYNC_RETRY_SECONDS = 60.0


class HubRuntime(ServiceRuntime):
    """The connector: outbound a work queue on ``hub.entry_forwarded.v1``, inbound a polling task."""

    def __init__(
        self,
        settings: Settings,
        *,
        broker: Broker | None = None,
        transports: dict[str, httpx.AsyncBaseTransport] | None = None,
        hub_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        config = settings.hub
        schedule = config.retry_schedule if config.retry_schedule is not None else settings.exchange.push_retry_schedule
        directory = DirectoryCache(settings.exchange.directory_cache_seconds)
        super().__init__(
            "hub",
            settings,
            messaging,
            listeners=[Listener(DIRECTORY_EVENTS, directory.on_event)],
            workers=[
                Worker(
                    "outbound",
                    (HUB_ENTRY_EVENT,),  # the exchange's dispatcher forwards the hub agencies' entries only
                    self._outbound,
                    retry=RetryPolicy(tuple(schedule), defer_seconds=settings.exchange.dispatch_defer_seconds),
                    on_dead=self._outbound_failed,
                )
            ],
            broker=broker,
            transports=transports,
        )
        self.config = config
        self.exchange_config = settings.exchange  # its seal is the province's, the hub's too by default
        self.directory = directory
        self.packets = Counter(
            "lienthong_hub_packets_total",
            "Packets sent to or taken from the national hub, by direction, kind and outcome",
            ["direction", "kind", "outcome"],
            registry=self.metrics.registry,
        )
        self.hub_transport = hub_transport
        self.connector: HubConnector | None = None
        self.directory_sync: DirectorySync | None = None
        self.on_startup(self._open)

    async def _open(self) -> None:
        """Load the signing key and the seal, open the hub client, start polling."""
        config = self.config
        self.load_internal_issuer()
        secret = config.client_secret.get_secret_value() if config.client_secret else ""
        http = httpx.AsyncClient(
            base_url=config.base_url or DOUBLE_URL,
            transport=self.hub_transport,
            verify=tls_context(),
            timeout=httpx.Timeout(config.timeout_seconds),
            headers={"User-Agent": "LienThong-hub-connector/1"},
        )
        self.on_shutdown(http.aclose)
        hub = HubClient(http, config.client_id, secret)
        registry = RegistryClient(self.client("registry"), self.internal_authorization, cache=self.directory)
        self.connector = HubConnector(
            database=self.db,
            hub=hub,
            registry=registry,
            exchange=self.client("exchange"),
            authorization=self.authorization_for,
            seal=self._seal(),
            require_signature=config.require_signature,
            observe=lambda direction, kind, outcome: self.packets.labels(direction, kind, outcome).inc(),
        )
        self.directory_sync = DirectorySync(
            hub, self.client("registry"), self.authorization_for, province_group=config.province_group
        )
        tasks = [asyncio.create_task(self.connector.run_polling(config.poll_seconds), name="hub-poll")]
        if config.directory_sync_hours > 0:
            tasks.append(asyncio.create_task(self._sync_periodically(), name="hub-directory"))

        async def stop() -> None:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        self.on_shutdown(stop)

    def ready_checks(self) -> dict[str, ReadyCheck]:
        return {**super().ready_checks(), "hub": self._hub_answers}

    async def _hub_answers(self) -> dict[str, Any]:
        """Fail while the last poll of the hub failed (packets wait there); show when it last answered."""
        connector = self.connector
        if connector is None:
            raise RuntimeError("the hub connector is starting")
        details: dict[str, Any] = {
            "base_url": self.config.base_url or DOUBLE_URL,
            "last_poll_at": connector.last_poll_at.isoformat() if connector.last_poll_at else None,
        }
        if connector.last_poll_error is not None:
            raise HubUnavailableError(connector.last_poll_error)
        return details

    def _seal(self) -> Seal:
        """The hub's own seal files if set, else the exchange's: the province has one seal."""
        config, exchange = self.config, self.exchange_config
        if config.seal_key_file and config.seal_certificate_file:
            return province_seal(config.seal_key_file, config.seal_certificate_file, self.settings.var_dir)
        return province_seal(exchange.seal_key_file, exchange.seal_certificate_file, self.settings.var_dir)

    def authorization_for(self, agency: str | None, scopes: list[str]) -> str:
        """A short-lived token for the connector's own call: as ``agency`` (an agency outside the
        province sending, or reporting a status), or as itself (``agency`` None: internal, or the
        registry admin for the directory sync)."""
        issuer = self._internal_issuer
        if issuer is None:
            raise RuntimeError("the hub connector is not started: no signing key")
        return f"Bearer {issuer.issue(CLIENT_ID, agency, scopes)}"

    async def _outbound(self, envelope: Envelope) -> None:
        if self.connector is None:
            raise RetryLater("the hub connector is starting", counts=False)
        await self.connector.handle_entry(envelope)

    async def _outbound_failed(self, envelope: Envelope, reason: str) -> None:
        if self.connector is None:
            raise RuntimeError("the hub connector is starting")
        await self.connector.on_dead(envelope, reason)

    async def _sync_periodically(self) -> None:
        """Sync the national directory now and every ``directory_sync_hours``; a sync that failed
        (the hub or the registry not answering yet: the processes start together) again after a minute."""
        every = self.config.directory_sync_hours * 3600
        while True:
            wait = every
            if self.directory_sync is not None:
                try:
                    await self.directory_sync.run()
                except (HubError, DirectorySyncError) as exc:
                    log.error("the national directory was not synced (again in a minute): %s", exc)
                    wait = min(every, SYNC_RETRY_SECONDS)
                except Exception:
                    log.exception("syncing the national directory failed (again in a minute)")
                    wait = min(every, SYNC_RETRY_SECONDS)
            await asyncio.sleep(wait)
