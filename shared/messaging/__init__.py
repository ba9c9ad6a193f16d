"""Reliable messaging: transactional outbox, relay, brokers (RabbitMQ / in-process), idempotent consumers."""

from shared.messaging.broker import Broker, InProcessBroker, RabbitBroker, Subscription, create_broker
from shared.messaging.consumer import EventHandler, IdempotentConsumer
from shared.messaging.envelope import Envelope, topic_matches
from shared.messaging.outbox import (
    BrokerUnavailableError,
    Outbox,
    OutboxMetrics,
    OutboxRelay,
    OutboxStats,
    PendingEvent,
    describe_error,
    record_event,
    retry_delay,
)
from shared.messaging.tables import (
    MessagingTables,
    create_messaging_tables,
    define_messaging_tables,
    drop_messaging_tables,
)

__all__ = [
    "Broker",
    "BrokerUnavailableError",
    "Envelope",
    "EventHandler",
    "IdempotentConsumer",
    "InProcessBroker",
    "MessagingTables",
    "Outbox",
    "OutboxMetrics",
    "OutboxRelay",
    "OutboxStats",
    "PendingEvent",
    "RabbitBroker",
    "Subscription",
    "create_broker",
    "create_messaging_tables",
    "define_messaging_tables",
    "describe_error",
    "drop_messaging_tables",
    "record_event",
    "retry_delay",
    "topic_matches",
]
