"""The webhook receiver docs/channels.md shows really verifies LienThong's signatures."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.webhooks import signed_headers

DOC = Path(__file__).resolve().parents[1] / "docs" / "channels.md"


def receiver_app(secret: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    text = DOC.read_text()
    [code] = re.findall(r"<!-- receiver: tested by tests/test_docs_channels.py -->\n```python\n(.*?)```", text, re.S)
    assert len([line for line in code.splitlines() if line.strip()]) <= 12, "the docs promise about ten lines"
    monkeypatch.setenv("LIENTHONG_WEBHOOK_SECRET", secret)
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    return namespace["app"]


async def test_the_documented_receiver_accepts_a_signed_call_and_refuses_tampering(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "s" * 43
    app = receiver_app(secret, monkeypatch)
    body = b'{"id":"e1","seq":1,"type":"delivery.received"}'
    headers = signed_headers(secret, body, delivery_id="e1", event_type="delivery.received")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://receiver") as http:
        assert (await http.post("/hook", content=body, headers=headers)).status_code == 204
        assert (await http.post("/hook", content=body + b" ", headers=headers)).status_code == 401
        other = signed_headers("x" * 43, body, delivery_id="e1", event_type="delivery.received")
        assert (await http.post("/hook", content=body, headers=other)).status_code == 401
        stale = signed_headers(secret, body, delivery_id="e1", event_type="t", now=time.time() - 3600)
        assert (await http.post("/hook", content=body, headers=stale)).status_code == 401
        assert (await http.post("/hook", content=body)).status_code == 401


async def test_the_documented_bus_consumer_takes_an_entry_from_the_agencys_queue(broker_prefix: str) -> None:
    import asyncio

    import aio_pika

    from tests.conftest import AMQP_URL
    from tests.helpers import wait_until

    text = (DOC.parent / "messaging.md").read_text()
    [code] = re.findall(r"<!-- consumer: tested by tests/test_docs_channels.py -->\n```python\n(.*?)```", text, re.S)
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/messaging.md", "exec"), namespace)
    queue = f"{broker_prefix}.lgsp.docs"
    got: list[dict[str, Any]] = []

    async def handle(entry: dict[str, Any]) -> None:
        got.append(entry)

    connection = await aio_pika.connect(AMQP_URL)
    consumer = None
    try:
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            # declared first, as the exchange does when the agency chooses the bus
            declared = await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
            consumer = asyncio.create_task(namespace["consume"](AMQP_URL, queue, handle))
            await channel.default_exchange.publish(
                aio_pika.Message(b'{"id": "e1", "seq": 1, "type": "delivery.received"}'), routing_key=queue
            )
            await wait_until(lambda: got or consumer.done(), what="the entry consumed")  # type: ignore[union-attr]
            if consumer.done():
                consumer.result()
            assert got == [{"id": "e1", "seq": 1, "type": "delivery.received"}]
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
            assert (await channel.declare_queue(queue, passive=True)).declaration_result.message_count == 0
            await declared.delete(if_unused=False, if_empty=False)
    finally:
        if consumer is not None:
            consumer.cancel()
