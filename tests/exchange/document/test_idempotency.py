"""Idempotent sending: Idempotency-Key and sender document id replays, the same number twice in a year."""

from __future__ import annotations

import secrets
import uuid

from tests.helpers import (
    Api,
    assert_problem,
    document,
    inbox_ids,
    race,
    random_code,
    send_ok,
    sent_ids,
    snapshot,
)

# --- idempotency -----------------------------------------------------------------------------


async def test_idempotency_key_replay_returns_the_original_document(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    key = {"Idempotency-Key": f"qlvb-{uuid.uuid4()}"}
    first = await api.send(sender, [recipient.agency_code], headers=key, code_number="31")
    assert first.status_code == 202
    again = await api.send(sender, [recipient.agency_code], headers=key, code_number="31")
    assert again.status_code == 200
    assert again.json() == first.json()
    assert await inbox_ids(api, recipient) == [first.json()["id"]]

    other_key = await api.send(sender, [recipient.agency_code], headers={"Idempotency-Key": f"qlvb-{uuid.uuid4()}"})
    no_key = await api.send(sender, [recipient.agency_code])
    assert (other_key.status_code, no_key.status_code) == (202, 202)
    assert len({first.json()["id"], other_key.json()["id"], no_key.json()["id"]}) == 3
    assert len(await inbox_ids(api, recipient)) == 3


async def test_idempotency_keys_belong_to_their_sender(api: Api) -> None:
    a, b, recipient = await api.agency_client(), await api.agency_client(), await api.agency_client()
    key = {"Idempotency-Key": "same-key"}
    from_a = await api.send(a, [recipient.agency_code], headers=key)
    from_b = await api.send(b, [recipient.agency_code], headers=key)
    assert (from_a.status_code, from_b.status_code) == (202, 202)
    assert from_a.json()["id"] != from_b.json()["id"]
    assert sorted(await inbox_ids(api, recipient)) == sorted([from_a.json()["id"], from_b.json()["id"]])


async def test_refused_request_does_not_burn_its_idempotency_key(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    key = {"Idempotency-Key": "retry-me"}
    refused = await api.send(sender, [recipient.agency_code, random_code("Z")], headers=key)
    assert_problem(refused, 422, "recipient_invalid")
    retried = await api.send(sender, [recipient.agency_code], headers=key)
    assert retried.status_code == 202
    assert await inbox_ids(api, recipient) == [retried.json()["id"]]


async def test_replay_with_several_recipients_is_the_original_answer(api: Api) -> None:
    sender, b, c = await api.agency_client(), await api.agency_client(), await api.agency_client()
    ordered = sorted([b.agency_code, c.agency_code], reverse=True)  # not in code order
    key = {"Idempotency-Key": "two-recipients"}
    first = await api.send(sender, ordered, headers=key, code_number="32")
    again = await api.send(sender, ordered, headers=key, code_number="32")
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == first.json()


async def test_concurrent_requests_with_one_idempotency_key_create_one_document(api: Api) -> None:
    """All three requests pass the replay check before any writes (see writes_held: a send's first
    write is, on PostgreSQL, its rows, the document's first: a pull recipient's feed entry is
    numbered at the commit; on SQLite the upsert of its recipients' feed counters)."""
    sender, recipient = await api.agency_client(), await api.agency_client()
    key = {"Idempotency-Key": "double-click"}
    calls = [api.send(sender, [recipient.agency_code], headers=key, code_number="33") for _ in range(3)]
    first_write = "feed_counter" if api.settings.database_url_for("exchange").startswith("sqlite") else "document"
    statuses = await race(api, "exchange", first_write, calls)
    assert sorted(statuses, key=str) == [202, 409, 409]
    assert len(await inbox_ids(api, recipient)) == 1
    replay = await api.send(sender, [recipient.agency_code], headers=key, code_number="33")
    assert replay.status_code == 200
    assert await inbox_ids(api, recipient) == [replay.json()["id"]]


# --- duplicates and idempotent replays -----------------------------------------------------------


async def test_the_same_number_twice_in_a_year_is_a_duplicate(api: Api) -> None:
    sender, other_sender, recipient = await api.agency_client(), await api.agency_client(), await api.agency_client()
    number = str(secrets.randbelow(90000) + 10000)
    first = await send_ok(api, sender, [recipient], code_number=number, promulgation_date="2026-03-02")
    before = await snapshot(api, sender, recipient)

    again = await api.send(sender, [recipient.agency_code], code_number=number, promulgation_date="2026-11-20")
    body = assert_problem(again, 409, "document_duplicate")
    assert body["document_id"] == first["id"]
    assert await snapshot(api, sender, recipient) == before
    assert await sent_ids(api, sender) == [first["id"]]

    next_year = await send_ok(api, sender, [recipient], code_number=number, promulgation_date="2027-01-04")
    another_notation = await send_ok(api, sender, [recipient], code_number=number, code_notation="QĐ-UBND")
    from_another_sender = await send_ok(api, other_sender, [recipient], code_number=number)
    assert len({first["id"], next_year["id"], another_notation["id"], from_another_sender["id"]}) == 4
    assert await sent_ids(api, sender) == [another_notation["id"], next_year["id"], first["id"]]
    assert await sent_ids(api, other_sender) == [from_another_sender["id"]]


async def test_idempotency_key_replay_answers_200_with_the_same_document(api: Api) -> None:
    sender, other_sender, recipient = await api.agency_client(), await api.agency_client(), await api.agency_client()
    key = f"gui-{uuid.uuid4()}"
    first = await api.send(sender, [recipient.agency_code], headers={"Idempotency-Key": key}, code_number="41")
    assert first.status_code == 202, first.text

    replay = await api.send(sender, [recipient.agency_code], headers={"Idempotency-Key": key}, code_number="41")
    assert replay.status_code == 200, replay.text
    assert replay.json()["id"] == first.json()["id"]
    assert replay.json()["deliveries"] == first.json()["deliveries"]
    assert replay.json()["attachments"] == first.json()["attachments"]
    assert await sent_ids(api, sender) == [first.json()["id"]]
    assert await inbox_ids(api, recipient) == [first.json()["id"]]
    assert len((await document(api, sender, first.json()["id"]))["deliveries"]) == 1

    # the key belongs to its sender: another agency using it sends its own document
    theirs = await api.send(other_sender, [recipient.agency_code], headers={"Idempotency-Key": key})
    assert theirs.status_code == 202, theirs.text
    assert theirs.json()["id"] != first.json()["id"]


async def test_sender_document_id_replay_answers_200_with_the_same_document(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    own_id = f"QLVB-{uuid.uuid4().hex[:12]}"
    number = str(secrets.randbelow(90000) + 10000)
    first = await api.send(sender, [recipient.agency_code], sender_document_id=own_id, code_number=number)
    assert first.status_code == 202, first.text
    # the replay is recognised as such, not refused as a duplicate number
    replay = await api.send(sender, [recipient.agency_code], sender_document_id=own_id, code_number=number)
    assert replay.status_code == 200, replay.text
    assert replay.json()["id"] == first.json()["id"]
    assert [d["id"] for d in replay.json()["deliveries"]] == [d["id"] for d in first.json()["deliveries"]]
    assert await sent_ids(api, sender) == [first.json()["id"]]
    assert await inbox_ids(api, recipient) == [first.json()["id"]]
    assert (await document(api, recipient, first.json()["id"]))["sender_document_id"] == own_id


async def test_replay_returns_the_original_answer_with_its_redirections(api: Api) -> None:
    sender, retired, successor = await api.agency_client(), await api.agency_client(), await api.agency_client()
    retire = await api.http.post(
        f"/v1/agencies/{retired.agency_code}/status",
        json={"status": "retired", "reason": "Sáp nhập", "successor_code": successor.agency_code},
        headers=await api.admin(),
    )
    assert retire.status_code == 200, retire.text
    key = f"gui-{uuid.uuid4()}"
    first = await api.send(sender, [retired.agency_code], headers={"Idempotency-Key": key}, code_number="42")
    assert first.status_code == 202, first.text
    redirect = {"from_code": retired.agency_code, "to_code": successor.agency_code}
    assert first.json()["redirected"] == [redirect]

    replay = await api.send(sender, [retired.agency_code], headers={"Idempotency-Key": key}, code_number="42")
    assert replay.status_code == 200, replay.text
    assert replay.json() == first.json()
