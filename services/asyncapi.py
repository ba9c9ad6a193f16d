"""The AsyncAPI 3.0 document of LienThong's messaging, generated from the event models.

What it describes (docs/messaging.md tells it in prose):

- every event a service publishes (its ``EVENTS``) as a channel on the ``<prefix>.events`` topic
  exchange, addressed by its routing key, with a ``send`` operation of the owning service; the
  message is the envelope (shared/messaging/envelope.py) whose ``data`` is the event's model, or
  for a type of ``BUNDLED_TYPES`` a bundle (a JSON array of them, header ``x-bundle``);
- the durable queues the services consume (the archive's consumers, the exchange's dispatch and
  status-report work queues), their retry and dead-letter queues, and the broadcast listeners;
- the per-agency bus queues the exchange delivers feed entries to (``FeedEntryAdded`` with its
  ``data`` by entry type, from ``FEED_DATA``);
- what the provincial bus sends in: ``delivery.status_reported.v1`` (its model from the exchange's
  ``INBOUND``).

Payload schemas are the models' JSON schemas, their ``$defs`` lifted into ``components.schemas``.
``lienthong asyncapi`` writes the document to docs/asyncapi.json; a test checks the committed file
is what this module generates now.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from services.exchange import events as exchange_events
from services.exchange.config import ExchangeSection
from shared.audit import AUDIT_EVENT, AuditRecorded
from shared.clients import CREDENTIAL_EVENTS, DIRECTORY_EVENTS, HUB_ENTRY_EVENT
from shared.config import SERVICE_NAMES
from shared.messaging import ATTEMPT_HEADER, DEAD_REASON_HEADER, RetryPolicy, delay_label
from shared.messaging.envelope import BUNDLE_HEADER, BUNDLED_TYPES

ASYNCAPI_VERSION = "3.0.0"
AMQP_BINDING_VERSION = "0.3.0"
DOCUMENT_VERSION = "0.1.0"
DEFAULT_PREFIX = "lienthong"
SCHEMA_REF = "#/components/schemas/{model}"

STATUS_REPORTED = "delivery.status_reported.v1"
FEED_ENTRY_ADDED = "feed.entry_added.v1"
FEED_ENTRY_MESSAGE = "feed_entry"
FEED_ENTRY_SCHEMA = "FeedEntry"
AGENCY_QUEUE_CHANNEL = "agency.feed"

Json = dict[str, Any]


@dataclass(frozen=True)
class ServiceQueue:
    """A durable quorum queue a service consumes: ``<prefix>.<service>.<name>``.

    A consumer (``retry`` None) runs its handler in a transaction, idempotent by message id; a work
    queue (a ``Worker``) has a retry policy: retry queues, one per delay, then its dead-letter queue."""

    service: str
    name: str
    bindings: tuple[str, ...]
    description: str
    retry: RetryPolicy | None = None
    prefetch: int | None = None

    @property
    def queue(self) -> str:
        return f"{self.service}.{self.name}"


@dataclass(frozen=True)
class BroadcastListener:
    """Handlers every process of a service runs, each on its own server-named exclusive queue."""

    service: str
    name: str
    bindings: tuple[str, ...]
    description: str


# Events more than one process publishes (one channel, a send operation per publisher): the audit
# trail's entries, from every service's outbox and from the gateway (throttled token requests).
SHARED_EVENTS: tuple[tuple[str, type[BaseModel], tuple[str, ...]], ...] = (
    (AUDIT_EVENT, AuditRecorded, ("registry", "exchange", "signature", "gateway")),
)

LISTENERS = (
    BroadcastListener(
        "gateway",
        "credential_guard",
        CREDENTIAL_EVENTS,
        "The gateway's credential guard drops its cached client and agency statuses.",
    ),
    BroadcastListener(
        "exchange",
        "directory_cache",
        DIRECTORY_EVENTS,
        "The exchange's directory cache (agencies, groups, delivery endpoints) is emptied.",
    ),
    BroadcastListener(
        "exchange",
        "bus_queues",
        ("agency.updated.v1",),
        "Declares an agency's bus queue as soon as it chooses amqp delivery, so the bus can consume it "
        "before the first entry.",
    ),
    BroadcastListener(
        "hub",
        "directory_cache",
        DIRECTORY_EVENTS,
        "The hub connector's cache of agencies and delivery endpoints (which agencies the hub reaches) is emptied.",
    ),
    BroadcastListener(
        "signature",
        "directory_cache",
        DIRECTORY_EVENTS,
        "The signature service's cache of agencies and their certificates (sender binding) is emptied.",
    ),
    BroadcastListener(
        "signature",
        "result_cache",
        ("trust_store.changed.v1",),
        "The signature service's cached verification results are dropped (found with another trust store).",
    ),
)


def published_events() -> dict[str, dict[str, type[BaseModel]]]:
    """Each service's ``EVENTS`` (routing key → payload model), for the services that publish."""
    published: dict[str, dict[str, type[BaseModel]]] = {}
    for service in SERVICE_NAMES:
        module = importlib.import_module(f"services.{service}.events")
        events: Mapping[str, type[BaseModel]] = getattr(module, "EVENTS", {})
        if events:
            published[service] = dict(events)
    return published


