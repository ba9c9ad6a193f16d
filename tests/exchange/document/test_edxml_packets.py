"""edXML in and out: a document exported as a signed QCVN 102 packet, taken in by another system as
the same document (export → import → export gives the same packet up to the signature), and packets
as recalls, updates, replays; hostile, tampered, foreign and wrong packets refused, nothing stored."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

from lxml import etree

from services.exchange import edxml
from tests.conftest import ONE_DATABASE, running_system
from tests.exchange.edxml.shape import shape_errors
from tests.helpers import PDF, Api, Client, assert_problem, document, make_pdf, metadata, snapshot

XML = {"Content-Type": "application/xml"}
AGENCIES = [
    ("000.00.07.H41", "Sở Tư pháp", "sotuphap@example.gov.vn"),
    ("H41.30.7", "Ủy ban nhân dân xã Mới", None),  # known only by its Decision 20/2020 code
    ("000.00.09.H41", "Sở Y tế", None),
]


async def world(api: Api) -> list[Client]:
    """The same three agencies in any system: the same codes, names and contact details."""
    clients = []
    for code, name, email in AGENCIES:
        await api.create_agency(code, name=name, email=email, address="Vinh, Nghệ An")
        clients.append(await api.agency_client(code))
    return clients


def without_signature(data: bytes) -> bytes:
    """The packet's canonical bytes less its XML-DSig (what differs from one signing to the next)."""
    root = etree.fromstring(data)
    for signature in root.xpath("//*[local-name()='Signature']"):
        signature.getparent().remove(signature)
    return etree.tostring(root, method="c14n")


async def export(api: Api, client: Client, document_id: str) -> bytes:
    response = await api.http.get(f"/v1/documents/{document_id}/edxml", headers=client.auth)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    return response.content


async def take(api: Api, client: Client, data: bytes, status: int = 202) -> dict[str, Any]:
    response = await api.http.post("/v1/documents", content=data, headers={**client.auth, **XML})
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def rewritten(data: bytes, change: Any) -> bytes:
    """The packet read, changed by ``change(packet)``, written again unsigned."""
    packet = edxml.parse_packet(data)
    change(packet)
    return edxml.write_packet(packet)


@ONE_DATABASE
async def test_export_import_export_gives_the_same_packet(api: Api, tmp_path: Path) -> None:
    sender, recipient, outsider = await world(api)
    files = [("van-ban.pdf", PDF, "application/pdf"), ("phu-luc.pdf", make_pdf(["Phu luc"]), "application/pdf")]
    body = metadata(
        [recipient.agency_code],
        code_number="07",
        code_notation="STP-VP",
        type_name="Công văn",
        content="Nội dung",
        to_places=["Như trên", "Lưu: VT"],
        urgency=2,
        page_count=2,
        appendixes=["Phụ lục I"],
        response_for=[{"organ_id": "000.00.00.G22", "code": "7816/VPCP-TTĐT", "promulgation_date": "2026-10-01"}],
        paper=True,
        staff_info={"department": "Văn phòng", "staff": "Trần Thị B"},
        attachments=[{"description": "Văn bản chính"}],
    )
    response = await api.http.post(
        "/v1/documents",
        data={"metadata": json.dumps(body, ensure_ascii=False)},
        files=[("files", f) for f in files],
        headers=sender.auth,
    )
    assert response.status_code == 202, response.text
    accepted = response.json()

    first = await export(api, sender, accepted["id"])
    assert edxml.verify_packet(first).placement == "ds"  # signed by the province's seal
    assert shape_errors(first) == []  # the national samples' shape (tests/exchange/edxml/edxml-shape.xsd)
    packet = edxml.parse_packet(first)
    header = packet.message_header
    assert header.document_id == "000.00.07.H41,2026/11/20,07/STP-VP"
    assert (header.from_.organ_name, header.from_.email) == ("Sở Tư pháp", "sotuphap@example.gov.vn")
    assert [(t.organ_id, t.organ_name) for t in header.to] == [("H41.30.7", "Ủy ban nhân dân xã Mới")]
    assert header.other_info is not None and header.other_info.priority == 2
    assert packet.trace_header_list.bussiness is not None and packet.trace_header_list.bussiness.paper is True
    assert [(a.attachment_name, a.description, a.data) for a in packet.attachments] == [
        ("van-ban.pdf", "Văn bản chính", PDF),
        ("phu-luc.pdf", None, files[1][1]),
    ]
    assert b"cid:" in first
    assert await export(api, recipient, accepted["id"]) != b""  # a recipient exports its copy too
    hidden = await api.http.get(f"/v1/documents/{accepted['id']}/edxml", headers=outsider.auth)
    assert_problem(hidden, 404, "document_not_found")

    # another system with the same directory takes the packet in as the same document
    async with running_system(tmp_path / "other") as other:
        other_sender, other_recipient, _ = await world(other)
        taken = await take(other, other_sender, first)
        again = await other.http.post(  # the same packet again, as a `packet` part: the same document
            "/v1/documents", files=[("packet", ("p.edxml", first, "application/xml"))], headers=other_sender.auth
        )
        assert (again.status_code, again.json()["id"]) == (200, taken["id"]), again.text
        seen = await document(other, other_recipient, taken["id"])
        assert (seen["edxml_document_id"], seen["sender_organ"]["email"]) == (
            header.document_id,
            "sotuphap@example.gov.vn",
        )
        second = await export(other, other_sender, taken["id"])
    assert without_signature(second) == without_signature(first)
    assert second != first  # signed again, by the other system's seal


