"""Brokers: RabbitMQ (production topology) and an in-process bus (embedded mode), one interface.

Both are fed by the transactional outbox, so the code that publishes events never changes between
modes. RabbitMQ: one durable topic exchange ``<prefix>.events``, one quorum queue per consumer
(``<prefix>.<queue>``) bounded by ``x-delivery-limit`` and dead-lettered to ``<prefix>.<queue>.dead``,
publisher confirms, persistent messages, manual acks, a prefetch limit.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractRobustConnection

from shared.messaging.envelope import Envelope, topic_matches

log = logging.getLogger("lienthong.messaging")

Handler = Callable[[Envelope], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    """A named consumer: its queue, the routing-key patterns it binds, and its handler."""

    queue: str
    bindings: tuple[str, ...]
    handler: Handler


class Broker(Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def publish(self, envelope: Envelope) -> None: ...
    async def subscribe(self, subscription: Subscription) -> None: ...
    async def subscribe_broadcast(self, bindings: tuple[str, ...], handler: Handler) -> None: ...
    async def ping(self) -> None: ...


class InProcessBroker:
    """Delivers each published event to the matching handlers before ``publish`` returns.

    ``publish`` raises when a handler fails, so the relay leaves the outbox row unpublished and
    retries it: the outbox is the durable queue, the handlers are idempotent.
    """

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._subscriptions.clear()

    async def ping(self) -> None:
        return None

    async def subscribe(self, subscription: Subscription) -> None:
        self._subscriptions.append(subscription)

    async def subscribe_broadcast(self, bindings: tuple[str, ...], handler: Handler) -> None:
        """Every process gets every event (one process here)."""
        self._subscriptions.append(Subscription("broadcast", bindings, handler))

    async def publish(self, envelope: Envelope) -> None:
        for sub in list(self._subscriptions):
            if any(topic_matches(p, envelope.type) for p in sub.bindings):
                await sub.handler(envelope)


class RabbitBroker:
    """aio-pika robust connection with publisher confirms and quorum queues."""

    def __init__(
        self,
        url: str,
        prefix: str,
        *,
        prefetch: int = 32,
        delivery_limit: int = 10,
        reconnect_seconds: float = 2.0,
        publish_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.prefetch = prefetch
        self.delivery_limit = delivery_limit
        self.reconnect_seconds = reconnect_seconds
        self.publish_timeout = publish_timeout
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._consume_channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None

    @property
    def exchange_name(self) -> str:
        return f"{self.prefix}.events"

    def queue_name(self, queue: str) -> str:
        return f"{self.prefix}.{queue}"

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
        message = aio_pika.Message(
            body=envelope.to_json(),
            message_id=envelope.id,
            type=envelope.type,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers={"x-request-id": envelope.request_id or "", "x-source": envelope.source},
            timestamp=envelope.occurred_at,
        )
        # Publisher confirms: returns once the broker has taken responsibility; raises otherwise.
        await self._exchange.publish(message, routing_key=envelope.type, mandatory=False, timeout=self.publish_timeout)

    async def subscribe(self, subscription: Subscription) -> None:
        if self._consume_channel is None:
            raise RuntimeError("broker not started")
        channel = self._consume_channel
        name = self.queue_name(subscription.queue)
        dead_exchange = await channel.declare_exchange(
            f"{self.prefix}.dead", aio_pika.ExchangeType.DIRECT, durable=True
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

        async def on_message(message: AbstractIncomingMessage) -> None:
            # Manual ack after the handler committed; a failure requeues, bounded by x-delivery-limit.
            async with message.process(requeue=True, ignore_processed=True):
                await subscription.handler(Envelope.from_json(message.body))

        await queue.consume(on_message)

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
            async with message.process(requeue=False, ignore_processed=True):
                await handler(Envelope.from_json(message.body))

        await queue.consume(on_message)

    async def delete_all(self, queues: list[str]) -> None:
        """Delete the exchange and the named queues (tests clean up their own prefix)."""
        if self._connection is None:
            return
        channel = await self._connection.channel()
        for queue in queues:
            for name in (self.queue_name(queue), f"{self.queue_name(queue)}.dead"):
                await channel.queue_delete(name)
        await channel.exchange_delete(self.exchange_name)
        await channel.exchange_delete(f"{self.prefix}.dead")
        await channel.close()


def create_broker(url: str, prefix: str) -> Broker:
    """Return the broker a URL names: ``memory://`` or ``amqp://…``."""
    if url.startswith("memory://"):
        return InProcessBroker()
    return RabbitBroker(url, prefix)
