"""The provincial bus: each feed entry published to the agency's own durable queue; statuses
published back to the events exchange, validated like the REST call (a bad one dead-lettered with
its reason). The whole system in one process on the real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import pytest

from services.settings import Settings
from shared.messaging import DEAD_REASON_HEADER, RabbitBroker
from tests.conftest import AMQP_URL, TEMPLATES, delete_queues, running_system
from tests.exchange.channels.receiver import WebhookReceiver
from tests.exchange.channels.test_push import FAST_RETRIES, LOCAL_WEBHOOKS, use_webhook
from tests.helpers import Api, Client, assert_problem, document, get_json, send_ok, wait_until

pytestmark = pytest.mark.xdist_group("rabbit-system")


@pytest.fixture
async def api(tmp_path: Path, broker_prefix: str) -> AsyncIterator[Api]:
    async with TEMPLATES.pg_clone() as url:
        broker = RabbitBroker(AMQP_URL, broker_prefix)
        settings_used: list[Settings] = []
        try:
            async with running_system(
                tmp_path / "var",
                url,
                broker=broker,
                broker_url=AMQP_URL,
                broker_prefix=broker_prefix,
                webhooks=LOCAL_WEBHOOKS,
                exchange=FAST_RETRIES,
            ) as caller:
                settings_used.append(caller.settings)
                yield caller
        finally:
            if settings_used:
                await delete_queues(settings_used[0], *QUEUES)


QUEUES: list[str] = []


async def use_bus(api: Api, agency: Client) -> str:
    queue = f"{api.settings.broker_prefix}.lgsp.{agency.agency_code}"
    QUEUES.append(queue)
    response = await api.http.put(
        f"/v1/agencies/{agency.agency_code}/endpoint",
        json={"mode": "amqp", "amqp_queue": queue},
        headers=await api.admin(),
    )
    assert response.status_code == 200, response.text
    return queue


async def take(queue: str, count: int) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Consume ``count`` messages from a queue as the bus would (acknowledged)."""
    got: list[aio_pika.abc.AbstractIncomingMessage] = []
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        # the exchange declares the queue (durable, quorum) with the first entry it delivers
        q = await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})

        async def enough() -> bool:
            message = await q.get(fail=False)
            if message is not None:
                await message.ack()
                got.append(message)
            return len(got) >= count

        await wait_until(enough, within=10, what=f"{count} messages in {queue}")
    return got


async def publish_status(api: Api, data: dict[str, object], message_id: str | None = None) -> None:
    """Publish a status as the bus does: an envelope to the events exchange."""
    envelope = {
        "id": message_id or str(uuid.uuid4()),
        "type": "delivery.status_reported.v1",
        "source": "lgsp",
        "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
        "data": data,
    }
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(f"{api.settings.broker_prefix}.events")
        await exchange.publish(
            aio_pika.Message(json.dumps(envelope).encode(), message_id=envelope["id"]),
            routing_key="delivery.status_reported.v1",
        )


async def dead_reasons(api: Api) -> list[str]:
    reasons = []
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{api.settings.broker_prefix}.exchange.status_reports.dead", passive=True)
        while (message := await queue.get(fail=False)) is not None:
            reasons.append(str((message.headers or {}).get(DEAD_REASON_HEADER)))
    return reasons