@ONE_DATABASE
async def test_packets_recall_update_and_bad_packets_change_nothing(api: Api) -> None:
    sender, recipient, outsider = await world(api)
    unsigned = edxml.write_packet(
        edxml.Packet(
            message_header=edxml.MessageHeader(
                from_=edxml.Organization(organ_id=sender.agency_code),
                to=[edxml.Organization(organ_id=recipient.agency_code)],
                document_id=f"{sender.agency_code},2026/11/20,12/STP-VP",
                code=edxml.Code(code_number="12", code_notation="STP-VP"),
                promulgation_info=edxml.PromulgationInfo(promulgation_date=dt.date(2026, 11, 20)),
                document_type=edxml.DocumentType(type="1", type_name="Nghị định"),
                subject="Nghị định mẫu",
                other_info=edxml.OtherInfo(priority=4),  # hỏa tốc hẹn giờ, from an older system
            ),
            attachments=[edxml.Attachment(content_id="a1", attachment_name="nd.pdf", data=PDF, zipped=True)],
        )
    )
    new = await take(api, sender, unsigned)
    seen = await document(api, recipient, new["id"])
    assert (seen["type_name"], seen["type_number"], seen["urgency"]) == ("Nghị định", "1", 3)
    assert seen["attachments"][0]["content_id"] == "a1"

    before = await snapshot(api, sender, recipient)
    signed = await export(api, sender, new["id"])
    refused = [
        (signed.replace("Nghị định mẫu".encode(), "Nghị định khác".encode()), 422, "packet_signature_invalid"),
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><edXML>&e;</edXML>',
            422,
            "packet_invalid",
        ),
        (b"<not-xml", 422, "packet_invalid"),
        (rewritten(unsigned, lambda p: setattr(p.message_header, "subject", "S" * 501)), 422, "packet_invalid"),
        (
            rewritten(unsigned, lambda p: setattr(p.message_header.from_, "organ_id", outsider.agency_code)),
            403,
            "packet_sender_mismatch",
        ),
    ]
    for data, status, code in refused:
        problem = assert_problem(
            await api.http.post("/v1/documents", content=data, headers={**sender.auth, **XML}), status, code
        )
        if code == "packet_invalid" and b"S" * 501 in data:
            assert problem["element"].endswith("MessageHeader/Subject")
    unknown = rewritten(unsigned, lambda p: _business(p, 1, "000.00.07.H41,2026/11/20,99/STP-VP"))
    missing = await api.http.post("/v1/documents", content=unknown, headers={**sender.auth, **XML})
    assert assert_problem(missing, 404, "document_not_found")["element"].endswith("Bussiness/DocumentId")
    replaced = rewritten(
        unsigned, lambda p: _business(p, 3, "f3a1c2de-0000-4000-8000-000000000000")
    )  # seen in the wild
    absent = await api.http.post("/v1/documents", content=replaced, headers={**sender.auth, **XML})
    assert assert_problem(absent, 404, "document_not_found")["element"].endswith("Bussiness/DocumentId")
    assert await snapshot(api, sender, recipient) == before

    # what a packet says of itself is kept as said, and read back, however long or odd
    def odd(packet: edxml.Packet) -> None:
        packet.message_header.from_.organ_name = "Ủy ban nhân dân" * 100
        packet.message_header.document_id = f"{sender.agency_code},2026/11/20,13/STP-VP"
        packet.message_header.code = edxml.Code(code_number="13", code_notation="STP-VP")
        _business(packet, 0, "a-document-id-of-another-system")
        receivers = [edxml.Receiver(organ_id="not a code", receiver_type=150)]
        assert packet.trace_header_list.bussiness is not None
        packet.trace_header_list.bussiness.bussiness_document_info = edxml.BussinessDocumentInfo(
            receiver_list=receivers
        )

    kept = await take(api, sender, rewritten(unsigned, odd))
    read = await document(api, recipient, kept["id"])
    assert read["sender_organ"]["organ_name"] == "Ủy ban nhân dân" * 100
    assert read["business"]["receiver_list"] == [{"receiver_type": 150, "organ_id": "not a code"}]

    # an update packet (BussinessDocType 2), then a recall packet (1), of the document above
    update = rewritten(unsigned, lambda p: _business(p, 2, p.message_header.document_id, subject="Nghị định sửa"))
    updated = await take(api, sender, update)
    changed = await document(api, recipient, updated["id"])
    assert (changed["kind"], changed["original_document_id"], changed["subject"]) == (
        "update",
        new["id"],
        "Nghị định sửa",
    )
    recall = rewritten(unsigned, lambda p: _business(p, 1, p.message_header.document_id, reason="Gửi nhầm"))
    recalled = await take(api, sender, recall, status=200)
    assert [d["recipient_code"] for d in recalled["deliveries"]] == [recipient.agency_code]
    assert (await document(api, sender, new["id"]))["recall_reason"] == "Gửi nhầm"


def _business(packet: edxml.Packet, kind: int, document_id: str | None, **changes: Any) -> None:
    """Make ``packet`` ask ``kind`` (1 recall, 2 update) of ``document_id``."""
    packet.trace_header_list.bussiness = edxml.Bussiness(
        document_id=document_id,
        bussiness_doc_type=edxml.BussinessDocType(kind),
        bussiness_doc_reason=changes.pop("reason", None),
    )
    packet.message_header = dataclasses.replace(packet.message_header, **changes)
