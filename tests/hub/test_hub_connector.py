"""The hub connector against a hub double served over HTTP (the connector knows only its URL and
credentials): a commune's document reaches a ministry and the ministry's statuses come back; a
ministry's packet reaches a department once, and the department's statuses go back; the hub away
for a while loses nothing and doubles nothing; a tampered packet is refused with the reason; the
national directory is synced into the registry, idempotently."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from gateway.runtime import GatewayRuntime
from services.demo.pdf import make_pdf
from services.exchange.edxml import (
    Attachment,
    Bussiness,
    BussinessDocType,
    Code,
    DocumentType,
    MessageHeader,
    Organization,
    Packet,
    PromulgationInfo,
    ResponseFor,
    StaffInfo,
    StatusPacket,
    parse_status,
    sign_packet,
    write_packet,
    write_status,
)
from services.exchange.edxml.signing import read_signed_packet
from services.hub.dependencies import HubRuntime
from services.hub.repository import HubMessageRepository
from services.hub_double import HubDouble, HubDoubleClient
from services.hub_double import create_app as create_double
from services.settings import Settings
from shared.messaging import ATTEMPT_HEADER, Envelope
from shared.migrations import upgrade
from shared.runtime import app_runtime
from tests.conftest import running_system
from tests.helpers import (
    Api,
    Client,
    make_certificate,
    received_items,
    report,
    serving,
    statuses,
    upload_certificate,
    wait_until,
)

MINISTRY = "000.00.00.G22"  # Văn phòng Chính phủ: outside the province, reached through the hub
PROVINCE = ("lienthong", "province-secret-for-tests")
OTHER_SIDE = ("vpcp", "ministry-secret-for-tests")


@dataclass
class Hub:
    api: Api
    double: HubDouble
    ministry: HubDoubleClient  # the ministry's own system at the hub

    async def connector_get(self, path: str) -> httpx.Response:
        """Call the connector's own app (its /ready, /metrics), in the process."""
        assert self.api.app is not None
        transport = httpx.ASGITransport(app=app_runtime(self.api.app, GatewayRuntime).embedded["hub"])
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            return await http.get(path)

    async def connector_call(self, path: str, status: int) -> bool:
        return (await self.connector_get(path)).status_code == status

    @property
    def runtime(self) -> HubRuntime:
        runtime = self.api.service_runtime("hub")
        assert isinstance(runtime, HubRuntime)
        return runtime


@pytest.fixture(scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Hub]:
    """One system on SQLite with the connector on, and the double on a port of its own; the
    ministry registered by a directory sync."""
    double = HubDouble()
    double.add_client(*PROVINCE, "H10")
    double.add_client(*OTHER_SIDE, "G22")
    double.directory = [
        {"code": MINISTRY, "name": "Văn phòng Chính phủ", "parent": None, "deleted": False},
        {"code": "000.00.01.G22", "name": "Cục Kiểm soát thủ tục hành chính", "parent": MINISTRY, "deleted": False},
        {"code": "000.00.09.G22", "name": "Vụ đã giải thể", "parent": MINISTRY, "deleted": True},
        {"code": "000.00.00.H10", "name": "UBND tỉnh (the province itself: not synced)", "deleted": False},
    ]
    var = tmp_path_factory.mktemp("hub") / "var"
    await upgrade("hub", Settings(var_dir=var).database_url_for("hub"))  # the others are template copies
    async with serving(create_double(double)) as url:
        settings: dict[str, Any] = {
            "enabled": True,
            "base_url": url,
            "client_id": PROVINCE[0],
            "client_secret": PROVINCE[1],
            "province_group": "H10",
            "poll_seconds": 0.05,
            "retry_schedule": [0.1, 0.2, 0.3, 0.5, 1, 1, 1, 1, 1, 1],
            "directory_sync_hours": 0,
        }
        async with running_system(var, hub=settings) as api, httpx.AsyncClient(base_url=url, timeout=10) as http:
            result = Hub(api, double, HubDoubleClient(http, *OTHER_SIDE))
            assert result.runtime.directory_sync is not None
            await result.runtime.directory_sync.run()
            await upload_certificate(api, MINISTRY, SEAL[0], kind="seal")  # its packets must bear this seal
            yield result


