"""Push delivery: each feed entry POSTed to the agency's webhook, HMAC-signed, retried with
back-off, given up after the last try (the sender told, the entry dead-lettered, an admin re-sends
it); one slow receiver never delays another agency. On the in-process bus (embedded mode)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from services.exchange.events import EVENTS
from services.exchange.models import messaging
from shared.messaging import InProcessBroker
from shared.webhooks import sign, verify
from tests.conftest import running_system
from tests.exchange.channels.receiver import WebhookReceiver
from tests.helpers import Api, Client, document, exchange_db, get_json, report, send_ok, wait_until

LOCAL_WEBHOOKS = {"allow_http": True, "allowed_networks": ["127.0.0.0/8"], "timeout_seconds": 1.0}
FAST_RETRIES = {"push_retry_schedule": [0.2, 0.4, 0.8], "dispatch_defer_seconds": 0.2}


@pytest.fixture
async def api(database_url: str | None, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_system(tmp_path / "var", database_url, webhooks=LOCAL_WEBHOOKS, exchange=FAST_RETRIES) as caller:
        yield caller


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    hook = WebhookReceiver()
    await hook.start()
    yield hook
    await hook.stop()


async def use_webhook(api: Api, agency: Client, receiver: WebhookReceiver) -> None:
    response = await api.http.put(
        f"/v1/agencies/{agency.agency_code}/endpoint",
        json={"mode": "push", "webhook_url": receiver.url},
        headers=await api.admin(),
    )
    assert response.status_code == 200, response.text
    receiver.secret = response.json()["webhook_secret"]


async def test_a_delivery_is_posted_signed_with_the_same_body_as_the_feed_entry(
    api: Api, receiver: WebhookReceiver
) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    await use_webhook(api, recipient, receiver)
    sent = await send_ok(api, sender, [recipient])
    await wait_until(lambda: receiver.accepted, what="the webhook call")
    [call] = receiver.calls
    assert call.signature_ok and call.event == "delivery.received"
    [entry] = (await get_json(api, recipient, "/v1/feed"))["entries"]
    assert call.delivery_id == entry["id"]
    assert call.entry == entry and call.entry["data"]["delivery_id"] == sent["deliveries"][0]["id"]


async def test_only_the_entries_of_agencies_that_do_not_pull_go_to_the_dispatcher(
    api: Api, receiver: WebhookReceiver
) -> None:
    """The channel an entry takes is decided when it is written: one document to a pull agency and a
    push agency records one ``feed.entry_added.v1`` event, the push agency's (delivered); the pull
    agency's entry takes no trip through the broker, and both are in their feeds."""
    sender, pulling, pushing = await api.agency_client(), await api.agency_client(), await api.agency_client()
    await use_webhook(api, pushing, receiver)
    sent = await send_ok(api, sender, [pulling, pushing])
    await wait_until(lambda: receiver.accepted, what="the webhook call")
    outbox = messaging.outbox
    async with exchange_db(api).reading() as session:
        rows = (await session.execute(select(outbox).where(outbox.c.routing_key == "feed.entry_added.v1"))).all()
    recorded = [EVENTS["feed.entry_added.v1"].model_validate(row.payload) for row in rows]  # the schema holds
    mine = [e for e in recorded if e.document_id == uuid.UUID(sent["id"])]  # type: ignore[attr-defined]
    assert [(e.agency_code, e.type) for e in mine] == [(pushing.agency_code, "delivery.received")]  # type: ignore[attr-defined]
    [call] = receiver.calls
    assert call.entry["id"] == str(mine[0].id)  # type: ignore[attr-defined]
    for agency in (pulling, pushing):
        [entry] = (await get_json(api, agency, "/v1/feed"))["entries"]
        assert entry["document_id"] == sent["id"] and entry["type"] == "delivery.received"


async def test_a_tampered_body_fails_the_signature_check(api: Api, receiver: WebhookReceiver) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    await use_webhook(api, recipient, receiver)
    await send_ok(api, sender, [recipient])
    await wait_until(lambda: receiver.accepted, what="the webhook call")
    call = receiver.calls[0]
    timestamp = str(int(time.time()))
    signature = f"v1={sign(receiver.secret, timestamp, call.body)}"
    assert verify(receiver.secret, timestamp, call.body, signature)
    tampered = call.body.replace(b"delivery.received", b"delivery.receivee")
    assert not verify(receiver.secret, timestamp, tampered, signature)
    assert not verify("another-secret-of-32-characters-or-more", timestamp, call.body, signature)


