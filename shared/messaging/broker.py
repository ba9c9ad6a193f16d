"""Brokers: RabbitMQ (production topology) and an in-process bus (embedded mode), one interface.

Both are fed by the transactional outbox, so the code that publishes events never changes between
modes. RabbitMQ: one durable topic exchange ``<prefix>.events``, one quorum queue per consumer
(``<prefix>.<queue>``) bounded by ``x-delivery-limit`` and dead-lettered to ``<prefix>.<queue>.dead``,
publisher confirms, persistent messages, manual acks, a prefetch limit.

Work queues (a :class:`Subscription` with a :class:`RetryPolicy`) retry a message whose handler
raised :class:`RetryLater`: the message waits in ``<prefix>.<queue>.retry.<delay>`` (a queue with a
message TTL that dead-letters back into ``<prefix>.retry``, bound to the work queue only), then is
tried again with ``x-attempt`` one higher. After the last try, or at once when the handler raised
:class:`DeadLetter`, ``on_dead`` is awaited and the message goes to ``<prefix>.<queue>.dead`` with
its reason in ``x-dead-reason``. The in-process bus does the same with a SQLite-backed queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractRobustConnection

from shared.messaging.batch import Batching, Gatherer
from shared.messaging.envelope import (
    BUNDLE_HEADER,
    BUNDLED_TYPES,
    Envelope,
    bundle_json,
    envelopes_from_json,
    topic_matches,
)

if TYPE_CHECKING:
    from shared.messaging.local_queue import LocalQueueStore, LocalWorkQueue

log = logging.getLogger("lienthong.messaging")

Handler = Callable[[Envelope], Awaitable[None]]
DeadHandler = Callable[[Envelope, str], Awaitable[None]]

ATTEMPT_HEADER = "x-attempt"
DEAD_REASON_HEADER = "x-dead-reason"


class RetryLater(Exception):
    """Raised by a work-queue handler: try this message again later.

    ``counts=False`` defers it without spending a try (the handler chose not to try now); its
    ``delay`` is then the policy's ``defer_seconds``."""

    def __init__(self, reason: str, *, counts: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.counts = counts


class DeadLetter(Exception):
    """Raised by a handler: this message can never succeed; dead-letter it with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RetryPolicy:
    """How a work queue retries: the waits before the 2nd, 3rd … try, then the dead-letter queue."""

    delays: tuple[float, ...]
    defer_seconds: float = 5.0

    @property
    def attempts(self) -> int:
        """Tries in all, the first included."""
        return len(self.delays) + 1

    def delay_after(self, attempt: int) -> float | None:
        """The wait after try ``attempt`` failed (None: it was the last)."""
        return self.delays[attempt - 1] if attempt <= len(self.delays) else None


def delay_label(seconds: float) -> str:
    """Name a retry delay for a queue name: ``15s``, ``5m``, ``2h``, ``1500ms``."""
    ms = round(seconds * 1000)
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


@dataclass(frozen=True)
class Subscription:
    """A named consumer: its queue, the routing-key patterns it binds, and its handler.

    With ``retry`` it is a work queue: :class:`RetryLater` and :class:`DeadLetter` from the handler
    are honoured, ``on_dead`` is awaited before a message is dead-lettered (if it raises, the
    message is tried again), and up to ``prefetch`` messages are handled at once.

    With ``batch`` (a consumer, not a work queue) messages are taken in batches: ``batch.handler``
    handles each batch in one transaction, every message is acknowledged after it committed, and a
    batch that fails is handled again one message at a time by ``handler`` (the single-message
    path, with its requeues and dead letters)."""

    queue: str
    bindings: tuple[str, ...]
    handler: Handler
    retry: RetryPolicy | None = None
    on_dead: DeadHandler | None = None
    prefetch: int | None = None
    batch: Batching | None = None

    def __post_init__(self) -> None:
        if self.batch is not None and self.retry is not None:
            raise ValueError("a work queue (retry policy) takes its messages one by one, not in batches")


class Broker(Protocol):
    # the most envelopes of one type the outbox relay may publish as one message (1: none bundled)
    bundle_limit: int

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def publish(self, envelope: Envelope) -> None: ...
    async def publish_bundle(self, envelopes: Sequence[Envelope]) -> None: ...
    async def subscribe(self, subscription: Subscription) -> None: ...
    async def subscribe_broadcast(self, bindings: tuple[str, ...], handler: Handler) -> None: ...
    async def ping(self) -> None: ...
    async def publish_to_queue(self, queue: str, body: bytes, *, message_id: str, message_type: str) -> None: ...
    async def declare_queue(self, queue: str) -> None: ...
    async def unsubscribe(self, queue: str) -> None: ...
    async def deliver_batches(self, envelopes: Sequence[Envelope]) -> None: ...
    async def queue_depths(self, queues: Sequence[str]) -> dict[str, tuple[int, int]]: ...


class ExternalQueuesUnsupportedError(RuntimeError):
    """The in-process bus has no queues another system could read: AMQP delivery needs RabbitMQ."""


@dataclass(frozen=True)
class Outcome:
    """What becomes of a message its handler did not take: tried again (after ``delay``, as try
    ``attempt``) or dead-lettered with ``reason``."""

    retry: bool
    attempt: int
    delay: float
    reason: str


def outcome_of(policy: RetryPolicy, attempt: int, exc: BaseException) -> Outcome:
    """Decide the fate of a message whose try ``attempt`` raised ``exc``."""
    from shared.messaging.outbox import describe_error

    if isinstance(exc, DeadLetter):
        return Outcome(False, attempt, 0.0, exc.reason)
    reason = exc.reason if isinstance(exc, RetryLater) else describe_error(exc)
    if isinstance(exc, RetryLater) and not exc.counts:
        return Outcome(True, attempt, policy.defer_seconds, reason)
    delay = policy.delay_after(attempt)
    if delay is None:
        return Outcome(False, attempt, 0.0, f"gave up after {attempt} tries: {reason}")
    return Outcome(True, attempt + 1, delay, reason)


class InProcessBroker:
    """Delivers each published event to the matching handlers before ``publish`` returns.

    ``publish`` raises when a handler fails, so the relay leaves the outbox row unpublished and
    retries it: the outbox is the durable queue, the handlers are idempotent. Work queues
    (subscriptions with a retry policy) are different: ``publish`` stores the message in a
    SQLite-backed queue (``store``: a file, so a crash loses nothing) and workers handle it
    with the same retries and dead-lettering as RabbitMQ.

    Batch subscriptions get their batches from the relay: before publishing the rows of a pass one
    by one, it hands them all to :meth:`deliver_batches`, which runs each batch subscription's
    batch handler on the envelopes it matches (one transaction per batch); ``publish`` then skips
    the envelopes a batch took. When a batch fails, nothing is taken: each of its envelopes goes
    through ``publish`` to the subscription's single-message handler, as without batches (a
    failure leaves its outbox row pending, and the relay's per-key order holds).

    Nothing is bundled: a handler's failure is one row's, and the batches above save what
    bundles save on RabbitMQ.
    """

    bundle_limit = 1

    def __init__(self, store: Path | None = None, *, synchronous: str = "FULL") -> None:
        self._subscriptions: list[Subscription] = []
        self._store_path = store
        self._synchronous = synchronous
        self._queues: dict[str, LocalWorkQueue] = {}
        self._store: LocalQueueStore | None = None
        self._taken: dict[str, set[str]] = {}  # per batch subscription: ids a batch handled, not yet published

    @property
    def store(self) -> LocalQueueStore:
        from shared.messaging.local_queue import LocalQueueStore

        if self._store is None:
            self._store = LocalQueueStore(self._store_path, synchronous=self._synchronous)
        return self._store

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._subscriptions.clear()
        self._taken.clear()
        queues, self._queues = list(self._queues.values()), {}
        for queue in queues:
            await queue.stop()
        if self._store is not None:
            self._store.close()
            self._store = None

    async def ping(self) -> None:
        return None

    async def subscribe(self, subscription: Subscription) -> None:
        from shared.messaging.local_queue import LocalWorkQueue

        if subscription.retry is not None:
            queue = LocalWorkQueue(self.store, subscription)
            await queue.start()
            self._queues[subscription.queue] = queue
        self._subscriptions.append(subscription)

    async def unsubscribe(self, queue: str) -> None:
        """Stop delivering to a subscription (its service is stopping); its stored work stays."""
        self._subscriptions = [s for s in self._subscriptions if s.queue != queue]
        self._taken.pop(queue, None)
        if (work := self._queues.pop(queue, None)) is not None:
            await work.stop()

    async def subscribe_broadcast(self, bindings: tuple[str, ...], handler: Handler) -> None:
        """Every process gets every event (one process here)."""
        self._subscriptions.append(Subscription("broadcast", bindings, handler))

    async def publish(self, envelope: Envelope) -> None:
        for sub in list(self._subscriptions):
            if any(topic_matches(p, envelope.type) for p in sub.bindings):
                if (queue := self._queues.get(sub.queue)) is not None and sub.retry is not None:
                    await queue.put(envelope)
                    continue
                if sub.batch is not None and (taken := self._taken.get(sub.queue)) and envelope.id in taken:
                    taken.discard(envelope.id)  # a batch handled it already (committed)
                    continue
                try:
                    await sub.handler(envelope)
                except DeadLetter as exc:  # never to succeed: not worth blocking the outbox for
                    log.error("%s: message %s dropped: %s", sub.queue, envelope.id, exc.reason)

    async def publish_bundle(self, envelopes: Sequence[Envelope]) -> None:
        """Each envelope in turn, as :meth:`publish` (the relay does not bundle for this bus)."""
        for envelope in envelopes:
            await self.publish(envelope)

    async def deliver_batches(self, envelopes: Sequence[Envelope]) -> None:
        """Run each batch subscription's batch handler on the envelopes it matches, ``size`` at a
        time, before they are published one by one; ``publish`` then skips what a batch took.

        A batch that fails takes nothing (its transaction rolled back): its envelopes go to the
        subscription's single-message handler when they are published. A lone envelope goes there
        straight away (a batch of one saves nothing)."""
        for sub in list(self._subscriptions):
            if sub.batch is None:
                continue
            matching = [e for e in envelopes if any(topic_matches(p, e.type) for p in sub.bindings)]
            for start in range(0, len(matching), sub.batch.size):
                batch = matching[start : start + sub.batch.size]
                if len(batch) < 2:
                    continue
                try:
                    await sub.batch.handler(batch)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning(
                        "%s: a batch of %d messages failed (%s); handling them one by one",
                        sub.queue,
                        len(batch),
                        _describe(exc),
                    )
                    continue
                self._taken.setdefault(sub.queue, set()).update(e.id for e in batch)

    async def queue_depths(self, queues: Sequence[str]) -> dict[str, tuple[int, int]]:
        """Per work queue among ``queues``: messages waiting and dead. Consumers of the in-process
        bus have no queue (the outbox is theirs: its lag is theirs), so only work queues answer."""
        depths: dict[str, tuple[int, int]] = {}
        for queue in queues:
            if queue in self._queues:
                depths[queue] = await self.store.depth(queue)
        return depths

    async def publish_to_queue(self, queue: str, body: bytes, *, message_id: str, message_type: str) -> None:
        raise ExternalQueuesUnsupportedError(
            f"cannot deliver to AMQP queue {queue!r}: the in-process bus has no queues another system can read; "
            "AMQP delivery needs RabbitMQ (set LIENTHONG_BROKER_URL=amqp://…)"
        )

    async def declare_queue(self, queue: str) -> None:
        raise ExternalQueuesUnsupportedError(f"cannot declare AMQP queue {queue!r}: AMQP delivery needs RabbitMQ")


class RabbitBroker:
    """aio-pika robust connection with publisher confirms and quorum queues.

    ``bundle_limit``: the most envelopes of one type (one of :data:`BUNDLED_TYPES`) the relay
    publishes as one message; RabbitMQ's work per message (the confirm, the quorum log, the
    delivery, the acknowledgement) and the consumer's are then paid once for them."""

    def __init__(
        self,
        url: str,
        prefix: str,
        *,
        prefetch: int = 32,
        delivery_limit: int = 10,
        reconnect_seconds: float = 2.0,
        publish_timeout: float = 10.0,
        bundle_limit: int = 32,
        bundle_max_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self.url = url
        self.bundle_limit = max(1, bundle_limit)
        self.bundle_max_bytes = bundle_max_bytes
        self.prefix = prefix
        self.prefetch = prefetch
        self.delivery_limit = delivery_limit
        self.reconnect_seconds = reconnect_seconds
        self.publish_timeout = publish_timeout
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._consume_channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._declared_queues: set[str] = set()
        self._consumers: dict[str, tuple[AbstractChannel, Any, str, bool]] = {}
        self._gatherers: dict[str, Gatherer[AbstractIncomingMessage]] = {}

    @property
    def exchange_name(self) -> str:
        return f"{self.prefix}.events"

    @property
    def retry_exchange_name(self) -> str:
        return f"{self.prefix}.retry"

    @property
    def dead_exchange_name(self) -> str:
        return f"{self.prefix}.dead"

    def queue_name(self, queue: str) -> str:
        return f"{self.prefix}.{queue}"

    def retry_queue_name(self, queue: str, delay: float) -> str:
        return f"{self.queue_name(queue)}.retry.{delay_label(delay)}"

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(
            self.url, timeout=10, reconnect_interval=self.reconnect_seconds
        )
        self._publish_channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await self._publish_channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        self._consume_channel = await self._connection.channel()
        await self._consume_channel.set_qos(prefetch_count=self.prefetch)

    async def close(self) -> None:
        gatherers, self._gatherers = list(self._gatherers.values()), {}
        for gatherer in gatherers:
            await gatherer.stop()
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def ping(self) -> None:
        """Raise unless the connection is up now (a robust connection that is reconnecting is not)."""
        if self._connection is None or self._connection.is_closed:
            raise ConnectionError("RabbitMQ connection is closed")
        if not self._connection.connected.is_set():
            raise ConnectionError(f"RabbitMQ is unreachable; reconnecting every {self.reconnect_seconds:g} s")

    async def publish(self, envelope: Envelope) -> None:
        if self._exchange is None:
            raise RuntimeError("broker not started")
        message = _message_of(envelope)
        # Publisher confirms: returns once the broker has taken responsibility; raises otherwise.
        await self._exchange.publish(message, routing_key=envelope.type, mandatory=False, timeout=self.publish_timeout)

    async def publish_bundle(self, envelopes: Sequence[Envelope]) -> None:
        """Publish envelopes of one type as one message (a bundle: a JSON array, ``x-bundle`` their
        count), confirmed and persistent as :meth:`publish`; one envelope is published as itself,
        and a bundle larger than ``bundle_max_bytes`` as two halves, in order (a broker caps a
        message's size: RabbitMQ 4's default is 16 MB)."""
        if self._exchange is None:
            raise RuntimeError("broker not started")
        if len(envelopes) == 1:
            await self.publish(envelopes[0])
            return
        first = envelopes[0]
        if any(e.type != first.type for e in envelopes):
            raise ValueError("a bundle holds envelopes of one type")
        body = bundle_json(envelopes)
        if len(body) > self.bundle_max_bytes:
            half = len(envelopes) // 2
            await self.publish_bundle(envelopes[:half])
            await self.publish_bundle(envelopes[half:])
            return
        message = _message_of(first, {BUNDLE_HEADER: len(envelopes)}, body=body)
        await self._exchange.publish(message, routing_key=first.type, mandatory=False, timeout=self.publish_timeout)

    async def publish_to_queue(self, queue: str, body: bytes, *, message_id: str, message_type: str) -> None:
        """Publish (confirmed, persistent) to a named durable queue another system consumes, declaring
        it (quorum) the first time; a queue that exists with other arguments is used as it is."""
        if self._publish_channel is None or self._connection is None:
            raise RuntimeError("broker not started")
        await self.declare_queue(queue)
        message = aio_pika.Message(
            body=body,
            message_id=message_id,
            type=message_type,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self._publish_channel.default_exchange.publish(
            message, routing_key=queue, mandatory=True, timeout=self.publish_timeout
        )

    async def queue_depths(self, queues: Sequence[str]) -> dict[str, tuple[int, int]]:
        """Per queue: messages ready in it and in its dead-letter queue (a passive declaration each;
        a queue not declared yet is left out)."""
        if self._connection is None:
            raise RuntimeError("broker not started")
        depths: dict[str, tuple[int, int]] = {}
        for queue in queues:
            name = self.queue_name(queue)
            try:
                async with self._connection.channel() as channel:
                    ready = await channel.declare_queue(name, passive=True)
                    dead = await channel.declare_queue(f"{name}.dead", passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                continue
            depths[queue] = (
                int(ready.declaration_result.message_count or 0),
                int(dead.declaration_result.message_count or 0),
            )
        return depths

    async def declare_queue(self, queue: str) -> None:
        """Declare (once per process) a durable quorum queue another system consumes; one that
        exists with other arguments is used as it is."""
        if queue in self._declared_queues:
            return
        if self._connection is None:
            raise RuntimeError("broker not started")
        try:
            async with self._connection.channel() as channel:
                await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
        except aiormq.exceptions.ChannelPreconditionFailed:
            # declared before by the bus with its own arguments: use it as it is
            async with self._connection.channel() as channel:
                await channel.declare_queue(queue, passive=True)
        self._declared_queues.add(queue)

    async def subscribe(self, subscription: Subscription) -> None:
        if self._consume_channel is None or self._connection is None:
            raise RuntimeError("broker not started")
        if subscription.retry is not None:
            bundled = sorted(t for t in BUNDLED_TYPES for p in subscription.bindings if topic_matches(p, t))
            if bundled:
                raise ValueError(
                    f"work queue {subscription.queue!r} binds {', '.join(bundled)}, which the relay publishes in "
                    "bundles: a work queue takes one event a message (bind it to another event type, or make it a "
                    "consumer)"
                )
        channel = self._consume_channel
        if subscription.batch is not None:
            # a channel of its own: one acknowledgement settles a whole batch (multiple=True), and
            # twice the batch in flight lets the next batch gather while one is being handled
            channel = await self._connection.channel()
            await channel.set_qos(prefetch_count=self.batch_prefetch(subscription))
        elif subscription.retry is not None or subscription.prefetch is not None:
            channel = await self._connection.channel()
            await channel.set_qos(prefetch_count=subscription.prefetch or self.prefetch)
        name = self.queue_name(subscription.queue)
        dead_exchange = await channel.declare_exchange(
            self.dead_exchange_name, aio_pika.ExchangeType.DIRECT, durable=True
        )
        dead_queue = await channel.declare_queue(f"{name}.dead", durable=True, arguments={"x-queue-type": "quorum"})
        await dead_queue.bind(dead_exchange, routing_key=name)
        arguments: dict[str, Any] = {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": dead_exchange.name,
            "x-dead-letter-routing-key": name,
        }
        queue = await channel.declare_queue(name, durable=True, arguments=arguments)
        exchange = await channel.declare_exchange(self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
        for pattern in subscription.bindings:
            await queue.bind(exchange, routing_key=pattern)
        policy = subscription.retry
        if policy is not None:
            retry_exchange = await channel.declare_exchange(
                self.retry_exchange_name, aio_pika.ExchangeType.DIRECT, durable=True
            )
            await queue.bind(retry_exchange, routing_key=name)
            for delay in sorted({*policy.delays, policy.defer_seconds}):
                await channel.declare_queue(
                    self.retry_queue_name(subscription.queue, delay),
                    durable=True,
                    arguments={
                        "x-queue-type": "quorum",
                        "x-message-ttl": max(1, round(delay * 1000)),
                        "x-dead-letter-exchange": retry_exchange.name,
                        "x-dead-letter-routing-key": name,
                        "x-dead-letter-strategy": "at-least-once",
                        "x-overflow": "reject-publish",
                    },
                )

        async def on_message(message: AbstractIncomingMessage) -> None:
            # Manual ack once handled (or moved to a retry or dead queue); an unexpected failure
            # requeues, bounded by x-delivery-limit.
            async with message.process(requeue=True, ignore_processed=True):
                await self._handle(subscription, message)

        if subscription.batch is not None:
            batching = subscription.batch

            async def flush(messages: list[AbstractIncomingMessage]) -> None:
                await self._handle_batch(subscription, batching, messages)

            gatherer: Gatherer[AbstractIncomingMessage] = Gatherer(
                batching.size, batching.linger, flush, name=subscription.queue, weight=_envelope_count
            )
            gatherer.start()
            self._gatherers[subscription.queue] = gatherer

            async def gather(message: AbstractIncomingMessage) -> None:
                gatherer.add(message)  # settled by the gatherer's flush

            tag = await queue.consume(gather)
        else:
            tag = await queue.consume(on_message)
        self._consumers[subscription.queue] = (channel, queue, tag, channel is not self._consume_channel)

    def batch_prefetch(self, subscription: Subscription) -> int:
        """The prefetch of a batch subscription: its own (at least a batch), else twice its batch (at
        least the broker's)."""
        if subscription.batch is None:
            return subscription.prefetch or self.prefetch
        if subscription.prefetch is not None:
            return max(subscription.prefetch, subscription.batch.size)
        return max(self.prefetch, 2 * subscription.batch.size)

    async def deliver_batches(self, envelopes: Sequence[Envelope]) -> None:
        """Nothing to do: RabbitMQ's consumers gather their batches from their queues."""
        return None

    async def unsubscribe(self, queue: str) -> None:
        """Stop consuming a queue (its service is stopping); unacknowledged messages go back to it."""
        found = self._consumers.pop(queue, None)
        gatherer = self._gatherers.pop(queue, None)
        if found is None or self._connection is None or self._connection.is_closed:
            if gatherer is not None:
                await gatherer.stop()
            return
        channel, declared, tag, dedicated = found
        with contextlib.suppress(Exception):  # a broker away: the connection's close does it
            await declared.cancel(tag)
        if gatherer is not None:  # what it gathered and did not commit goes back to the queue
            await gatherer.stop()
        if dedicated:
            with contextlib.suppress(Exception):
                await channel.close()

    async def _handle(self, subscription: Subscription, message: AbstractIncomingMessage) -> None:
        headers = dict(message.headers or {})
        attempt = _int(headers.get(ATTEMPT_HEADER), 1)
        try:
            envelopes = envelopes_from_json(message.body)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("%s: unreadable message %s dead-lettered: %s", subscription.queue, message.message_id, exc)
            await self._dead_letter(subscription, message.body, headers, f"unreadable message: {exc}", attempt)
            return
        if len(envelopes) > 1:
            await self._handle_bundle(subscription, envelopes, attempt)
            return
        envelope = replace(envelopes[0], headers={**envelopes[0].headers, ATTEMPT_HEADER: attempt})
        try:
            await subscription.handler(envelope)
            return
        except DeadLetter as exc:
            outcome = Outcome(False, attempt, 0.0, exc.reason)
        except RetryLater as exc:
            if subscription.retry is None:
                raise
            outcome = outcome_of(subscription.retry, attempt, exc)
        except Exception as exc:
            if subscription.retry is None:
                raise
            outcome = outcome_of(subscription.retry, attempt, exc)
        if outcome.retry:
            log.info(
                "%s: message %s (try %d) back in %s: %s",
                subscription.queue,
                envelope.id,
                attempt,
                delay_label(outcome.delay),
                outcome.reason,
            )
            await self._publish_retry(subscription, message, outcome)
            return
        if subscription.on_dead is not None:
            await subscription.on_dead(envelope, outcome.reason)
        log.warning("%s: message %s dead-lettered: %s", subscription.queue, envelope.id, outcome.reason)
        await self._dead_letter(subscription, message.body, headers, outcome.reason, attempt)

    async def _handle_bundle(self, subscription: Subscription, envelopes: list[Envelope], attempt: int) -> None:
        """A bundle on the single-message path: every envelope is handled, in order, each on its
        own; one that fails goes back to the queue alone (or to the dead-letter queue for
        ``DeadLetter``) and takes the single-message path from there, its requeues and dead letter
        its own, so it neither holds back nor takes down the others. The bundle is acknowledged
        once its failures are queued again: a crash before that redelivers it whole, and the
        consumer (idempotent per envelope id) skips what it took already."""
        for envelope in envelopes:
            try:
                await subscription.handler(replace(envelope, headers={**envelope.headers, ATTEMPT_HEADER: attempt}))
                continue
            except DeadLetter as exc:
                reason, dead = exc.reason, True
            except Exception as exc:
                reason, dead = _describe(exc), False
            if dead:
                log.warning("%s: message %s dead-lettered: %s", subscription.queue, envelope.id, reason)
                await self._dead_letter(subscription, envelope.to_json(), _event_headers(envelope), reason, attempt)
                continue
            log.warning(
                "%s: message %s of a bundle failed and goes back to the queue alone: %s",
                subscription.queue,
                envelope.id,
                reason,
            )
            await self._requeue_alone(subscription, envelope, {"x-last-error": reason[:500]})

    async def _requeue_alone(self, subscription: Subscription, envelope: Envelope, headers: dict[str, Any]) -> None:
        """Put one envelope back at the end of the subscription's queue, as a message of its own
        (with ``headers`` besides the event's)."""
        if self._publish_channel is None:
            raise RuntimeError("broker not started")
        await self._publish_channel.default_exchange.publish(
            _message_of(envelope, headers),
            routing_key=self.queue_name(subscription.queue),
            mandatory=True,
            timeout=self.publish_timeout,
        )

    async def _handle_batch(
        self, subscription: Subscription, batching: Batching, messages: list[AbstractIncomingMessage]
    ) -> None:
        """Handle a gathered batch in one transaction, then acknowledge it; when that fails, handle
        its messages one by one. A redelivered or unreadable message is handled alone from the
        start: a poison message fails one batch, not every batch it comes back in."""
        taken: list[tuple[AbstractIncomingMessage, list[Envelope]]] = []
        alone: list[AbstractIncomingMessage] = []
        for message in messages:
            if message.redelivered:
                alone.append(message)
                continue
            try:
                envelopes = envelopes_from_json(message.body)
            except (ValueError, KeyError, TypeError):
                alone.append(message)
                continue
            attempt = _int(dict(message.headers or {}).get(ATTEMPT_HEADER), 1)
            taken.append((message, [replace(e, headers={**e.headers, ATTEMPT_HEADER: attempt}) for e in envelopes]))
        if taken:
            try:
                await batching.handler([envelope for _, envelopes in taken for envelope in envelopes])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "%s: a batch of %d messages failed (%s); handling them one by one",
                    subscription.queue,
                    len(taken),
                    _describe(exc),
                )
                order = {id(m): i for i, m in enumerate(messages)}
                alone = sorted([*alone, *(m for m, _ in taken)], key=lambda m: order[id(m)])
                taken = []
        for message in alone:  # settled before the batch's acknowledgement, which may cover them
            await self._handle_alone(subscription, message)
        if taken:
            await self._ack_all([m for m, _ in taken])

    async def _handle_alone(self, subscription: Subscription, message: AbstractIncomingMessage) -> None:
        """The single-message path: acknowledged once handled, requeued when it fails unexpectedly."""
        try:
            async with message.process(requeue=True, ignore_processed=True):
                await self._handle(subscription, message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "%s: message %s failed and goes back to the queue: %s",
                subscription.queue,
                message.message_id,
                _describe(exc),
            )

    @staticmethod
    async def _ack_all(messages: list[AbstractIncomingMessage]) -> None:
        """Acknowledge a committed batch: one ``multiple`` acknowledgement up to its last delivery
        when they all came on one channel (every earlier delivery of this channel is settled: the
        channel is the subscription's own, batches are flushed one at a time in delivery order, and
        the batch's lone messages were settled first); one by one otherwise (a reconnection in the
        middle of a batch: the old channel's deliveries are redelivered and skipped as processed)."""
        try:  # deliveries come in order: the first and the last on one channel, all on it
            one_channel = messages[0].channel is messages[-1].channel
        except Exception:  # a channel closed: RabbitMQ redelivers its messages, the consumer skips them
            one_channel = False
        try:
            if one_channel:
                await messages[-1].ack(multiple=True)
                return
            for message in messages:
                with contextlib.suppress(Exception):
                    await message.ack()
        except Exception as exc:  # the channel closed: RabbitMQ redelivers, the consumer skips them
            log.warning("acknowledging a batch of %d messages failed: %s", len(messages), _describe(exc))

    async def _publish_retry(
        self, subscription: Subscription, message: AbstractIncomingMessage, outcome: Outcome
    ) -> None:
        if self._publish_channel is None:
            raise RuntimeError("broker not started")
        headers = {**dict(message.headers or {}), ATTEMPT_HEADER: outcome.attempt, "x-last-error": outcome.reason[:500]}
        retry = aio_pika.Message(
            body=message.body,
            message_id=message.message_id,
            type=message.type,
            content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers=headers,
        )
        await self._publish_channel.default_exchange.publish(
            retry,
            routing_key=self.retry_queue_name(subscription.queue, outcome.delay),
            mandatory=True,
            timeout=self.publish_timeout,
        )

    async def _dead_letter(
        self, subscription: Subscription, body: bytes, headers: dict[str, Any], reason: str, attempt: int
    ) -> None:
        if self._publish_channel is None:
            raise RuntimeError("broker not started")
        dead = aio_pika.Message(
            body=body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers={**headers, DEAD_REASON_HEADER: reason[:2000], ATTEMPT_HEADER: attempt},
        )
        exchange = await self._publish_channel.get_exchange(self.dead_exchange_name, ensure=False)
        await exchange.publish(dead, routing_key=self.queue_name(subscription.queue), timeout=self.publish_timeout)

    async def subscribe_broadcast(self, bindings: tuple[str, ...], handler: Handler) -> None:
        """Deliver matching events to this process, whatever its replicas get: a server-named,
        exclusive, auto-deleted queue (for cache invalidation, not for durable work)."""
        if self._consume_channel is None:
            raise RuntimeError("broker not started")
        channel = self._consume_channel
        queue = await channel.declare_queue("", exclusive=True, auto_delete=True, durable=False)
        exchange = await channel.declare_exchange(self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
        for pattern in bindings:
            await queue.bind(exchange, routing_key=pattern)

        async def on_message(message: AbstractIncomingMessage) -> None:
            try:
                for envelope in envelopes_from_json(message.body):
                    await handler(envelope)
            except Exception:  # a wake-up or a cache hint: nothing to redeliver
                log.exception("broadcast %s: the handler failed", message.routing_key)

        # no acknowledgements: the queue is this process's own and dies with it, and an ack frame per
        # event (every feed entry wakes the long polls) was a good part of what listening cost
        await queue.consume(on_message, no_ack=True)

    async def delete_all(self, queues: list[str], *, retry_delays: tuple[float, ...] = ()) -> None:
        """Delete the exchanges and the named queues with their dead and retry queues (tests clean
        up their own prefix). This broker's consumers of those queues are stopped first: with one
        still consuming, the queue was sometimes declared again after its deletion and left behind
        (tests/shared/test_messaging.py's ``effects``, 6 queues in 5 runs with the cores kept busy;
        none in 10 such runs since)."""
        if self._connection is None:
            return
        for queue in queues:
            await self.unsubscribe(queue)
        channel = await self._connection.channel()
        for queue in queues:
            names = [self.queue_name(queue), f"{self.queue_name(queue)}.dead"]
            names += [self.retry_queue_name(queue, delay) for delay in retry_delays]
            for name in names:
                await channel.queue_delete(name)
        for exchange in (self.exchange_name, self.dead_exchange_name, self.retry_exchange_name):
            await channel.exchange_delete(exchange)
        await channel.close()


def _describe(exc: BaseException) -> str:
    from shared.messaging.outbox import describe_error

    return describe_error(exc)


def _event_headers(envelope: Envelope) -> dict[str, Any]:
    """The AMQP headers every event message carries."""
    return {"x-request-id": envelope.request_id or "", "x-source": envelope.source}


def _message_of(
    envelope: Envelope, headers: dict[str, Any] | None = None, *, body: bytes | None = None
) -> aio_pika.Message:
    """An envelope as a persistent AMQP message with the event's headers and ``headers``; ``body``:
    a bundle's, headed by this envelope (its first)."""
    return aio_pika.Message(
        body=envelope.to_json() if body is None else body,
        message_id=envelope.id,
        type=envelope.type,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers={**_event_headers(envelope), **(headers or {})},
        timestamp=envelope.occurred_at,
    )


def _envelope_count(message: AbstractIncomingMessage) -> int:
    """How many envelopes a message carries (a bundle's count from its header; else one), so that
    a batch holds at most its size of envelopes, not of messages."""
    return max(1, _int(dict(message.headers or {}).get(BUNDLE_HEADER), 1))


def _int(value: object, default: int) -> int:
    if isinstance(value, int | str | bytes):
        with contextlib.suppress(ValueError):
            return int(value)
    return default


def create_broker(url: str, prefix: str, *, store: Path | None = None, synchronous: str = "FULL") -> Broker:
    """Return the broker a URL names: ``memory://`` (work queues kept in ``store``, SQLite at
    ``synchronous``) or ``amqp://…``."""
    if url.startswith("memory://"):
        return InProcessBroker(store, synchronous=synchronous)
    return RabbitBroker(url, prefix)