async def local_agency(api: Api, level: str = "commune") -> Client:
    code = f"{random.randint(100, 999)}.{random.randint(0, 99):02d}.{random.randint(0, 99):02d}.H10"
    await api.create_agency(code, level=level)
    return await api.agency_client(code)


def ministry_packet(to: str, subject: str, number: str) -> Packet:
    return Packet(
        message_header=MessageHeader(
            from_=Organization(organ_id=MINISTRY, organ_name="Văn phòng Chính phủ"),
            to=[Organization(organ_id=to)],
            document_id=f"{MINISTRY},2026/11/20,{number}/VPCP-KSTT",
            code=Code(code_number=number, code_notation="VPCP-KSTT"),
            promulgation_info=PromulgationInfo(place="Hà Nội", promulgation_date=dt.date(2026, 11, 20)),
            document_type=DocumentType(type_name="Công văn"),
            subject=subject,
        ),
        attachments=[
            Attachment(
                content_id="att1",
                attachment_name="cong-van.pdf",
                content_type="application/pdf",
                data=make_pdf([subject]),
            )
        ],
    )


SEAL = make_certificate("Văn phòng Chính phủ (test seal)")


def signed(packet: Packet) -> bytes:
    certificate, key = SEAL
    return sign_packet(write_packet(packet), key=key, certificate=certificate)


def status_packet(document_id: str, to: str, code: str) -> bytes:
    return write_status(
        StatusPacket(
            response_for=ResponseFor(organ_id=to, document_id=document_id),
            from_=Organization(organ_id=MINISTRY, organ_name="Văn phòng Chính phủ"),
            status_code=code,
            description=f"Văn phòng Chính phủ: {code}",
            timestamp=dt.datetime(2026, 11, 29, 9, 0, int(code)),
            staff_info=StaffInfo(department="Vụ Tổng hợp", staff="Nguyễn Văn A"),
        )
    )


async def ministry_edocs(hub: Hub) -> list[dict[str, Any]]:
    return [item for item in await hub.ministry.received() if item["service_type"] == "edoc"]


async def document_of(api: Api, client: Client, document_id: str) -> dict[str, Any]:
    response = await api.http.get(f"/v1/documents/{document_id}", headers=client.auth)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_directory_sync_registers_the_outside_agencies_idempotently(hub: Hub) -> None:
    """The ministry and its department come with the hub endpoint; the deleted one never enters,
    the province's own entry is left to the province; a second run changes nothing; a department
    deleted upstream is retired to its parent; only the admin marks an agency as reached via the hub."""
    api, sync = hub.api, hub.runtime.directory_sync
    assert sync is not None
    endpoint = await api.http.get(f"/v1/agencies/{MINISTRY}/endpoint", headers=await api.admin())
    assert endpoint.json()["mode"] == "hub"
    child = await api.http.get("/v1/agencies/000.00.01.G22", headers=await api.admin())
    assert child.json()["parent_code"] == MINISTRY
    assert (await api.http.get("/v1/agencies/000.00.09.G22", headers=await api.admin())).status_code == 404
    assert (await api.http.get("/v1/agencies/000.00.00.H10", headers=await api.admin())).status_code == 404

    again = await sync.run()
    assert (again.created, again.updated, again.retired) == ([], [], [])

    hub.double.directory[1] = {**hub.double.directory[1], "deleted": True}
    gone = await sync.run()
    assert gone.retired == ["000.00.01.G22"]
    child = await api.http.get("/v1/agencies/000.00.01.G22", headers=await api.admin())
    assert (child.json()["status"], child.json()["successor_code"]) == ("retired", MINISTRY)

    commune = await local_agency(api)
    own = await api.http.put(f"/v1/agencies/{commune.agency_code}/endpoint", json={"mode": "hub"}, headers=commune.auth)
    assert own.status_code == 403, own.text
    mixed = {"mode": "hub", "webhook_url": "https://example.org/hook"}
    refused = await api.http.put(f"/v1/agencies/{MINISTRY}/endpoint", json=mixed, headers=await api.admin())
    assert refused.status_code == 422, refused.text


