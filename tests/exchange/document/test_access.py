"""Who sees what of a document: outsiders, recipients, senders, tokens and scopes."""

from __future__ import annotations

import hashlib
import json
import uuid

from shared.auth import Scope
from tests.helpers import (
    PDF,
    Api,
    Client,
    assert_problem,
    blobs,
    delivery_for,
    delivery_seen,
    document,
    inbox_ids,
    recall,
    received_ids,
    report,
    send_ok,
    sent_ids,
    snapshot,
    statuses,
)

PDF_SHA = hashlib.sha256(PDF).hexdigest()


# --- who sees what ---------------------------------------------------------------------------


async def test_outsider_gets_404_on_document_and_attachment(api: Api) -> None:
    sender, recipient, outsider = await api.agency_client(), await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [recipient])
    attachment_id = accepted["attachments"][0]["id"]

    response = await api.http.get(f"/v1/documents/{accepted['id']}", headers=outsider.auth)
    assert_problem(response, 404, "document_not_found")
    response = await api.http.get(f"/v1/documents/{accepted['id']}/attachments/{attachment_id}", headers=outsider.auth)
    assert_problem(response, 404, "document_not_found")
    assert PDF_SHA not in response.text
    assert await inbox_ids(api, outsider) == []


async def test_unknown_document_or_attachment_is_404(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [recipient])
    other = await send_ok(api, sender, [recipient])

    response = await api.http.get(f"/v1/documents/{uuid.uuid4()}", headers=sender.auth)
    assert_problem(response, 404, "document_not_found")
    response = await api.http.get(f"/v1/documents/{accepted['id']}/attachments/{uuid.uuid4()}", headers=recipient.auth)
    assert_problem(response, 404, "attachment_not_found")
    # an attachment is only reachable under its own document
    mismatched = f"/v1/documents/{accepted['id']}/attachments/{other['attachments'][0]['id']}"
    assert_problem(await api.http.get(mismatched, headers=recipient.auth), 404, "attachment_not_found")
    response = await api.http.get("/v1/documents/not-a-uuid", headers=sender.auth)
    assert_problem(response, 422, "validation_failed")


async def test_recipient_sees_only_its_own_delivery(api: Api) -> None:
    sender, b, c = await api.agency_client(), await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [b, c])
    c_delivery = next(d["id"] for d in accepted["deliveries"] if d["recipient_code"] == c.agency_code)

    seen_by_b = await document(api, b, accepted["id"])
    assert [d["recipient_code"] for d in seen_by_b["deliveries"]] == [b.agency_code]
    assert c.agency_code not in json.dumps(seen_by_b)

    # b cannot move c's delivery either
    response = await report(api, b, c_delivery, "01")
    assert_problem(response, 404, "delivery_not_found")
    seen_by_c = await document(api, c, accepted["id"])
    assert seen_by_c["deliveries"][0]["status"] == "pending"


async def test_sender_cannot_report_a_status_on_a_recipients_delivery(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [recipient])
    delivery_id = accepted["deliveries"][0]["id"]

    response = await report(api, sender, delivery_id, "01")
    assert_problem(response, 404, "delivery_not_found")
    assert_problem(await report(api, recipient, str(uuid.uuid4()), "01"), 404, "delivery_not_found")

    [delivery] = (await document(api, sender, accepted["id"]))["deliveries"]
    assert (delivery["status"], statuses(delivery)) == ("pending", ["pending"])


async def test_without_documents_send_scope_nothing_is_sent(api: Api) -> None:
    recipient = await api.agency_client()
    receive_only = await api.agency_client(scopes=[Scope.RECEIVE])
    response = await api.send(receive_only, [recipient.agency_code])
    body = assert_problem(response, 403, "forbidden")
    assert body["required_scope"] == Scope.SEND
    assert await inbox_ids(api, recipient) == []
    assert blobs(api) == []


async def test_without_a_valid_token_the_answer_is_401_and_admin_has_no_inbox(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    anonymous = Client(sender.agency_code, sender.client_id, sender.client_secret, "not-a-token")
    response = await api.send(anonymous, [recipient.agency_code])
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert_problem(await api.http.get("/v1/inbox"), 401, "unauthorized")
    assert_problem(await api.http.get("/v1/inbox", headers=await api.admin()), 403, "forbidden")
    assert await inbox_ids(api, recipient) == []


# --- authorization -------------------------------------------------------------------------------


async def test_an_outsider_sees_nothing(api: Api) -> None:
    sender, recipient, outsider = await api.agency_client(), await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [recipient])
    document_id, attachment_id = accepted["id"], accepted["attachments"][0]["id"]
    before = await document(api, sender, document_id)

    assert_problem(await api.http.get(f"/v1/documents/{document_id}", headers=outsider.auth), 404, "document_not_found")
    download = await api.http.get(f"/v1/documents/{document_id}/attachments/{attachment_id}", headers=outsider.auth)
    assert_problem(download, 404, "document_not_found")
    assert accepted["attachments"][0]["sha256"] not in download.text
    assert_problem(await recall(api, outsider, document_id, "Thu hồi"), 404, "document_not_found")
    assert await inbox_ids(api, outsider) == []
    assert await received_ids(api, outsider) == []
    assert await sent_ids(api, outsider) == []
    assert await received_ids(api, outsider, counterpart=sender.agency_code) == []
    assert await document(api, sender, document_id) == before


async def test_scopes_are_required(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [recipient])
    document_id, attachment_id = accepted["id"], accepted["attachments"][0]["id"]
    delivery_id = delivery_for(accepted, recipient)
    before = await snapshot(api, sender, recipient)

    # the recipient's own agency, but a client that may only send
    send_only = await api.agency_client(recipient.agency_code, scopes=[Scope.SEND])
    for path in (
        f"/v1/documents/{document_id}",
        f"/v1/documents/{document_id}/attachments/{attachment_id}",
        "/v1/inbox",
        "/v1/documents?box=received",
        "/v1/documents?box=sent",
    ):
        body = assert_problem(await api.http.get(path, headers=send_only.auth), 403, "forbidden")
        assert body["required_scope"] == Scope.RECEIVE, path
    assert_problem(await report(api, send_only, delivery_id, "01"), 403, "forbidden")

    # the sender's own agency, but a client that may only receive
    receive_only = await api.agency_client(sender.agency_code, scopes=[Scope.RECEIVE])
    body = assert_problem(await api.send(receive_only, [recipient.agency_code]), 403, "forbidden")
    assert body["required_scope"] == Scope.SEND
    body = assert_problem(await recall(api, receive_only, document_id, "Thu hồi"), 403, "forbidden")
    assert body["required_scope"] == Scope.SEND
    # it may still read what its agency sent
    assert (await api.http.get(f"/v1/documents/{document_id}", headers=receive_only.auth)).status_code == 200

    assert await snapshot(api, sender, recipient) == before
    seen = delivery_seen(await document(api, sender, document_id), recipient)
    assert (seen["status"], seen["recall_status"]) == ("pending", None)