async def test_a_delivery_reaches_the_agencys_queue_and_its_status_comes_back_over_the_bus(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    queue = await use_bus(api, recipient)
    sent = await send_ok(api, sender, [recipient])
    delivery_id = sent["deliveries"][0]["id"]
    [message] = await take(queue, 1)
    entry = json.loads(message.body)
    [listed] = (await get_json(api, recipient, "/v1/feed"))["entries"]
    assert entry == listed and message.message_id == listed["id"] and message.type == "delivery.received"
    status_id = str(uuid.uuid4())
    await publish_status(api, {"agency_code": recipient.agency_code, "delivery_id": delivery_id, "status": "01"})
    # the reporter's timestamp and StaffInfo travel as in the REST call
    registered = {
        "agency_code": recipient.agency_code,
        "delivery_id": delivery_id,
        "status": "03",
        "timestamp": "2026-11-20T09:15:00+07:00",
        "staff": {"department": "Văn phòng", "staff": "Trần Thị B"},
    }
    await publish_status(api, registered, status_id)  # the same message again (a redelivery): changes nothing twice
    await publish_status(api, registered, status_id)

    async def accepted() -> bool:
        return (await document(api, sender, sent["id"]))["deliveries"][0]["status"] == "03"

    await wait_until(accepted, what="01 then 03 applied")
    history = (await document(api, sender, sent["id"]))["deliveries"][0]["history"]
    assert [h["status"] for h in history] == ["pending", "01", "03"]
    assert dt.datetime.fromisoformat(history[-1]["timestamp"]) == dt.datetime.fromisoformat(registered["timestamp"])
    assert history[-1]["staff"] == {"department": "Văn phòng", "staff": "Trần Thị B", "email": None, "mobile": None}
    assert [e["data"]["status"] for e in (await get_json(api, sender, "/v1/feed"))["entries"]] == ["01", "03"]


async def test_the_agencys_queue_exists_as_soon_as_it_chooses_the_bus(api: Api) -> None:
    agency = await api.agency_client()
    queue = await use_bus(api, agency)

    async def declared() -> bool:
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            try:
                channel = await connection.channel()
                await channel.declare_queue(queue, passive=True)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                return False
        return True

    await wait_until(declared, what=f"queue {queue} declared")


async def test_a_status_the_rest_call_would_refuse_is_dead_lettered_with_its_reason(api: Api) -> None:
    sender, recipient, stranger = await api.agency_client(), await api.agency_client(), await api.agency_client()
    await use_bus(api, recipient)
    await use_bus(api, stranger)
    sent = await send_ok(api, sender, [recipient])
    delivery_id = sent["deliveries"][0]["id"]
    await publish_status(api, {"agency_code": recipient.agency_code, "delivery_id": delivery_id, "status": "06"})
    await publish_status(api, {"agency_code": stranger.agency_code, "delivery_id": delivery_id, "status": "01"})
    await publish_status(api, {"agency_code": recipient.agency_code, "delivery_id": "nope", "status": "01"})
    await publish_status(api, {"agency_code": sender.agency_code, "delivery_id": delivery_id, "status": "01"})
    found: list[str] = []

    async def four_dead() -> bool:
        found[:] = await dead_reasons(api)
        return len(found) >= 4

    await wait_until(four_dead, what="four dead letters")
    assert any(r.startswith("delivery_transition_invalid") for r in found)
    assert any(r.startswith("delivery_not_found") for r in found)
    assert any(r.startswith("validation_failed") and "delivery_id" in r for r in found)
    assert any(r.startswith("channel_mismatch") for r in found)
    assert (await document(api, sender, sent["id"]))["deliveries"][0]["status"] == "pending"


async def test_amqp_mode_is_refused_without_rabbitmq(tmp_path: Path) -> None:
    async with running_system(tmp_path / "var") as api:
        agency = await api.agency_client()
        response = await api.http.put(
            f"/v1/agencies/{agency.agency_code}/endpoint",
            json={"mode": "amqp", "amqp_queue": "lgsp.test"},
            headers=await api.admin(),
        )
        assert_problem(response, 422, "amqp_needs_broker")


async def test_a_webhook_failing_every_try_ends_in_rabbitmqs_dead_letter_queue_and_the_sender_is_told(
    api: Api,
) -> None:
    receiver = WebhookReceiver(status=500)
    await receiver.start()
    try:
        sender, recipient = await api.agency_client(), await api.agency_client()
        await use_webhook(api, recipient, receiver)
        sent = await send_ok(api, sender, [recipient])
        reasons: list[tuple[str, dict[str, object]]] = []

        async def dead_lettered() -> bool:
            connection = await aio_pika.connect(AMQP_URL)
            async with connection:
                channel = await connection.channel()
                name = f"{api.settings.broker_prefix}.exchange.dispatch.dead"
                queue = await channel.declare_queue(name, passive=True)
                while (message := await queue.get(fail=False)) is not None:
                    reasons.append((str((message.headers or {}).get(DEAD_REASON_HEADER)), json.loads(message.body)))
            return bool(reasons)

        await wait_until(dead_lettered, within=15, what="the entry in the dead-letter queue")
        [(reason, envelope)] = reasons
        assert "gave up after 4 tries" in reason and "answered 500" in reason
        assert envelope["data"]["delivery_id"] == sent["deliveries"][0]["id"]
        assert len(receiver.calls) == 4
        told = (await get_json(api, sender, "/v1/feed"))["entries"]
        assert [e["type"] for e in told] == ["delivery.transfer_failed"]
        assert (await document(api, sender, sent["id"]))["deliveries"][0]["transfer_failed_at"] is not None
    finally:
        await receiver.stop()