async def test_a_commune_document_reaches_the_ministry_and_its_statuses_come_back(hub: Hub) -> None:
    api = hub.api
    commune = await local_agency(api)
    sent = await api.send(commune, [MINISTRY], subject="Báo cáo kết quả cải cách hành chính")
    assert sent.status_code == 202, sent.text
    document_id, delivery_id = sent.json()["id"], sent.json()["deliveries"][0]["id"]

    async def at_the_hub() -> list[dict[str, Any]]:
        return [i for i in await ministry_edocs(hub) if i["from"] == commune.agency_code]

    await wait_until(at_the_hub, what="the packet at the hub")
    [item] = await at_the_hub()
    packet, check = read_signed_packet(await hub.ministry.fetch(item["doc_id"]))
    header = packet.message_header
    assert (header.from_.organ_id, [t.organ_id for t in header.to]) == (commune.agency_code, [MINISTRY])
    assert header.subject == "Báo cáo kết quả cải cách hành chính"
    assert header.to[0].organ_name == "Văn phòng Chính phủ" and (header.from_.organ_name or "").startswith("Sở thử")
    assert check.placement == "ds" and packet.attachments[0].data.startswith(b"%PDF")
    await hub.ministry.ack(item["doc_id"])

    async def kept() -> Any:
        async with hub.runtime.db.session() as session:
            return await HubMessageRepository(session).by_key(f"delivery:{delivery_id}")

    await wait_until(kept, what="the hub's message id kept with the delivery")
    assert (await kept()).hub_message_id == item["doc_id"]

    assert header.document_id is not None
    for code in ("01", "03", "06"):  # what national systems send: 03 to 06 is a forward jump
        await hub.ministry.send(
            MINISTRY, [commune.agency_code], status_packet(header.document_id, commune.agency_code, code), "status"
        )

    async def completed() -> bool:
        return bool((await document_of(api, commune, document_id))["deliveries"][0]["status"] == "06")

    await wait_until(completed, what="the ministry's 06 at the commune")
    delivery = (await document_of(api, commune, document_id))["deliveries"][0]
    assert statuses(delivery)[-3:] == ["01", "03", "06"]
    last = delivery["history"][-1]  # the packet's StaffInfo and Timestamp (Vietnam time) kept with the report
    assert last["staff"] == {"department": "Vụ Tổng hợp", "staff": "Nguyễn Văn A", "email": None, "mobile": None}
    assert last["timestamp"].startswith("2026-11-29T02:00:06")
    status_acks = [
        p.acks for p in hub.double.packets.values() if p.service_type == "status" and p.to == [commune.agency_code]
    ]
    assert status_acks and all(a[PROVINCE[0]]["status"] == "done" for a in status_acks)