def dispatch_retry_policy(config: ExchangeSection | None = None) -> RetryPolicy:
    """The dispatch work queue's retry policy (by default, the settings' defaults)."""
    config = config or ExchangeSection()
    return RetryPolicy(tuple(config.push_retry_schedule), defer_seconds=config.dispatch_defer_seconds)


def service_queues() -> tuple[ServiceQueue, ...]:
    """The durable queues the services consume: the archive's consumers, the exchange's consumer and
    work queue (as services/exchange/dependencies.py declares them, with the default settings)."""
    from services.archive.consumers import CONSUMERS

    archive = tuple(
        ServiceQueue(
            "archive",
            consumer.name,
            consumer.bindings,
            f"The archive's `{consumer.name}` consumer: reflects each document event on the document's "
            "archive record (searchable in each replica's index).",
        )
        for consumer in CONSUMERS
    )
    exchange = (
        ServiceQueue(
            "exchange",
            "status_reports",
            tuple(exchange_events.INBOUND),
            "The statuses the provincial bus reports on agencies' behalf, applied with the rules of "
            "`POST /v1/deliveries/{id}/status`; a report that is invalid or refused is dead-lettered at once "
            f"with its reason in `{DEAD_REASON_HEADER}`.",
        ),
        ServiceQueue(
            "exchange",
            "dispatch",
            (FEED_ENTRY_ADDED,),
            "The dispatcher delivers each feed entry to its agency's channel: an HMAC-signed POST to the "
            "agency's webhook (push), a message on its bus queue (amqp), or `hub.entry_forwarded.v1` to the hub "
            "connector (hub). The exchange records the event only for the entries of agencies that do not pull "
            "(decided when the entry is written, by the cached delivery endpoint; an unknown agency or an "
            "unreachable registry gets it, and the dispatcher decides): a pull agency's entries are in its feed "
            "only, and one that still comes needs nothing. A failed try "
            "waits in a retry queue; after the last try the failure is recorded (`delivery.transfer_failed.v1`, "
            "a `delivery.transfer_failed` entry in the sender's feed) and the message is dead-lettered.",
            retry=dispatch_retry_policy(),
            prefetch=ExchangeSection().dispatch_prefetch,
        ),
        ServiceQueue(
            "exchange",
            "signature_checks",
            ("document.signature_pending.v1",),
            "A document sent under the `flag` signature policy has its main file verified by the signature "
            "service; the verdict is kept with the document and announced (`document.signature_checked.v1`). "
            "While the signature service is unavailable the check waits in a retry queue; after the last try "
            "the verdict is `indeterminate`, with the reason.",
            retry=RetryPolicy(tuple(ExchangeSection().signature_retry_schedule)),
        ),
    )
    hub = (
        ServiceQueue(
            "hub",
            "outbound",
            (HUB_ENTRY_EVENT,),
            "The hub connector carries the feed entries of agencies reached through the national hub (delivery "
            "endpoint `hub`), which the exchange's dispatcher forwards to it: a document becomes a signed edXML "
            "packet sent to the hub (`sendEdoc`), a local recipient's status a status packet. A hub that does "
            "not take it waits in a retry queue (the dispatcher's schedule); after the last try the failure is "
            "kept in the connector's `hub_message` table and the message is dead-lettered (docs/interop.md).",
            retry=dispatch_retry_policy(),
        ),
    )
    registry = (
        ServiceQueue(
            "registry",
            "audit",
            (AUDIT_EVENT,),
            "The audit chain's single writer: appends every service's audit entries in batches (the head row "
            "locked, each entry hashed over the one before), each message once (docs/security.md).",
        ),
    )
    return archive + exchange + hub + registry


