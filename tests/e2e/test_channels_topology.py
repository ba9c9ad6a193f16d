"""Delivery channels in the production topology (five processes, PostgreSQL, RabbitMQ): the
dispatcher killed with SIGKILL mid-stream and restarted, and RabbitMQ away during a run, lose no
delivery, and the webhook receiver — deduping by delivery id as the docs say — takes each once.

RabbitMQ going away is every connection cut at once and nobody listening for a while, through a
proxy in front of the real broker: the other tests running in parallel keep theirs."""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import AMQP_URL, topology_running
from tests.exchange.channels.receiver import WebhookReceiver
from tests.helpers import Api, TcpProxy, get_json, send_ok, wait_until

pytestmark = [pytest.mark.topology, pytest.mark.postgres, pytest.mark.rabbitmq]

CHANNEL_ENV = {
    "LIENTHONG_WEBHOOKS__ALLOW_HTTP": "true",
    "LIENTHONG_WEBHOOKS__ALLOWED_NETWORKS": '["127.0.0.0/8"]',
    "LIENTHONG_EXCHANGE__PUSH_RETRY_SCHEDULE": "[0.5, 1, 1, 2, 2, 4, 4, 8, 8, 16, 16]",
    "LIENTHONG_EXCHANGE__DISPATCH_DEFER_SECONDS": "0.5",
    "LIENTHONG_OUTBOX__RETRY_MAX_SECONDS": "1",
}


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    tcp = TcpProxy("127.0.0.1", 5672)
    await tcp.open()
    yield tcp
    await tcp.cut()


async def test_a_killed_dispatcher_and_an_absent_broker_lose_nothing_and_deliver_each_once(
    tmp_path: Path, fresh_pg_database: str, broker_prefix: str, proxy: TcpProxy
) -> None:
    receiver = WebhookReceiver(hang=0.05)
    await receiver.start()
    broker_url = AMQP_URL.replace(":5672", f":{proxy.port}")
    assert broker_url != AMQP_URL
    try:
        async with (
            topology_running(
                tmp_path / "var", fresh_pg_database, broker_prefix, broker_url=broker_url, **CHANNEL_ENV
            ) as (topology, settings),
            httpx.AsyncClient(base_url=topology.url("gateway"), timeout=30) as http,
        ):
            api = Api(http, settings)
            sender, recipient = await api.agency_client(), await api.agency_client()
            response = await http.put(
                f"/v1/agencies/{recipient.agency_code}/endpoint",
                json={"mode": "push", "webhook_url": receiver.url},
                headers=await api.admin(),
            )
            assert response.status_code == 200, response.text
            receiver.secret = response.json()["webhook_secret"]
            accepted = [await send_ok(api, sender, [recipient]) for _ in range(20)]
            # the dispatcher is delivering: kill it, as a crash, and start it again
            await wait_until(lambda: len(receiver.calls) >= 3, within=20, what="the first webhook calls")
            await asyncio.to_thread(topology.kill, "exchange")
            await asyncio.to_thread(topology.restart, "exchange")
            # RabbitMQ away: documents are still accepted (the outbox keeps them) …
            await proxy.cut()
            accepted += [await send_ok(api, sender, [recipient]) for _ in range(10)]
            await asyncio.sleep(1.0)
            await proxy.open()  # … and delivered once it is back
            expected = {a["deliveries"][0]["id"] for a in accepted}
            await wait_until(
                lambda: {c.entry["data"]["delivery_id"] for c in receiver.accepted} == expected,
                within=90,
                what="every accepted delivery at the webhook",
            )
            assert all(call.signature_ok for call in receiver.calls)
            # a redelivered call carries the same delivery id: the receiver's dedupe makes it once
            by_id = collections.Counter(call.delivery_id for call in receiver.calls if call.answered == 200)
            assert len(by_id) == 30
            entries = (await get_json(api, recipient, "/v1/feed", limit=100))["entries"]
            assert [e["seq"] for e in entries] == list(range(1, 31))
            assert {e["id"] for e in entries} == set(by_id)
            assert {json.loads(c.body)["seq"] for c in receiver.accepted} == set(range(1, 31))
    finally:
        await receiver.stop()
