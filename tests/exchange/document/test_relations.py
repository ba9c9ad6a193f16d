"""Documents that update or replace one sent before."""

from __future__ import annotations

import asyncio
import secrets
import uuid

from sqlalchemy import select

from services.exchange.events import EVENTS
from services.exchange.models import messaging
from tests.helpers import (
    Api,
    assert_problem,
    document,
    exchange_db,
    inbox_items,
    received_ids,
    send_ok,
    sent_items,
    snapshot,
)

# --- update and replace --------------------------------------------------------------------------


async def test_update_reuses_the_number_and_shows_what_it_updates(api: Api) -> None:
    sender, a, b = await api.agency_client(), await api.agency_client(), await api.agency_client()
    number = str(secrets.randbelow(90000) + 10000)
    original = await send_ok(api, sender, [a, b], code_number=number, code_notation="KH-UBND")

    relation = {"kind": "update", "document_id": original["id"], "metadata_changed": True}
    updated = await send_ok(
        api, sender, [a, b], code_number=number, code_notation="KH-UBND", relation=relation, subject="Sửa đổi"
    )
    assert updated["id"] != original["id"]
    assert len(updated["deliveries"]) == 2

    for recipient in (a, b):
        items = {i["document_id"]: i for i in await inbox_items(api, recipient)}
        assert set(items) == {original["id"], updated["id"]}
        assert (items[updated["id"]]["kind"], items[updated["id"]]["original_document_id"]) == (
            "update",
            original["id"],
        )
        assert (items[original["id"]]["kind"], items[original["id"]]["original_document_id"]) == ("new", None)
        assert await received_ids(api, recipient, kind="update") == [updated["id"]]

    seen = await document(api, a, updated["id"])
    assert seen["kind"] == "update"
    assert seen["original_document_id"] == original["id"]
    assert seen["update_info"] == {"metadata_changed": True, "recipients_changed": False}
    assert (seen["code_number"], seen["code_notation"], seen["subject"]) == (number, "KH-UBND", "Sửa đổi")
    # an update does not supersede the original
    assert (await document(api, sender, original["id"]))["superseded_by"] is None
    assert (await document(api, sender, original["id"]))["update_info"] is None
    sent = {i["document_id"]: i for i in await sent_items(api, sender)}
    assert (sent[updated["id"]]["kind"], sent[updated["id"]]["original_document_id"]) == ("update", original["id"])

    # updates may be chained on the same original, each reusing the number
    second = await send_ok(
        api,
        sender,
        [a],
        code_number=number,
        code_notation="KH-UBND",
        relation={**relation, "metadata_changed": False, "recipients_changed": True},
    )
    assert (await document(api, sender, second["id"]))["update_info"] == {
        "metadata_changed": False,
        "recipients_changed": True,
    }


async def test_replace_supersedes_and_cannot_be_repeated(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    original = await send_ok(api, sender, [recipient])

    replacement = await send_ok(api, sender, [recipient], relation={"kind": "replace", "document_id": original["id"]})
    for reader in (sender, recipient):
        assert (await document(api, reader, original["id"]))["superseded_by"] == replacement["id"]
    seen = await document(api, recipient, replacement["id"])
    assert (seen["kind"], seen["original_document_id"], seen["update_info"], seen["superseded_by"]) == (
        "replace",
        original["id"],
        None,
        None,
    )
    [item] = [i for i in await inbox_items(api, recipient) if i["document_id"] == replacement["id"]]
    assert (item["kind"], item["original_document_id"]) == ("replace", original["id"])

    # the original was replaced already: neither a second replacement nor an update
    before = await snapshot(api, sender, recipient)
    for kind in ("replace", "update"):
        relation = {"kind": kind, "document_id": original["id"]}
        body = assert_problem(
            await api.send(sender, [recipient.agency_code], relation=relation), 409, "relation_invalid"
        )
        assert body["superseded_by"] == replacement["id"]
    assert await snapshot(api, sender, recipient) == before
    assert (await document(api, sender, original["id"]))["superseded_by"] == replacement["id"]

    # the replacement itself can be replaced
    third = await send_ok(api, sender, [recipient], relation={"kind": "replace", "document_id": replacement["id"]})
    assert (await document(api, sender, replacement["id"]))["superseded_by"] == third["id"]
    assert (await document(api, sender, original["id"]))["superseded_by"] == replacement["id"]

    # the outbox tells subscribers what was replaced
    async with exchange_db(api).session() as session:
        rows = (
            await session.execute(
                select(messaging.outbox.c.payload).where(messaging.outbox.c.routing_key == "document.replaced.v1")
            )
        ).scalars()
        replaced = [EVENTS["document.replaced.v1"].model_validate(p).model_dump(mode="json") for p in rows]
    assert {"document_id": original["id"], "replaced_by": replacement["id"], "sender_code": sender.agency_code} in (
        replaced
    )


async def test_relation_to_a_document_you_did_not_send_is_404(api: Api) -> None:
    sender, other, recipient = await api.agency_client(), await api.agency_client(), await api.agency_client()
    theirs = await send_ok(api, other, [recipient, sender])  # the sender even received it
    before = await snapshot(api, sender, recipient)
    for kind in ("update", "replace"):
        for target in (theirs["id"], str(uuid.uuid4())):
            response = await api.send(sender, [recipient.agency_code], relation={"kind": kind, "document_id": target})
            assert_problem(response, 404, "document_not_found")
    assert await snapshot(api, sender, recipient) == before
    assert (await document(api, other, theirs["id"]))["superseded_by"] is None


async def test_two_concurrent_replacements_of_one_document_one_wins_the_other_is_refused(api: Api) -> None:
    """The check that the original is not replaced yet and the mark are one statement: of two
    replacements sent at once, one is accepted and supersedes the original, the other is refused
    (409 relation_invalid naming the first) and leaves nothing behind."""
    sender, recipient = await api.agency_client(), await api.agency_client()
    original = await send_ok(api, sender, [recipient])
    relation = {"kind": "replace", "document_id": original["id"]}
    for _round in range(3):  # each round a fresh original: the race taken several times
        answers = await asyncio.gather(
            *(
                api.send(sender, [recipient.agency_code], relation=relation, code_number=str(secrets.randbelow(10**9)))
                for _ in range(2)
            )
        )
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [202, 409], [a.text for a in answers]
        [accepted] = [a.json() for a in answers if a.status_code == 202]
        [refused] = [a for a in answers if a.status_code == 409]
        assert assert_problem(refused, 409, "relation_invalid")["superseded_by"] == accepted["id"]
        assert (await document(api, sender, original["id"]))["superseded_by"] == accepted["id"]
        assert [i["document_id"] for i in await sent_items(api, sender)].count(accepted["id"]) == 1
        relation = {"kind": "replace", "document_id": accepted["id"]}
        original = accepted
    # nothing of the refused ones stayed: the sender sent the first and its three replacements
    assert len(await sent_items(api, sender)) == 4