class _Schemas:
    """``components.schemas``: each model once, its ``$defs`` lifted; a clash of names is an error."""

    def __init__(self) -> None:
        self.schemas: dict[str, Json] = {}

    def add(self, name: str, schema: Json) -> Json:
        existing = self.schemas.get(name)
        if existing is not None and existing != schema:
            raise ValueError(f"two different schemas are named {name!r}: rename one of the models")
        self.schemas[name] = schema
        return {"$ref": SCHEMA_REF.format(model=name)}

    def model(self, model: type[BaseModel]) -> Json:
        schema = model_schema(model)
        for name, definition in schema.pop("$defs", {}).items():
            self.add(name, definition)
        return self.add(model.__name__, schema)


def model_schema(model: type[BaseModel]) -> Json:
    """A model's JSON schema as the AsyncAPI document holds it (references into components.schemas)."""
    schema: Json = model.model_json_schema(ref_template=SCHEMA_REF)
    return schema


def _exchange_binding(name: str, kind: str) -> Json:
    return {
        "amqp": {
            "is": "routingKey",
            "exchange": {"name": name, "type": kind, "durable": True, "autoDelete": False},
            "bindingVersion": AMQP_BINDING_VERSION,
        }
    }


def _queue_binding(name: str, *, exclusive: bool = False) -> Json:
    return {
        "amqp": {
            "is": "queue",
            "queue": {"name": name, "durable": True, "exclusive": exclusive, "autoDelete": False},
            "bindingVersion": AMQP_BINDING_VERSION,
        }
    }


def _send_binding(*, mandatory: bool) -> Json:
    return {
        "amqp": {"deliveryMode": 2, "mandatory": mandatory, "timestamp": True, "bindingVersion": AMQP_BINDING_VERSION}
    }


_RECEIVE_BINDING: Json = {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING_VERSION}}


def _message_ref(key: str) -> Json:
    return {"$ref": f"#/components/messages/{key}"}


def _channel_ref(channel: str) -> Json:
    return {"$ref": f"#/channels/{channel}"}


def _channel_message_ref(channel: str, message: str) -> Json:
    return {"$ref": f"#/channels/{channel}/messages/{message}"}


def _first_line(model: type[BaseModel]) -> str:
    doc = (model.__doc__ or "").strip()
    return " ".join(doc.split("\n\n")[0].split())


def _envelope_schema() -> Json:
    return {
        "title": "Envelope",
        "description": "The JSON every event travels in (shared/messaging/envelope.py); `data` is the event's payload.",
        "type": "object",
        "properties": {
            "id": {
                "type": "string",
                "format": "uuid",
                "description": "the outbox row id, also the AMQP message_id: consumers dedupe by it",
            },
            "type": {"type": "string", "description": "the event type, also the routing key"},
            "source": {"type": "string", "description": "the publishing service"},
            "occurred_at": {"type": "string", "format": "date-time"},
            "request_id": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "description": "the X-Request-ID of the request that caused the event",
            },
            "data": {"type": "object", "description": "the payload, by type"},
        },
        "required": ["id", "type", "source", "occurred_at", "request_id", "data"],
    }