async def test_a_ministry_packet_reaches_a_department_once_and_its_statuses_go_back(hub: Hub) -> None:
    api = hub.api
    department = await local_agency(api, level="department")
    packet = ministry_packet(department.agency_code, "Về việc rà soát thủ tục hành chính", "4521")
    raw = signed(packet)
    first = await hub.ministry.send(MINISTRY, [department.agency_code], raw)
    second = await hub.ministry.send(MINISTRY, [department.agency_code], raw)  # the hub hands it over twice
    other = await local_agency(api, level="department")  # a copy of the same document for another one
    packet.message_header.to = [Organization(organ_id=other.agency_code)]
    third = await hub.ministry.send(MINISTRY, [other.agency_code], signed(packet))

    def acknowledged() -> bool:
        return all(PROVINCE[0] in hub.double.packets[d].acks for d in (first, second, third))

    await wait_until(acknowledged, what="the three packets acknowledged")
    assert {hub.double.packets[d].acks[PROVINCE[0]]["status"] for d in (first, second, third)} == {"done"}
    [received] = await received_items(api, department)
    assert (received["sender_code"], received["subject"]) == (MINISTRY, "Về việc rà soát thủ tục hành chính")
    [copy] = await received_items(api, other)
    assert copy["subject"] == "Về việc rà soát thủ tục hành chính"

    delivery_id = received["delivery"]["id"] if "delivery" in received else received["delivery_id"]
    for code in ("01", "03"):
        answer = await report(api, department, delivery_id, code)
        assert answer.status_code == 200, answer.text

    async def statuses_back() -> list[Any]:
        items = [i for i in await hub.ministry.received() if i["service_type"] == "status"]
        reports = [parse_status(await hub.ministry.fetch(i["doc_id"])) for i in items]
        mine = [r for r in reports if r.from_.organ_id == department.agency_code]
        return mine if len(mine) >= 2 else []

    await wait_until(statuses_back, what="the department's statuses at the hub")
    reports = await statuses_back()
    assert [r.status_code for r in reports] == ["01", "03"]
    assert {r.response_for.document_id for r in reports} == {packet.message_header.document_id}


async def test_the_hub_away_for_a_while_loses_nothing_and_doubles_nothing(hub: Hub) -> None:
    api, double = hub.api, hub.double
    commune = await local_agency(api)
    department = await local_agency(api, level="department")
    double.down = True
    waiting = double.deposit(
        OTHER_SIDE[0],
        MINISTRY,
        [department.agency_code],
        signed(ministry_packet(department.agency_code, "Khi trục ngừng", "77")),
    )
    sent = [await api.send(commune, [MINISTRY], subject=f"Gửi khi trục ngừng {n}") for n in (1, 2)]
    assert all(r.status_code == 202 for r in sent)
    tried = double.refused_while_down
    await wait_until(lambda: double.refused_while_down >= tried + 4, what="the connector trying the hub while down")
    await wait_until(lambda: hub.connector_call("/ready", 503), what="the connector not ready while the hub is away")
    away = (await hub.connector_get("/ready")).json()
    assert "503" in away["checks"]["hub"], away
    double.down = False

    def from_commune() -> list[Any]:
        return [p for p in double.packets.values() if p.from_code == commune.agency_code]

    await wait_until(
        lambda: len(from_commune()) == 2 and PROVINCE[0] in double.packets[waiting].acks, what="the backlog"
    )
    assert len(await received_items(api, department)) == 1
    subjects = sorted(read_signed_packet(p.content)[0].message_header.subject or "" for p in from_commune())
    assert subjects == ["Gửi khi trục ngừng 1", "Gửi khi trục ngừng 2"]

    async def kept() -> list[str]:
        async with hub.runtime.db.session() as session:
            repository = HubMessageRepository(session)
            rows = [await repository.by_key(f"delivery:{r.json()['deliveries'][0]['id']}") for r in sent]
        return [row.outcome for row in rows if row is not None]

    async def both() -> bool:
        return len(await kept()) == 2

    await wait_until(both, what="both deliveries recorded")
    assert await kept() == ["sent", "sent"]
    await wait_until(lambda: hub.connector_call("/ready", 200), what="the connector ready again")
    metrics = (await hub.connector_get("/metrics")).text
    assert 'lienthong_hub_packets_total{direction="out",kind="edoc",outcome="sent"}' in metrics


