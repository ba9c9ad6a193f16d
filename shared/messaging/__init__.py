"""Reliable messaging: transactional outbox, relay, brokers (RabbitMQ / in-process), idempotent consumers."""

from shared.messaging.batch import Batching, Gatherer
from shared.messaging.broker import (
    ATTEMPT_HEADER,
    DEAD_REASON_HEADER,
    Broker,
    DeadLetter,
    ExternalQueuesUnsupportedError,
    InProcessBroker,
    RabbitBroker,
    RetryLater,
    RetryPolicy,
    Subscription,
    create_broker,
    delay_label,
)
from shared.messaging.consumer import BatchEventHandler, EventHandler, IdempotentBatchConsumer, IdempotentConsumer
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
    record_events,
    retry_delay,
)
from shared.messaging.tables import (
    MessagingTables,
    create_messaging_tables,
    define_messaging_tables,
    drop_messaging_tables,
)

__all__ = [
    "ATTEMPT_HEADER",
    "DEAD_REASON_HEADER",
    "BatchEventHandler",
    "Batching",
    "Broker",
    "BrokerUnavailableError",
    "DeadLetter",
    "Envelope",
    "EventHandler",
    "ExternalQueuesUnsupportedError",
    "Gatherer",
    "IdempotentBatchConsumer",
    "IdempotentConsumer",
    "InProcessBroker",
    "MessagingTables",
    "Outbox",
    "OutboxMetrics",
    "OutboxRelay",
    "OutboxStats",
    "PendingEvent",
    "RabbitBroker",
    "RetryLater",
    "RetryPolicy",
    "Subscription",
    "create_broker",
    "create_messaging_tables",
    "define_messaging_tables",
    "delay_label",
    "describe_error",
    "drop_messaging_tables",
    "record_event",
    "record_events",
    "retry_delay",
    "topic_matches",
]