async def test_statuses_reach_the_senders_webhook(api: Api, receiver: WebhookReceiver) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    await use_webhook(api, sender, receiver)
    sent = await send_ok(api, sender, [recipient])
    delivery_id = sent["deliveries"][0]["id"]
    for status in ("01", "03"):
        assert (await report(api, recipient, delivery_id, status)).status_code == 200
    await wait_until(lambda: len(receiver.accepted) == 2, what="two status calls")
    # pushes to one agency may run side by side: a receiver orders them by seq (docs/channels.md)
    in_order = sorted(receiver.accepted, key=lambda c: c.entry["seq"])
    assert [c.entry["data"]["status"] for c in in_order] == ["01", "03"]
    assert {c.event for c in receiver.accepted} == {"delivery.status_changed"}


async def test_a_receiver_down_then_back_gets_everything_exactly_once(api: Api, receiver: WebhookReceiver) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    await use_webhook(api, recipient, receiver)
    await receiver.stop()  # connection refused from now on
    sent = [await send_ok(api, sender, [recipient]) for _ in range(5)]
    await asyncio.sleep(0.5)  # the first tries and a retry fail
    await receiver.start()  # the same port
    await wait_until(lambda: len(receiver.accepted) == 5, within=15, what="the five deliveries")
    await asyncio.sleep(1.0)  # nothing more arrives
    assert len(receiver.calls) == 5  # each once: none was taken twice
    got = sorted(c.entry["data"]["delivery_id"] for c in receiver.calls)
    assert got == sorted(s["deliveries"][0]["id"] for s in sent)


async def test_a_receiver_failing_every_try_ends_failed_the_sender_told_and_an_admin_resends(
    api: Api, receiver: WebhookReceiver
) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    await use_webhook(api, recipient, receiver)
    receiver.status = 500
    sent = await send_ok(api, sender, [recipient])
    delivery_id = sent["deliveries"][0]["id"]
    admin = await api.admin()

    async def failures() -> list[dict[str, object]]:
        params = {"agency_code": recipient.agency_code}
        response = await api.http.get("/v1/transfers/failed", params=params, headers=admin)
        assert response.status_code == 200, response.text
        return list(response.json()["items"])

    await wait_until(failures, within=15, what="the failed transfer")
    [failure] = await failures()
    assert len(receiver.calls) == 4  # the first try and three retries
    assert failure["attempts"] == 4 and failure["channel"] == "push" and failure["target"] == receiver.url
    assert failure["delivery_id"] == delivery_id and "answered 500" in str(failure["reason"])
    # the delivery is marked, and the sender is told in its own feed
    seen = (await document(api, sender, sent["id"]))["deliveries"][0]
    assert seen["transfer_failed_at"] is not None and "500" in seen["transfer_error"]
    [told] = (await get_json(api, sender, "/v1/feed"))["entries"]
    assert told["type"] == "delivery.transfer_failed" and told["data"]["recipient_code"] == recipient.agency_code
    # the message sits in the dead-letter queue with the reason
    bus = api.service_runtime("exchange").broker
    assert isinstance(bus, InProcessBroker)
    [dead] = await bus.store.dead("exchange.dispatch")
    assert "answered 500" in (dead.dead_reason or "") and json.loads(dead.body)["data"]["id"] == failure["entry_id"]
    # only admins list and re-send
    assert (await api.http.get("/v1/transfers/failed", headers=sender.auth)).status_code == 403
    # the receiver is fixed; an admin re-sends: the same entry id arrives, the delivery is clear again
    receiver.status = 200
    resent = await api.http.post(f"/v1/transfers/failed/{failure['id']}/resend", headers=admin)
    assert resent.status_code == 202 and resent.json()["resent"] == [failure["id"]]
    await wait_until(lambda: receiver.accepted, within=10, what="the re-sent entry")
    assert receiver.accepted[0].delivery_id == failure["entry_id"]
    assert (await failures()) == []
    assert (await document(api, sender, sent["id"]))["deliveries"][0]["transfer_failed_at"] is None


async def test_resending_an_unknown_failure_is_404(api: Api) -> None:
    response = await api.http.post(
        "/v1/transfers/failed/0190b3c6-0000-7000-8000-000000000000/resend", headers=await api.admin()
    )
    assert response.status_code == 404 and response.json()["code"] == "transfer_failure_not_found"


async def test_a_hanging_receiver_does_not_delay_another_agency(api: Api) -> None:
    slow, quick = WebhookReceiver(hang=5.0), WebhookReceiver()
    await slow.start()
    await quick.start()
    try:
        sender = await api.agency_client()
        stuck, other = await api.agency_client(), await api.agency_client()
        await use_webhook(api, stuck, slow)
        await use_webhook(api, other, quick)
        for _ in range(12):
            await send_ok(api, sender, [stuck])
        started = time.monotonic()
        await send_ok(api, sender, [other])
        await wait_until(lambda: quick.accepted, within=5, what="the other agency's delivery")
        assert time.monotonic() - started < 1.5
    finally:
        await slow.stop()
        await quick.stop()
