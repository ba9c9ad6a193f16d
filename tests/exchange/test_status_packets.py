"""Statuses as edXML status packets over REST: a recipient's system posts them in either wrapper
seen in the wild (an edXML envelope, a SOAP envelope) and they are applied as the JSON route would;
the sender's system reads a delivery's latest status as a packet; a national 03 answering a
recall is our 15; wrong, foreign and hostile packets are refused, nothing changed."""

from __future__ import annotations

import datetime as dt
from typing import Any

from services.exchange import edxml
from tests.conftest import ONE_DATABASE
from tests.helpers import Api, Client, assert_problem, document, send_ok, snapshot, statuses

XML = {"Content-Type": "application/xml"}


def packet(
    sent: dict[str, Any],
    reporter: str,
    code: str,
    *,
    wrapper: str = "edxml",
    second: int = 0,
    document_id: str | None = None,
) -> bytes:
    return edxml.write_status(
        edxml.StatusPacket(
            response_for=edxml.ResponseFor(
                organ_id=sent["sender_code"], document_id=document_id or sent["edxml_document_id"]
            ),
            from_=edxml.Organization(organ_id=reporter, organ_name="Văn phòng"),
            status_code=code,
            description=f"Trạng thái {code}",
            timestamp=dt.datetime(2026, 11, 29, 8, 0, second),
            staff_info=edxml.StaffInfo(department="Văn thư", staff="Lê Thị C", mobile="0912345678"),
            wrapper=wrapper,  # type: ignore[arg-type]
        )
    )


async def post(api: Api, client: Client, data: bytes) -> Any:
    return await api.http.post("/v1/deliveries/status-packets", content=data, headers={**client.auth, **XML})


@ONE_DATABASE
async def test_status_packets_in_both_wrappers_move_the_delivery_and_come_back_out(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [recipient])
    sent = await document(api, sender, accepted["id"])
    delivery_id = sent["deliveries"][0]["id"]

    first = await post(api, recipient, packet(sent, recipient.agency_code, "01", second=1))
    assert first.status_code == 200, first.text
    assert (first.json()["status"], first.json()["outcome"]) == ("01", "applied")
    soap = await post(api, recipient, packet(sent, recipient.agency_code, "03", wrapper="soap", second=3))
    assert soap.status_code == 200, soap.text
    stale = await post(api, recipient, packet(sent, recipient.agency_code, "06", second=2))  # older than the 03
    assert stale.json()["outcome"] == "stale"

    seen = (await document(api, sender, accepted["id"]))["deliveries"][0]
    assert statuses(seen) == ["pending", "01", "03", "06"] and seen["status"] == "03"
    last_applied = seen["history"][2]
    assert last_applied["staff"]["staff"] == "Lê Thị C" and last_applied["timestamp"].startswith("2026-11-29T01:00:03")

    for wrapper in ("edxml", "soap"):
        out = await api.http.get(
            f"/v1/deliveries/{delivery_id}/status-packet", params={"wrapper": wrapper}, headers=sender.auth
        )
        assert out.status_code == 200, out.text
        read = edxml.parse_status(out.content)
        # the status the delivery stands at, 03: the stale 06 is history, not status
        assert (read.wrapper, read.status_code, read.from_.organ_id) == (wrapper, "03", recipient.agency_code)
        assert read.timestamp == dt.datetime(2026, 11, 29, 8, 0, 3)  # the reporter's own time, Vietnam's clock
        assert read.response_for.document_id == sent["edxml_document_id"]
        assert read.staff_info is not None and read.staff_info.staff == "Lê Thị C"
    outsider = await api.agency_client()
    hidden = await api.http.get(f"/v1/deliveries/{delivery_id}/status-packet", headers=outsider.auth)
    assert_problem(hidden, 404, "delivery_not_found")


@ONE_DATABASE
async def test_a_national_03_answering_a_recall_is_our_15(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [recipient])
    sent = await document(api, sender, accepted["id"])
    recall = await api.http.post(
        f"/v1/documents/{accepted['id']}/recall", json={"reason": "Gửi nhầm"}, headers=sender.auth
    )
    assert recall.status_code == 200, recall.text
    answered = await post(api, recipient, packet(sent, recipient.agency_code, "03"))
    assert answered.status_code == 200, answered.text
    assert answered.json()["status"] == "15"
    out = await api.http.get(f"/v1/deliveries/{sent['deliveries'][0]['id']}/status-packet", headers=sender.auth)
    assert edxml.parse_status(out.content).status_code == "03"  # as national systems write the answer


@ONE_DATABASE
async def test_wrong_foreign_and_hostile_status_packets_change_nothing(api: Api) -> None:
    sender, recipient, other = await api.agency_client(), await api.agency_client(), await api.agency_client()
    accepted = await send_ok(api, sender, [recipient])
    sent = await document(api, sender, accepted["id"])
    before = await snapshot(api, sender, recipient)

    impostor = await post(api, other, packet(sent, recipient.agency_code, "01"))
    assert_problem(impostor, 403, "packet_sender_mismatch")
    not_theirs = await post(api, other, packet(sent, other.agency_code, "01"))
    assert_problem(not_theirs, 404, "delivery_not_found")
    unknown = await post(api, recipient, packet(sent, recipient.agency_code, "01", document_id="X,2026/01/01,1/A"))
    assert_problem(unknown, 404, "delivery_not_found")
    bad_code = await post(api, recipient, packet(sent, recipient.agency_code, "99"))
    assert assert_problem(bad_code, 422, "packet_invalid")["element"].endswith("StatusCode")
    xxe = b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]><s>&x;</s>'
    assert assert_problem(await post(api, recipient, xxe), 422, "packet_invalid")["reason"] == "doctype_forbidden"
    assert_problem(await post(api, recipient, b"not xml"), 422, "packet_invalid")
    no_status = await api.http.get(f"/v1/deliveries/{sent['deliveries'][0]['id']}/status-packet", headers=sender.auth)
    assert_problem(no_status, 404, "delivery_not_found")
    assert await snapshot(api, sender, recipient) == before
