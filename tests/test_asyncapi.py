"""The AsyncAPI document (docs/asyncapi.json) and docs/messaging.md against the event models.

- the committed document is what ``lienthong asyncapi`` generates now (change an event model,
  regenerate);
- every routing key of every service's ``EVENTS`` has its channel and ``send`` operation, every
  message payload is its model's JSON schema;
- the document holds together as AsyncAPI 3.0.0: operations name existing channels and messages of
  those channels, every ``$ref`` resolves, channel parameters match the addresses;
- docs/messaging.md names every routing key and feed entry type.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field
from typer.testing import CliRunner

from services.asyncapi import (
    AGENCY_QUEUE_CHANNEL,
    FEED_ENTRY_MESSAGE,
    FEED_ENTRY_SCHEMA,
    LISTENERS,
    STATUS_REPORTED,
    build_asyncapi,
    model_schema,
    published_events,
    render,
    service_queues,
)
from services.exchange import events as exchange_events
from services.registry.events import EVENTS as REGISTRY_EVENTS
from services.signature.events import EVENTS as SIGNATURE_EVENTS
from shared.clients import CREDENTIAL_EVENTS
from shared.messaging.envelope import BUNDLED_TYPES

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "docs" / "asyncapi.json"
MESSAGING_DOC = ROOT / "docs" / "messaging.md"
REGENERATE = "run `lienthong asyncapi` (or `.venv/bin/python -m services.cli asyncapi`) and commit docs/asyncapi.json"
KEY = re.compile(r"^[\w.\-]+$")

Json = dict[str, Any]


@pytest.fixture(scope="module")
def document() -> Json:
    return build_asyncapi()


def resolve(document: Json, ref: str) -> Any:
    """Follow a local JSON pointer (``#/a/b~1c``)."""
    assert ref.startswith("#/"), f"not a local reference: {ref}"
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve (no {part!r})"
        node = node[part]
    return node


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def assert_model_in_components(document: Json, ref: Json, model: type[BaseModel]) -> None:
    """``ref`` points at the model's schema, its ``$defs`` are the components of the same names."""
    schemas = document["components"]["schemas"]
    expected = model_schema(model)
    defs = expected.pop("$defs", {})
    assert ref == {"$ref": f"#/components/schemas/{model.__name__}"}
    assert schemas[model.__name__] == expected, f"{model.__name__}: {REGENERATE}"
    for name, definition in defs.items():
        assert schemas[name] == definition, f"{name} (in {model.__name__}): {REGENERATE}"


def one_envelope(document: Json, message_key: str) -> Json:
    """A message's payload as one envelope (a bundled type's: the first of its forms, the second
    being an array of it)."""
    payload: Json = document["components"]["messages"][message_key]["payload"]
    if message_key in BUNDLED_TYPES:
        single, bundle = payload["oneOf"]
        assert bundle == {"type": "array", "minItems": 2, "items": single}
        return single  # type: ignore[no-any-return]
    assert "oneOf" not in payload
    return payload


def envelope_data(document: Json, message_key: str) -> Json:
    payload = one_envelope(document, message_key)
    envelope, specific = payload["allOf"]
    assert envelope == {"$ref": "#/components/schemas/Envelope"}
    assert specific["properties"]["type"] == {"const": message_key}
    data: Json = specific["properties"]["data"]
    return data


# --- the committed document ------------------------------------------------------------------------


def test_the_committed_document_is_what_the_generator_produces_now(document: Json) -> None:
    assert COMMITTED.exists(), f"docs/asyncapi.json is missing: {REGENERATE}"
    committed = COMMITTED.read_text(encoding="utf-8")
    assert committed == render(document), f"docs/asyncapi.json is out of date with the event models: {REGENERATE}"


def test_the_output_is_deterministic() -> None:
    assert render(build_asyncapi()) == render(build_asyncapi())
    assert build_asyncapi("other")["channels"]["exchange.dispatch"]["address"] == "other.exchange.dispatch"


def test_the_command_writes_the_document(tmp_path: Path) -> None:
    from services.cli import app

    output = tmp_path / "sub" / "asyncapi.json"
    result = CliRunner().invoke(app, ["asyncapi", "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert output.read_text(encoding="utf-8") == render(build_asyncapi())


# --- against the models ----------------------------------------------------------------------------


def test_every_published_routing_key_has_its_channel_and_send_operation(document: Json) -> None:
    published = published_events()
    assert set(published) == {"registry", "exchange", "signature"}
    assert published["registry"] == REGISTRY_EVENTS and published["exchange"] == exchange_events.EVENTS
    assert published["signature"] == SIGNATURE_EVENTS
    for service, events in published.items():
        for key in events:
            channel = document["channels"].get(key)
            assert channel is not None, f"no channel for {key}: {REGENERATE}"
            assert channel["address"] == key
            assert channel["bindings"]["amqp"]["is"] == "routingKey"
            assert channel["bindings"]["amqp"]["exchange"] == {
                "name": "lienthong.events",
                "type": "topic",
                "durable": True,
                "autoDelete": False,
            }
            operation = document["operations"][f"{service}.publish.{key}"]
            assert operation["action"] == "send"
            assert operation["channel"] == {"$ref": f"#/channels/{key}"}
            assert operation["tags"] == [{"name": service}]


def test_every_event_message_carries_its_model_schema_in_the_envelope(document: Json) -> None:
    for service, events in published_events().items():
        for key, model in events.items():
            message = document["components"]["messages"][key]
            specific = one_envelope(document, key)["allOf"][1]["properties"]
            assert specific["source"] == {"const": service}
            assert_model_in_components(document, envelope_data(document, key), model)
            assert message["bindings"]["amqp"]["messageType"] == key
            assert message["contentType"] == "application/json"


def test_the_feed_entry_on_an_agency_queue_is_feed_entry_added_with_its_data_by_type(document: Json) -> None:
    message = document["components"]["messages"][FEED_ENTRY_MESSAGE]
    assert message["payload"] == {"$ref": f"#/components/schemas/{FEED_ENTRY_SCHEMA}"}
    entry, by_type = document["components"]["schemas"][FEED_ENTRY_SCHEMA]["allOf"]
    assert_model_in_components(document, entry, exchange_events.FeedEntryAdded)
    variants = {v["properties"]["type"]["const"]: v["properties"]["data"] for v in by_type["oneOf"]}
    assert set(variants) == set(exchange_events.FEED_DATA)
    for entry_type, model in exchange_events.FEED_DATA.items():
        assert_model_in_components(document, variants[entry_type], model)
    channel = document["channels"][AGENCY_QUEUE_CHANNEL]
    assert channel["address"] == "{queue}" and channel["bindings"]["amqp"]["is"] == "queue"
    assert document["operations"]["exchange.deliver.feed_entry"]["action"] == "send"


def test_the_bus_status_report_is_received_by_the_exchange(document: Json) -> None:
    channel = document["channels"][STATUS_REPORTED]
    assert channel["bindings"]["amqp"]["exchange"]["name"] == "lienthong.events"
    assert "source" not in document["components"]["messages"][STATUS_REPORTED]["payload"]["allOf"][1]["properties"]
    model = exchange_events.INBOUND[STATUS_REPORTED]
    assert_model_in_components(document, envelope_data(document, STATUS_REPORTED), model)
    assert not [
        o
        for o in document["operations"].values()
        if o["action"] == "send" and o["channel"] == {"$ref": f"#/channels/{STATUS_REPORTED}"}
    ]
    operation = document["operations"]["exchange.consume.status_reports"]
    assert operation["action"] == "receive"
    assert operation["channel"] == {"$ref": "#/channels/exchange.status_reports"}
    assert operation["messages"] == [{"$ref": f"#/channels/exchange.status_reports/messages/{STATUS_REPORTED}"}]
    assert document["channels"]["exchange.status_reports.dead"]["address"] == "lienthong.exchange.status_reports.dead"


def test_an_inbound_model_is_picked_up_from_the_exchange(monkeypatch: pytest.MonkeyPatch) -> None:
    class ReceiptConfirmedOverBus(BaseModel):
        agency_code: str
        delivery_id: str
        code: str = Field(pattern=r"^[0-9]{2}$")

    monkeypatch.setitem(exchange_events.INBOUND, "delivery.receipt_confirmed.v1", ReceiptConfirmedOverBus)
    document = build_asyncapi()
    data = envelope_data(document, "delivery.receipt_confirmed.v1")
    assert_model_in_components(document, data, ReceiptConfirmedOverBus)
    assert "delivery.receipt_confirmed.v1" in document["channels"]["exchange.status_reports"]["messages"]


def test_the_queues_are_those_the_services_declare() -> None:
    from services.archive.consumers import CONSUMERS
    from services.exchange.dependencies import ExchangeRuntime
    from services.settings import Settings

    runtime = ExchangeRuntime(Settings())
    declared = {("exchange", c.name, c.bindings, None, None) for c in runtime.consumers} | {
        ("exchange", w.name, w.bindings, w.retry, w.prefetch) for w in runtime.workers
    }
    declared |= {("archive", c.name, c.bindings, None, None) for c in CONSUMERS}
    from services.registry.consumers import audit_consumer
    from services.registry.dependencies import RegistryRuntime

    audit = audit_consumer(RegistryRuntime(Settings()))
    declared |= {("registry", audit.name, audit.bindings, None, None)}
    from services.hub.dependencies import HubRuntime

    declared |= {("hub", w.name, w.bindings, w.retry, w.prefetch) for w in HubRuntime(Settings()).workers}
    assert {(q.service, q.name, q.bindings, q.retry, q.prefetch) for q in service_queues()} == declared
    listened = {(listener.service, listener.bindings) for listener in LISTENERS}
    assert {("exchange", listener.bindings) for listener in runtime.listeners} == {
        item for item in listened if item[0] == "exchange"
    }
    assert {item for item in listened if item[0] == "gateway"} == {("gateway", CREDENTIAL_EVENTS)}


def test_every_consumed_queue_has_its_channel_and_dead_letter_queue(document: Json) -> None:
    queues = {q.queue: q for q in service_queues()}
    assert {"archive.documents", "exchange.dispatch", "exchange.status_reports"} <= set(queues)
    for name, queue in queues.items():
        channel = document["channels"][name]
        assert channel["address"] == f"lienthong.{name}"
        assert channel["bindings"]["amqp"]["queue"]["name"] == f"lienthong.{name}"
        assert channel["bindings"]["amqp"]["queue"]["durable"] is True
        assert set(channel["messages"]) == set(queue.bindings)
        assert document["channels"][f"{name}.dead"]["address"] == f"lienthong.{name}.dead"
        assert document["operations"][f"{queue.service}.consume.{queue.name}"]["action"] == "receive"
    retry = document["channels"]["exchange.dispatch.retry"]
    assert retry["address"] == "lienthong.exchange.dispatch.retry.{delay}"
    assert set(retry["messages"]) == {"feed.entry_added.v1"}
    assert retry["parameters"]["delay"]["examples"] == ["5s", "10s", "1m", "5m", "30m", "1h", "3h", "6h", "12h"]
    assert "exchange.retry.dispatch" in document["operations"]
    assert "exchange.dead_letter.dispatch" in document["operations"]
    assert "exchange.retry.status_reports" not in document["operations"]


def test_every_listener_binding_is_a_published_event(document: Json) -> None:
    for listener in LISTENERS:
        for key in listener.bindings:
            assert key in document["channels"], f"{listener.service}.{listener.name} binds unknown {key}"
            assert document["operations"][f"{listener.service}.{listener.name}.{key}"]["action"] == "receive"


# --- structure ---------------------------------------------------------------------------------------


def test_the_document_holds_together_as_asyncapi_3(document: Json) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] and document["info"]["version"]
    for server in document["servers"].values():
        assert server["protocol"] == "amqp" and server["host"]
    for section in ("channels", "operations"):
        assert all(KEY.match(k) for k in document[section]), section
    for section in ("schemas", "messages"):
        assert all(KEY.match(k) for k in document["components"][section]), section

    for channel_id, channel in document["channels"].items():
        assert isinstance(channel["address"], str) and channel["messages"], channel_id
        for message_ref in channel["messages"].values():
            assert resolve(document, message_ref["$ref"])["payload"]
        placeholders = set(re.findall(r"{(\w+)}", channel["address"]))
        assert placeholders == set(channel.get("parameters", {})), f"{channel_id}: parameters and address differ"
        assert channel["bindings"]["amqp"]["is"] in ("routingKey", "queue")

    for operation_id, operation in document["operations"].items():
        assert operation["action"] in ("send", "receive"), operation_id
        channel_ref = operation["channel"]["$ref"]
        channel = resolve(document, channel_ref)
        assert channel in document["channels"].values(), operation_id
        assert operation["messages"], operation_id
        for message in operation["messages"]:
            # an operation's messages are messages of its channel
            assert message["$ref"].startswith(f"{channel_ref}/messages/"), operation_id
            resolve(document, message["$ref"])

    for ref in set(refs(document)):
        resolve(document, ref)


def test_every_component_schema_is_used(document: Json) -> None:
    used = {ref.rsplit("/", 1)[1] for ref in refs(document) if ref.startswith("#/components/schemas/")}
    assert set(document["components"]["schemas"]) == used


# --- docs/messaging.md -------------------------------------------------------------------------------


def test_the_messaging_doc_names_every_routing_key_and_feed_entry_type() -> None:
    text = MESSAGING_DOC.read_text(encoding="utf-8")
    keys = [key for events in published_events().values() for key in events] + list(exchange_events.INBOUND)
    missing = [key for key in keys if f"`{key}`" not in text]
    assert not missing, f"docs/messaging.md does not list {missing}"
    missing_types = [t for t in exchange_events.FEED_DATA if f"`{t}`" not in text]
    assert not missing_types, f"docs/messaging.md does not describe the feed entry types {missing_types}"
    models = {m.__name__ for events in published_events().values() for m in events.values()}
    assert not [m for m in sorted(models) if m not in text], "docs/messaging.md names every payload model"
    assert "asyncapi.json" in text and "## Consuming the bus" in text


def test_the_committed_document_is_valid_json_with_sorted_keys() -> None:
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert json.dumps(committed, indent=2, sort_keys=True, ensure_ascii=False) + "\n" == COMMITTED.read_text(
        encoding="utf-8"
    )
