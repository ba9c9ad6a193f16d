"""The pull feed: everything addressed to an agency, in order, resumable, long-polled; reading
acknowledges nothing."""

from __future__ import annotations

import asyncio
import time
import uuid

from services.exchange.feed.service import FeedReader
from shared.pagination import encode_cursor
from tests.helpers import Api, assert_problem, get_json, recall, report, send_ok


async def feed(api: Api, client, **params) -> dict:
    return await get_json(api, client, "/v1/feed", **params)


async def test_a_recipient_reads_each_delivery_with_its_metadata_and_attachment_links(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    sent = await send_ok(api, sender, [recipient], subject="Kế hoạch chuyển đổi số năm 2027")
    page = await feed(api, recipient)
    [entry] = page["entries"]
    assert entry["seq"] == 1 and entry["type"] == "delivery.received"
    assert entry["agency_code"] == recipient.agency_code
    data = entry["data"]
    assert data["delivery_id"] == sent["deliveries"][0]["id"] == entry["delivery_id"]
    assert data["document"]["subject"] == "Kế hoạch chuyển đổi số năm 2027"
    assert data["document"]["sender_code"] == sender.agency_code
    [attachment] = data["attachments"]
    download = await api.http.get(attachment["href"], headers=recipient.auth)
    assert download.status_code == 200 and len(download.content) == attachment["size"]
    assert data["links"]["report_status"]["href"] == f"/v1/deliveries/{entry['delivery_id']}/status"
    # reading acknowledges nothing: the delivery is still pending until 01 is reported
    doc = await get_json(api, sender, f"/v1/documents/{sent['id']}")
    assert doc["deliveries"][0]["status"] == "pending"
    # the sender's feed holds nothing yet: no status was reported
    assert (await feed(api, sender))["entries"] == []


async def test_statuses_reach_the_senders_feed_in_order_and_resume_from_the_cursor(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    sent = await send_ok(api, sender, [recipient])
    delivery_id = sent["deliveries"][0]["id"]
    for status in ("01", "03", "04"):
        assert (await report(api, recipient, delivery_id, status)).status_code == 200
    first = await feed(api, sender, limit=2)
    assert [e["data"]["status"] for e in first["entries"]] == ["01", "03"]
    assert [e["seq"] for e in first["entries"]] == [1, 2]
    rest = await feed(api, sender, cursor=first["next_cursor"])
    assert [e["data"]["status"] for e in rest["entries"]] == ["04"]
    assert rest["entries"][0]["data"]["previous_status"] == "03"
    empty = await feed(api, sender, cursor=rest["next_cursor"])
    assert empty["entries"] == [] and empty["next_cursor"] == rest["next_cursor"]


async def test_a_recall_reaches_the_recipient_and_the_answer_the_sender(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    sent = await send_ok(api, sender, [recipient])
    delivery_id = sent["deliveries"][0]["id"]
    await recall(api, sender, sent["id"], reason="Sai số ký hiệu")
    entries = (await feed(api, recipient))["entries"]
    assert [e["type"] for e in entries] == ["delivery.received", "delivery.recall_requested"]
    assert entries[1]["data"]["reason"] == "Sai số ký hiệu"
    assert (await report(api, recipient, delivery_id, "15")).status_code == 200
    [answer] = (await feed(api, sender))["entries"]
    assert answer["type"] == "delivery.status_changed" and answer["data"]["status"] == "15"


async def test_an_update_and_a_replacement_reach_the_recipients(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    sent = await send_ok(api, sender, [recipient])
    await send_ok(api, sender, [recipient], relation={"kind": "update", "document_id": sent["id"]})
    await send_ok(api, sender, [recipient], relation={"kind": "replace", "document_id": sent["id"]})
    entries = (await feed(api, recipient))["entries"]
    assert [e["data"]["document"]["kind"] for e in entries] == ["new", "update", "replace"]
    assert entries[2]["data"]["document"]["original_document_id"] == sent["id"]


async def test_a_long_poll_answers_as_soon_as_an_entry_arrives(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    started = time.monotonic()
    waiting = asyncio.create_task(api.http.get("/v1/feed", params={"wait": 20}, headers=recipient.auth))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await send_ok(api, sender, [recipient])
    response = await asyncio.wait_for(waiting, 10)
    assert response.status_code == 200
    assert [e["type"] for e in response.json()["entries"]] == ["delivery.received"]
    assert time.monotonic() - started < 10


async def test_a_long_poll_with_nothing_new_answers_empty_at_its_deadline(api: Api) -> None:
    recipient = await api.agency_client()
    response = await api.http.get("/v1/feed", params={"wait": 0.5}, headers=recipient.auth)
    assert response.status_code == 200 and response.json()["entries"] == []


async def test_an_agency_never_sees_another_agencys_feed(api: Api) -> None:
    sender, recipient, other = await api.agency_client(), await api.agency_client(), await api.agency_client()
    await send_ok(api, sender, [recipient])
    assert (await feed(api, other))["entries"] == []


async def test_bad_feed_parameters_are_refused(api: Api) -> None:
    auth = (await api.agency_client()).auth
    assert_problem(await api.http.get("/v1/feed", params={"cursor": "nope"}, headers=auth), 400, "bad_request")
    for cursor in (
        encode_cursor(2**63),
        encode_cursor(10**30),
        encode_cursor(-1),
        encode_cursor("1"),
        encode_cursor(1, 2),
    ):
        assert_problem(await api.http.get("/v1/feed", params={"cursor": cursor}, headers=auth), 400, "bad_request")
    for wait in ("nan", "inf", "-1"):
        assert_problem(await api.http.get("/v1/feed", params={"wait": wait}, headers=auth), 422, "validation_failed")
    assert_problem(await api.http.get("/v1/feed", params={"wait": 99}, headers=auth), 422, "validation_failed")
    assert_problem(await api.http.get("/v1/feed", params={"limit": 0}, headers=auth), 422, "validation_failed")
    assert (await api.http.get("/v1/feed")).status_code == 401


async def test_a_long_poll_carrying_on_from_its_page_at_once_is_paced_by_the_linger(api: Api) -> None:
    """Under a steady stream: a long poll whose cursor is the end of the page a long poll of the
    agency got less than the linger ago, finding a page that is not full, answers when the linger
    has passed since that page, with what was committed meanwhile; a full page, another cursor and
    a call without ``wait`` are answered at once."""
    sender, recipient = await api.agency_client(), await api.agency_client()
    runtime = api.service_runtime("exchange")
    pacing = FeedReader(runtime.db, runtime.feed_notifier, linger=3)
    ids = [uuid.UUID((await send_ok(api, sender, [recipient]))["deliveries"][0]["id"]) for _ in range(2)]
    code = recipient.agency_code

    started = time.monotonic()
    page = await pacing.read(code, cursor=None, limit=100, wait=20)  # no page before: at once
    answered = time.monotonic()
    assert [e.delivery_id for e in page.entries] == ids and answered - started < 1.5
    # another cursor (a system reading from the start again), a full page, a call without wait: at once
    started = time.monotonic()
    assert len((await pacing.read(code, cursor=None, limit=2, wait=20)).entries) == 2
    full_answered = time.monotonic()
    assert len((await pacing.read(code, cursor=None, limit=100, wait=0)).entries) == 2
    assert time.monotonic() - started < 1.5
    # the reader carrying on: the entry committed after its page waits for the linger since the page
    # that last answered a long poll (the full page above, up to the same entry), then comes with
    # what was committed meanwhile
    third = uuid.UUID((await send_ok(api, sender, [recipient]))["deliveries"][0]["id"])
    reading = asyncio.create_task(pacing.read(code, cursor=page.next_cursor, limit=100, wait=20))
    fourth = uuid.UUID((await send_ok(api, sender, [recipient]))["deliveries"][0]["id"])
    paced = await asyncio.wait_for(reading, 10)
    assert [e.delivery_id for e in paced.entries] == [third, fourth]
    assert time.monotonic() - full_answered >= 3 - 0.1
    # its deadline still holds: a shorter wait is not held past it
    fifth = uuid.UUID((await send_ok(api, sender, [recipient]))["deliveries"][0]["id"])
    started = time.monotonic()
    short = await pacing.read(code, cursor=paced.next_cursor, limit=100, wait=0.5)
    assert [e.delivery_id for e in short.entries] == [fifth] and time.monotonic() - started < 1.5


async def test_a_woken_long_poll_lingers_and_answers_a_burst_in_one_page(api: Api) -> None:
    """``LIENTHONG_EXCHANGE__FEED_LINGER_SECONDS``: woken by the first entry of a burst, the poll
    reads a moment later, with what was committed meanwhile; entries already there are answered at
    once."""
    sender, recipient = await api.agency_client(), await api.agency_client()
    runtime = api.service_runtime("exchange")
    lingering = FeedReader(runtime.db, runtime.feed_notifier, linger=0.8)
    started = time.monotonic()
    waiting = asyncio.create_task(lingering.read(recipient.agency_code, cursor=None, limit=100, wait=20))
    await asyncio.sleep(0.2)
    first = await send_ok(api, sender, [recipient])
    await asyncio.sleep(0.1)
    second = await send_ok(api, sender, [recipient])
    page = await asyncio.wait_for(waiting, 10)
    assert [e.delivery_id for e in page.entries] == [
        uuid.UUID(first["deliveries"][0]["id"]),
        uuid.UUID(second["deliveries"][0]["id"]),
    ]
    assert time.monotonic() - started >= 0.8
    # nothing to wait for: the entries are there, answered without lingering
    started = time.monotonic()
    again = await lingering.read(recipient.agency_code, cursor=None, limit=100, wait=20)
    assert len(again.entries) == 2 and time.monotonic() - started < 0.5
    # without a linger the woken poll answers the first entry alone
    eager = FeedReader(runtime.db, runtime.feed_notifier, linger=0)
    waiting = asyncio.create_task(eager.read(recipient.agency_code, cursor=page.next_cursor, limit=100, wait=20))
    await asyncio.sleep(0.2)
    third = await send_ok(api, sender, [recipient])
    alone = await asyncio.wait_for(waiting, 10)
    await send_ok(api, sender, [recipient])
    assert [e.delivery_id for e in alone.entries] == [uuid.UUID(third["deliveries"][0]["id"])]