def _headers_schema() -> Json:
    return {
        "title": "EventHeaders",
        "type": "object",
        "properties": {
            "x-request-id": {"type": "string", "description": "the envelope's request_id ('' when none)"},
            "x-source": {"type": "string", "description": "the publishing service"},
            ATTEMPT_HEADER: {
                "type": "integer",
                "minimum": 1,
                "description": "work queues: the try this delivery is (absent: the first); set on messages in "
                "retry and dead-letter queues",
            },
            "x-last-error": {
                "type": "string",
                "description": "work queues: why the previous try failed (on messages back from a retry queue)",
            },
            DEAD_REASON_HEADER: {
                "type": "string",
                "description": "dead-letter queues: why the message was given up",
            },
            BUNDLE_HEADER: {
                "type": "integer",
                "minimum": 2,
                "description": "a bundle: how many envelopes its body (a JSON array) carries",
            },
        },
    }


def _event_message(key: str, source: str | None, payload_ref: Json, summary: str, description: str) -> Json:
    properties: Json = {"type": {"const": key}, "data": payload_ref}
    if source is not None:
        properties["source"] = {"const": source}
    payload: Json = {"allOf": [{"$ref": "#/components/schemas/Envelope"}, {"type": "object", "properties": properties}]}
    if key in BUNDLED_TYPES:
        payload = {"oneOf": [payload, {"type": "array", "minItems": 2, "items": payload}]}
        description += (
            " On RabbitMQ several of them may come as one message, a bundle: a JSON array of envelopes in"
            " order, header x-bundle = how many (docs/messaging.md, Bundles); each keeps its own id."
        )
    return {
        "name": key,
        "title": key,
        "summary": summary,
        "description": description,
        "contentType": "application/json",
        "headers": {"$ref": "#/components/schemas/EventHeaders"},
        "payload": payload,
        "bindings": {"amqp": {"messageType": key, "bindingVersion": AMQP_BINDING_VERSION}},
    }


def _feed_entry_schema(schemas: _Schemas) -> Json:
    variants = [
        {
            "type": "object",
            "properties": {"type": {"const": entry_type}, "data": schemas.model(model)},
        }
        for entry_type, model in sorted(exchange_events.FEED_DATA.items())
    ]
    return {
        "title": FEED_ENTRY_SCHEMA,
        "description": "A feed entry with its `data` by `type` (services/exchange/events.py, FEED_DATA).",
        "allOf": [schemas.model(exchange_events.FeedEntryAdded), {"oneOf": variants}],
    }


def _operation(action: str, channel: str, messages: Iterable[str], service: str, summary: str, bindings: Json) -> Json:
    return {
        "action": action,
        "channel": _channel_ref(channel),
        "messages": [_channel_message_ref(channel, m) for m in messages],
        "summary": summary,
        "tags": [{"name": service}],
        "bindings": bindings,
    }