async def test_a_tampered_signed_packet_is_refused_with_the_reason(hub: Hub) -> None:
    """And so is an intact one whose sender claims to be an agency of the province, or one signed
    with a key other than the seal the registry holds for its sender."""
    api = hub.api
    department = await local_agency(api, level="department")
    raw = signed(ministry_packet(department.agency_code, "Văn bản gốc", "12"))
    tampered = raw.replace("Văn bản gốc".encode(), "Văn bản sửa".encode())
    assert tampered != raw
    doc_id = await hub.ministry.send(MINISTRY, [department.agency_code], tampered)

    # signed, intact, but claiming to come from an agency of the province
    commune = await local_agency(api)
    impostor = ministry_packet(department.agency_code, "Văn bản giả danh xã", "13")
    impostor.message_header.from_ = Organization(organ_id=commune.agency_code)
    impostor_id = await hub.ministry.send(commune.agency_code, [department.agency_code], signed(impostor))

    # intact, from the ministry, but not signed with the seal the registry holds for it
    other_certificate, other_key = make_certificate("Không phải con dấu của Văn phòng Chính phủ")
    unbound = write_packet(ministry_packet(department.agency_code, "Văn bản ký bằng khóa lạ", "14"))
    unbound_id = await hub.ministry.send(
        MINISTRY, [department.agency_code], sign_packet(unbound, key=other_key, certificate=other_certificate)
    )

    def acknowledged() -> bool:
        return all(PROVINCE[0] in hub.double.packets[d].acks for d in (doc_id, impostor_id, unbound_id))

    await wait_until(acknowledged, what="both packets acknowledged")
    ack = hub.double.packets[doc_id].acks[PROVINCE[0]]
    assert ack["status"] == "fail"
    assert ack["reason"].startswith("signature invalid"), ack["reason"]
    ack = hub.double.packets[impostor_id].acks[PROVINCE[0]]
    assert ack["status"] == "fail"
    assert ack["reason"].startswith(f"the sender {commune.agency_code} is not an agency reached through the hub")
    ack = hub.double.packets[unbound_id].acks[PROVINCE[0]]
    assert ack["status"] == "fail"
    assert ack["reason"].startswith("signature not the sender's"), ack["reason"]
    assert await received_items(api, department) == []


async def test_a_delivery_the_hub_never_took_is_a_failed_transfer_the_sender_sees(hub: Hub) -> None:
    """After the last try the failure is recorded as the dispatcher records its own (listed for the
    admin with channel hub, the sender told in its feed); a later success is not undone by it."""
    api, double = hub.api, hub.double
    commune = await local_agency(api)
    ministry = await api.agency_client(MINISTRY)
    double.down = True
    try:
        sent = await api.send(commune, [MINISTRY], subject="Trục không nhận")
        assert sent.status_code == 202, sent.text
        delivery_id = sent.json()["deliveries"][0]["id"]

        async def entry_of_delivery() -> dict[str, Any] | None:
            feed = await api.http.get("/v1/feed", params={"limit": 500}, headers=ministry.auth)
            return next((e for e in feed.json()["entries"] if e["delivery_id"] == delivery_id), None)

        await wait_until(entry_of_delivery, what="the ministry's feed entry")
        entry = await entry_of_delivery()
        assert entry is not None and hub.runtime.connector is not None
        last_try = Envelope(
            id=str(uuid.uuid4()),
            type="feed.entry_added.v1",
            source="exchange",
            occurred_at=dt.datetime.now(dt.UTC),
            data=entry,
            headers={ATTEMPT_HEADER: 11},
        )
        await hub.runtime.connector.on_dead(last_try, "the hub answered 503 to POST /edocs")
    finally:
        double.down = False

    failed = await api.http.get("/v1/transfers/failed", params={"agency_code": MINISTRY}, headers=await api.admin())
    [failure] = [f for f in failed.json()["items"] if f["delivery_id"] == delivery_id]
    assert (failure["channel"], failure["attempts"]) == ("hub", 11)
    assert failure["reason"] == "the hub answered 503 to POST /edocs"
    feed = await api.http.get("/v1/feed", params={"limit": 500}, headers=commune.auth)
    told = [e for e in feed.json()["entries"] if e["type"] == "delivery.transfer_failed"]
    assert [e["data"]["channel"] for e in told] == ["hub"]

    async def sent_after_all() -> bool:  # the retry still pending goes through: recorded over the failure
        async with hub.runtime.db.session() as session:
            row = await HubMessageRepository(session).by_key(f"delivery:{delivery_id}")
        return row is not None and row.outcome == "sent"

    await wait_until(sent_after_all, what="the delivery sent once the hub is back")


