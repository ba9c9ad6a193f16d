"""The dispatcher: delivers each feed entry to its agency's channel.

It consumes ``feed.entry_added.v1`` from the ``exchange.dispatch`` work queue. The entries of
``pull`` agencies get no such event (the feed service decides when it writes an entry, with the
same cached endpoint: services/exchange/feed/service.py); one that still comes (the registry did
not answer then, or the agency chose pull since) needs nothing (the entry is in its feed).
``push`` agencies get an HMAC-signed POST to their webhook; ``amqp`` agencies get the entry in
their own durable queue on the bus; ``hub`` agencies (outside the province) get it forwarded as
``hub.entry_forwarded.v1`` to the hub connector's work queue (services/hub/, docs/interop.md),
which sees no other entry. A refusal or an
unreachable receiver raises :class:`RetryLater`: the broker tries again after the next delay of
the schedule, and after the last try :meth:`Dispatcher.on_dead` records the failure (the sender is
told) before the message goes to the dead-letter queue.

One slow receiver never holds the others: each agency has at most ``max_concurrent_per_agency``
calls in flight; an entry beyond that is put back for a few seconds without spending a try, so
the prefetch slots stay free for other agencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable

import httpx
from pydantic import ValidationError

from services.exchange.events import FeedEntryAdded
from services.exchange.feed.repository import FeedRepository
from services.exchange.feed.service import DispatchRule
from services.exchange.transfer.repository import TransferRepository
from services.exchange.transfer.service import TransferService
from shared.clients import HUB_ENTRY_EVENT, DeliveryEndpoint, RegistryClient
from shared.config import WebhookSection
from shared.db import Database
from shared.errors import DependencyUnavailableError
from shared.messaging import (
    ATTEMPT_HEADER,
    Broker,
    DeadLetter,
    Envelope,
    ExternalQueuesUnsupportedError,
    RetryLater,
    describe_error,
)
from shared.webhooks import WebhookUrlRefusedError, post_webhook, resolve_webhook, signed_headers

log = logging.getLogger("lienthong.exchange.dispatch")

HUB_FORWARD_NAMESPACE = uuid.UUID("6f1d8a52-3c1b-4d5e-9a57-2f0d7b1c9e44")

# how long an entry waits for its agency's free slot before it is put back: a healthy receiver frees
# one in milliseconds, a hanging one holds it up to the webhook timeout
BUSY_WAIT_SECONDS = 1.0


def entry_body(entry: FeedEntryAdded) -> bytes:
    """The bytes a webhook or a bus queue receives: the entry as the pull feed lists it."""
    return json.dumps(entry.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":")).encode()


class Dispatcher:
    def __init__(
        self,
        *,
        database: Database,
        broker: Callable[[], Broker],
        registry: RegistryClient,
        webhooks: WebhookSection,
        http: httpx.AsyncClient,
    ) -> None:
        self.database = database
        self.broker = broker
        self.registry = registry
        self.webhooks = webhooks
        self.http = http
        self._slots: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(webhooks.max_concurrent_per_agency)
        )

    async def handle(self, envelope: Envelope) -> None:
        """Deliver one feed entry to its agency's channel (raise RetryLater to try again)."""
        code = envelope.data.get("agency_code")
        endpoint = await self.endpoint_of(code) if isinstance(code, str) else None
        if isinstance(code, str) and (endpoint is None or endpoint.mode == "pull"):
            return  # most agencies: nothing more to do, and no need to read the whole entry
        if endpoint is not None and endpoint.mode == "hub":
            await self.forward_to_hub(envelope)
            return
        entry = self.entry_of(envelope)
        if endpoint is None:
            return
        if endpoint.mode == "push":
            await self.push(entry, endpoint)
        else:
            await self.publish(entry, endpoint)

    @staticmethod
    def entry_of(envelope: Envelope) -> FeedEntryAdded:
        try:
            return FeedEntryAdded.model_validate(envelope.data)
        except ValidationError as exc:
            raise DeadLetter(f"not a feed entry: {exc.errors()[:3]}") from exc

    async def endpoint_of(self, agency_code: str) -> DeliveryEndpoint | None:
        try:
            return await self.registry.delivery_endpoint(agency_code)
        except DependencyUnavailableError as exc:
            raise RetryLater(str(exc), counts=False) from exc

    async def push(self, entry: FeedEntryAdded, endpoint: DeliveryEndpoint) -> None:
        """POST the entry to the agency's webhook; anything but 2xx is tried again later."""
        url, secret = endpoint.webhook_url, endpoint.webhook_secret
        if not url or not secret:
            raise DeadLetter(f"agency {entry.agency_code} chose push without a webhook URL and secret")
        slot = self._slots[entry.agency_code]
        try:
            async with asyncio.timeout(BUSY_WAIT_SECONDS):
                await slot.acquire()
        except TimeoutError:
            raise RetryLater(f"{entry.agency_code} has the most webhook calls in flight", counts=False) from None
        try:
            try:
                target = await resolve_webhook(url, self.webhooks)
            except WebhookUrlRefusedError as exc:
                raise RetryLater(f"webhook {url} refused: {exc.detail}") from exc
            body = entry_body(entry)
            headers = signed_headers(secret, body, delivery_id=str(entry.id), event_type=entry.type)
            try:
                response = await post_webhook(self.http, target, body, headers, self.webhooks.timeout_seconds)
            except httpx.HTTPError as exc:
                raise RetryLater(f"webhook {url}: {describe_error(exc)}") from exc
        finally:
            slot.release()
        if not 200 <= response.status_code < 300:
            raise RetryLater(f"webhook {url} answered {response.status_code}")

    async def publish(self, entry: FeedEntryAdded, endpoint: DeliveryEndpoint) -> None:
        """Publish the entry to the agency's own queue on the bus (confirmed)."""
        queue = endpoint.amqp_queue
        if not queue:
            raise DeadLetter(f"agency {entry.agency_code} chose amqp without a queue")
        try:
            await self.broker().publish_to_queue(
                queue, entry_body(entry), message_id=str(entry.id), message_type=entry.type
            )
        except ExternalQueuesUnsupportedError as exc:
            raise DeadLetter(str(exc)) from exc
        except Exception as exc:
            raise RetryLater(f"bus queue {queue}: {describe_error(exc)}") from exc

    async def forward_to_hub(self, envelope: Envelope) -> None:
        """Hand the entry of an agency outside the province to the hub connector's work queue (its
        id derived from the entry's message: a forward repeated after a crash is the same message)."""
        forwarded = Envelope(
            id=str(uuid.uuid5(HUB_FORWARD_NAMESPACE, envelope.id)),
            type=HUB_ENTRY_EVENT,
            source="exchange",
            occurred_at=envelope.occurred_at,
            data=envelope.data,
            request_id=envelope.request_id,
        )
        try:
            await self.broker().publish(forwarded)
        except Exception as exc:
            raise RetryLater(f"forward to the hub connector: {describe_error(exc)}", counts=False) from exc

    async def on_endpoint_changed(self, envelope: Envelope) -> None:
        """``agency.updated.v1``: declare the queue of an agency that chose the bus, so that the bus
        can consume it before the first entry is published."""
        endpoint = envelope.data.get("delivery_endpoint")
        if isinstance(endpoint, dict) and endpoint.get("mode") == "amqp" and endpoint.get("amqp_queue"):
            with contextlib.suppress(ExternalQueuesUnsupportedError):
                await self.broker().declare_queue(str(endpoint["amqp_queue"]))

    async def on_dead(self, envelope: Envelope, reason: str) -> None:
        """Record the failure (the sender is told) before the message is dead-lettered."""
        try:
            entry = FeedEntryAdded.model_validate(envelope.data)
        except ValidationError:
            return
        endpoint = None
        with contextlib.suppress(DependencyUnavailableError):
            endpoint = await self.registry.delivery_endpoint(entry.agency_code)
        channel = endpoint.mode if endpoint is not None and endpoint.mode != "pull" else "push"
        target = (endpoint.webhook_url if channel == "push" else endpoint.amqp_queue) if endpoint else None
        attempts = int(envelope.headers.get(ATTEMPT_HEADER, 1))
        async with self.database.session() as session:
            service = TransferService(
                transfers=TransferRepository(session),
                feed=FeedRepository(session),
                rule=DispatchRule(self.registry.delivery_endpoint),
            )
            await service.record_failure(entry, channel=channel, target=target, attempts=attempts, reason=reason)
        log.warning("feed entry %s for %s not delivered by %s: %s", entry.id, entry.agency_code, channel, reason)