def build_asyncapi(prefix: str = DEFAULT_PREFIX) -> Json:
    """The AsyncAPI 3.0.0 document (a JSON-ready dict) of the messaging under broker prefix ``prefix``."""
    events_exchange, retry_exchange, dead_exchange = f"{prefix}.events", f"{prefix}.retry", f"{prefix}.dead"
    schemas = _Schemas()
    schemas.add("Envelope", _envelope_schema())
    schemas.add("EventHeaders", _headers_schema())
    messages: dict[str, Json] = {}
    channels: dict[str, Json] = {}
    operations: dict[str, Json] = {}

    def event_channel(key: str, message: Json, description: str) -> None:
        messages[key] = message
        channels[key] = {
            "address": key,
            "title": key,
            "description": description,
            "messages": {key: _message_ref(key)},
            "bindings": _exchange_binding(events_exchange, "topic"),
        }

    # Events: one channel per routing key on the topic exchange, sent by the owning service.
    for service, events in published_events().items():
        for key, model in events.items():
            if key in channels:
                raise ValueError(f"{key} is published by two services")
            summary = _first_line(model)
            event_channel(
                key,
                _event_message(key, service, schemas.model(model), summary, f"Published by {service}. {summary}"),
                f"`{key}` on the `{events_exchange}` topic exchange (routing key = event type). {summary}",
            )
            operations[f"{service}.publish.{key}"] = _operation(
                "send",
                key,
                [key],
                service,
                f"{service} publishes {key} through its outbox (persistent, publisher-confirmed)",
                _send_binding(mandatory=False),
            )

    for key, model, publishers in SHARED_EVENTS:
        summary = _first_line(model)
        event_channel(
            key,
            _event_message(
                key, None, schemas.model(model), summary, f"Published by {', '.join(publishers)}. {summary}"
            ),
            f"`{key}` on the `{events_exchange}` topic exchange (routing key = event type), from several "
            f"publishers. {summary}",
        )
        for service in publishers:
            how = "directly, publisher-confirmed before it answers" if service == "gateway" else "through its outbox"
            operations[f"{service}.publish.{key}"] = _operation(
                "send", key, [key], service, f"{service} publishes {key} {how}", _send_binding(mandatory=False)
            )

    # Inbound: what the provincial bus publishes on the events exchange (the exchange's INBOUND).
    for key, model in exchange_events.INBOUND.items():
        if key in channels:
            raise ValueError(f"{key} is both published and received from the bus")
        summary = _first_line(model)
        event_channel(
            key,
            _event_message(
                key,
                None,
                schemas.model(model),
                summary,
                "Sent in by the provincial bus (not by a LienThong service), in the envelope every event "
                f"travels in. {summary}",
            ),
            f"`{key}` on the `{events_exchange}` topic exchange: published by the provincial bus. {summary}",
        )

    # Per-agency bus queues: each feed entry, as the pull feed lists it, on the agency's queue.
    messages[FEED_ENTRY_MESSAGE] = {
        "name": FEED_ENTRY_MESSAGE,
        "title": "Feed entry",
        "summary": "An entry of the agency's feed, exactly as GET /v1/feed lists it.",
        "description": "AMQP properties: message_id = the entry id (the same on every re-send: dedupe by it), "
        "type = the entry type, content_type application/json, persistent. `seq` numbers an agency's "
        "entries 1, 2, 3 … in the order they happened.",
        "contentType": "application/json",
        "payload": schemas.add(FEED_ENTRY_SCHEMA, _feed_entry_schema(schemas)),
    }
    channels[AGENCY_QUEUE_CHANNEL] = {
        "address": "{queue}",
        "title": "An agency's bus queue",
        "description": "The durable (quorum) queue an agency on AMQP delivery reads "
        '(registry: PUT /v1/agencies/{code}/endpoint {"mode": "amqp", "amqp_queue": "…"}); '
        "the exchange declares it when the agency chooses amqp (on `agency.updated.v1`) and publishes to it "
        "through the default exchange.",
        "parameters": {"queue": {"description": "the agency's `amqp_queue`"}},
        "messages": {FEED_ENTRY_MESSAGE: _message_ref(FEED_ENTRY_MESSAGE)},
        "bindings": _queue_binding("{queue}"),
    }
    operations["exchange.deliver.feed_entry"] = _operation(
        "send",
        AGENCY_QUEUE_CHANNEL,
        [FEED_ENTRY_MESSAGE],
        "exchange",
        "exchange (dispatch) delivers a feed entry to the agency's bus queue (persistent, publisher-confirmed)",
        _send_binding(mandatory=True),
    )

    # The services' durable queues, their retry and dead-letter queues.
    for queue in service_queues():
        name = f"{prefix}.{queue.queue}"
        keys = [key for key in queue.bindings if key in messages]
        unknown = set(queue.bindings) - set(keys)
        if unknown:
            raise ValueError(f"{queue.queue} binds {sorted(unknown)}: no event has that routing key")
        queue_messages = {key: _message_ref(key) for key in keys}
        kind = (
            "Work queue (its handler outside any transaction, retried per its policy)"
            if queue.retry is not None
            else "Consumer queue (its handler in one transaction with the message id, idempotent)"
        )
        prefetch = f", prefetch {queue.prefetch}" if queue.prefetch is not None else ""
        channels[queue.queue] = {
            "address": name,
            "title": name,
            "description": f"{kind}: quorum, bound to `{events_exchange}` by {', '.join(f'`{k}`' for k in keys)}, "
            f"x-delivery-limit then dead-lettered through `{dead_exchange}`{prefetch}. {queue.description}",
            "messages": queue_messages,
            "bindings": _queue_binding(name),
        }
        operations[f"{queue.service}.consume.{queue.name}"] = _operation(
            "receive",
            queue.queue,
            keys,
            queue.service,
            f"{queue.service} consumes {name} (manual acks after handling)",
            _RECEIVE_BINDING,
        )
        channels[f"{queue.queue}.dead"] = {
            "address": f"{name}.dead",
            "title": f"{name}.dead",
            "description": f"Dead-letter queue of `{name}` (bound to `{dead_exchange}` by `{name}`): messages given "
            f"up, with `{DEAD_REASON_HEADER}` and `{ATTEMPT_HEADER}`; an operator reads and re-drives them.",
            "messages": dict(queue_messages),
            "bindings": _queue_binding(f"{name}.dead"),
        }
        operations[f"{queue.service}.dead_letter.{queue.name}"] = _operation(
            "send",
            f"{queue.queue}.dead",
            keys,
            queue.service,
            f"{queue.service} gives a message up (unreadable, never to succeed, or past its last try) "
            f"with its reason in {DEAD_REASON_HEADER}",
            _send_binding(mandatory=False),
        )
        if queue.retry is None:
            continue
        labels = [delay_label(d) for d in sorted({*queue.retry.delays, queue.retry.defer_seconds})]
        channels[f"{queue.queue}.retry"] = {
            "address": f"{name}.retry.{{delay}}",
            "title": f"{name}.retry.<delay>",
            "description": f"Retry queues of `{name}`, one per delay of its retry policy, with `x-message-ttl` = "
            f"the delay: an expired message dead-letters through `{retry_exchange}` (direct) back to `{name}` "
            f"with `{ATTEMPT_HEADER}` one higher and `x-last-error`.",
            "parameters": {
                "delay": {
                    "description": "the wait, as its queue is named (15s, 5m, 2h, 1500ms); the examples are the "
                    "queues of the default settings",
                    "examples": labels,
                }
            },
            "messages": dict(queue_messages),
            "bindings": _queue_binding(f"{name}.retry.{{delay}}"),
        }
        operations[f"{queue.service}.retry.{queue.name}"] = _operation(
            "send",
            f"{queue.queue}.retry",
            keys,
            queue.service,
            f"{queue.service} puts a message whose try failed in the retry queue of its delay",
            _send_binding(mandatory=True),
        )

    # Broadcast listeners: every process, its own server-named exclusive queue, on the event channels.
    for listener in LISTENERS:
        for key in listener.bindings:
            operations[f"{listener.service}.{listener.name}.{key}"] = _operation(
                "receive",
                key,
                [key],
                listener.service,
                f"every {listener.service} process, on a server-named exclusive auto-deleted queue: "
                f"{listener.description}",
                _RECEIVE_BINDING,
            )

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "LienThong messaging",
            "version": DOCUMENT_VERSION,
            "description": f"The events LienThong's services publish on the `{events_exchange}` topic exchange, "
            "the queues they consume, the per-agency bus queues feed entries are delivered to, and the "
            f"statuses the provincial bus reports back. Names use the broker prefix `{prefix}` "
            "(LIENTHONG_BROKER_PREFIX). Generated by `lienthong asyncapi`; see docs/messaging.md.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "rabbitmq": {
                "host": "127.0.0.1:5672",
                "protocol": "amqp",
                "protocolVersion": "0-9-1",
                "description": "RabbitMQ, as LIENTHONG_BROKER_URL names it (the production topology); the "
                "embedded mode's in-process bus has the same events and work queues but no AMQP channels.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas.schemas, "messages": messages},
    }


def render(document: Json) -> str:
    """The document as committed: sorted keys, two-space indents, UTF-8, a final newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