async def test_recalls_cross_the_hub_both_ways_and_are_answered_03_02(hub: Hub) -> None:
    """A commune's recall reaches the ministry as a recall packet, whose 03 is the commune's 15; the
    ministry's recall packet asks the department (13), whose 15 goes back as 03."""
    api = hub.api
    commune = await local_agency(api)
    sent = await api.send(commune, [MINISTRY], subject="Văn bản sẽ thu hồi")
    document_id = sent.json()["id"]

    async def edocs_about(subject: str) -> list[Packet]:
        packets = [read_signed_packet(await hub.ministry.fetch(i["doc_id"]))[0] for i in await ministry_edocs(hub)]
        return [p for p in packets if p.message_header.subject == subject]

    await wait_until(lambda: edocs_about("Văn bản sẽ thu hồi"), what="the document at the ministry")
    recalled = await api.http.post(
        f"/v1/documents/{document_id}/recall", json={"reason": "Ban hành nhầm"}, headers=commune.auth
    )
    assert recalled.status_code == 200, recalled.text

    async def recall_packet() -> list[Packet]:
        return [p for p in await edocs_about("Văn bản sẽ thu hồi") if p.bussiness_doc_type == BussinessDocType.RECALL]

    await wait_until(recall_packet, what="the recall packet at the ministry")
    [recall] = await recall_packet()
    assert recall.trace_header_list.bussiness is not None
    assert recall.trace_header_list.bussiness.bussiness_doc_reason == "Ban hành nhầm"
    document_key = recall.message_header.document_id
    assert document_key is not None
    await hub.ministry.send(
        MINISTRY, [commune.agency_code], status_packet(document_key, commune.agency_code, "03"), "status"
    )

    async def agreed() -> bool:
        return bool((await document_of(api, commune, document_id))["deliveries"][0]["recall_status"] == "15")

    await wait_until(agreed, what="the ministry's 03 as the commune's 15")

    department = await local_agency(api, level="department")
    packet = ministry_packet(department.agency_code, "Văn bản bộ sẽ thu hồi", "88")
    await hub.ministry.send(MINISTRY, [department.agency_code], signed(packet))
    await wait_until(lambda: received_items(api, department), what="the ministry's document at the department")
    [item] = await received_items(api, department)
    delivery_id = item["delivery"]["id"] if "delivery" in item else item["delivery_id"]
    assert (await report(api, department, delivery_id, "01")).status_code == 200
    packet.trace_header_list.bussiness = Bussiness(
        document_id=packet.message_header.document_id,
        bussiness_doc_type=BussinessDocType.RECALL,
        bussiness_doc_reason="Sai thẩm quyền",
    )
    await hub.ministry.send(MINISTRY, [department.agency_code], signed(packet))

    async def asked() -> bool:
        inbox = await api.http.get("/v1/feed", params={"limit": 500}, headers=department.auth)
        return any(e["type"] == "delivery.recall_requested" for e in inbox.json()["entries"])

    await wait_until(asked, what="the recall (13) at the department")
    answer = await report(api, department, delivery_id, "15")
    assert answer.status_code == 200, answer.text

    async def answered() -> list[Any]:
        statuses_at_hub = [
            parse_status(await hub.ministry.fetch(i["doc_id"]))
            for i in await hub.ministry.received()
            if i["service_type"] == "status"
        ]
        return [
            s
            for s in statuses_at_hub
            if s.response_for.document_id == packet.message_header.document_id and s.status_code == "03"
        ]

    await wait_until(answered, what="the department's 15 as 03 at the ministry")
